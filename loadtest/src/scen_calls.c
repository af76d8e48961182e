/* scen_calls.c — P9 (calls): connections pair up (2k calls 2k+1, users from
 * --user-file, each joined to user:{user}) and every caller sets up calls
 * back to back for --run seconds, each the way a client does it:
 *
 *   caller                                   callee
 *   POST /api/v1/calls {user_id, media}  ->  call:incoming on user:<callee>
 *   join call:<id>                           join call:<id>, push ringing, accept
 *   state connecting -> signal offer     ->  signal answer (+10 ice)
 *   signal answer <-, 10 ice each way        connected
 *   connected (POST -> this reply = setup time), hangup, leave   leave on state ended
 *
 * Measured: call setup time (the POST leaving -> the reply to the caller's
 * `connected` push), the relay latency of every signal (the sender's push
 * -> the peer's receipt; each signal carries its send time, and
 * CLOCK_MONOTONIC is one clock for every process), calls set up per second.
 * The POST goes over one keep-alive HTTP/1.1 connection per caller (opened
 * at the start, like an app's REST client); the access token is minted
 * with --token-secret as for the socket. A call that goes wrong (an error
 * reply, a busy or ended answer) is counted and the caller starts the next
 * one 100 ms later. Nothing here is timed by sleeping: every step is the
 * answer to the previous one.
 *
 * --talk S (P9's "1,000 concurrent calls"): a connected call is held S s
 * before the hangup, as a real call is, and the pairs' first calls start
 * evenly spread over the first S s (pair k at k/pairs * S), so that after
 * the first S s every pair is in a call and each sets up its next one as
 * soon as the previous ends: the calls live at once are sampled every tick
 * (reported as live_calls), the setup rate is about pairs / (S + setup).
 * --warmup W: the first W s are run but not measured; only calls whose POST
 * left within the measured --run s count (setup, steps, rate), then the
 * load goes on for --drain s so that these calls can finish. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipc.h"
#include "report.h"
#include "sbload.h"
#include "token.h"

#define ICE_EACH 10
#define OFFER_SDP 1400 /* bytes of SDP, about what a browser's audio+video offer is */
#define ICE_LEN 90

enum step {
    S_IDLE = 0,
    /* caller */
    A_POSTING, A_JOINING, A_WAIT_ACCEPT, A_OFFERED, A_ICE_SENT, A_CONNECTING, A_TALKING, A_HANGUP,
    A_LEAVING, A_RETRY,
    /* callee */
    B_JOINING, B_RINGING, B_ACCEPTING, B_ACCEPTED, B_ANSWERED, B_CONNECTED,
};

typedef struct http_c {
    uv_tcp_t tcp; /* first */
    uv_connect_t creq;
    struct cst *owner;
    int state; /* 0 closed, 1 connecting, 2 open, 3 closing */
    char *rbuf;
    size_t rlen, rcap;
    char *pending; /* request to send once connected */
    size_t plen;
} http_c;

typedef struct cst {
    conn *c;
    uint8_t step;
    uint8_t ice_in;
    bool caller;
    bool got_answer;
    bool accept_seen; /* caller: state connecting seen while still joining */
    bool measured;    /* caller: this call's POST left within the measured window */
    uint32_t cjoin;   /* join ref of call:<id> */
    uint32_t expect;  /* ref of the push whose reply moves the step */
    uint32_t late_ref; /* callee: its `connected`, which may cross the caller's hangup */
    char call_id[24];
    char topic[40];
    char peer[64];    /* the other participant's user id */
    uint64_t t_post;
    uint64_t retry_at; /* A_RETRY: when to start the next call; A_TALKING: when to hang up */
    http_c *http;
} cst;

typedef struct sd_w {
    cst *cs;
    char *buf;
    size_t cap;
    char sdp[OFFER_SDP + 1];
    char ice[ICE_LEN + 1];
    uint64_t t_meas, t_end; /* the measured window (ns): [go + warmup, + run) */
    uv_timer_t pace;        /* --talk: starts and hangups on time (5 ms) */
    bool pace_on;
} sd_w;

static void call_start(worker *w, cst *s);

static sd_w *SD(worker *w) { return w->sdata; }

static void w_init(worker *w)
{
    sd_w *s = calloc(1, sizeof *s);
    s->cs = calloc(w->n ? w->n : 1, sizeof *s->cs);
    s->cap = 8192;
    s->buf = malloc(s->cap);
    memset(s->sdp, 'x', OFFER_SDP);
    memcpy(s->sdp, "v=0\\r\\no=- 46117317 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n", 56);
    memset(s->ice, 'c', ICE_LEN);
    memcpy(s->ice, "candidate:842163049 1 udp 1677729535 192.0.2.2 ", 48);
    for (uint32_t j = 0; j < w->n; j++) {
        s->cs[j].c = &w->conns[j];
        s->cs[j].caller = ((w->lo + j + g_opt.id_offset) % 2) == 0;
    }
    w->sdata = s;
}

static cst *state_of(worker *w, conn *c) { return &SD(w)->cs[c - w->conns]; }

/* Records a step of caller s's setup (from its POST leaving). */
static void mark(worker *w, const cst *s, int h)
{
    if (s && s->caller && s->t_post && s->measured) hist_record(&w->h[h], (now_ns() - s->t_post) / 1000);
}

/* The caller of callee s when it is in this worker (user id ^ 1), else NULL. */
static const cst *caller_of(worker *w, const cst *s)
{
    uint32_t j = (uint32_t)(s - SD(w)->cs);
    uint64_t id = (uint64_t)w->lo + j + g_opt.id_offset;
    uint64_t pid = id ^ 1;
    if (pid < (uint64_t)w->lo + g_opt.id_offset) return NULL;
    uint64_t pj = pid - w->lo - g_opt.id_offset;
    if (pj >= w->n || !SD(w)->cs[pj].caller || SD(w)->cs[pj].step == S_IDLE) return NULL;
    return &SD(w)->cs[pj];
}

static void fail_call(worker *w, cst *s, const char *why, const char *p, size_t n)
{
    w->ctr[CTR_calls_failed]++;
    static int logged;
    if (logged++ < 3) {
        char line[400];
        int k = snprintf(line, sizeof line, "call %s (conn %u): %.*s", why, s->c->idx,
                         (int)(n > 300 ? 300 : n), p ? p : "");
        if (k > 0) worker_send(w, M_LOG, line, (size_t)k);
    }
    if (s->cjoin && s->topic[0]) conn_push_topic(s->c, s->cjoin, s->topic, "phx_leave", "{}", 2);
    s->cjoin = 0;
    s->expect = 0;
    s->topic[0] = '\0';
    if (s->caller) {
        s->step = A_RETRY;
        s->retry_at = now_ns() + 100000000ull;
    } else {
        s->step = S_IDLE;
    }
}

/* ---- the caller's HTTP connection ---------------------------------------- */

static void http_close_cb(uv_handle_t *h)
{
    http_c *hc = (http_c *)h;
    hc->state = 0;
    hc->rlen = 0;
}

static void http_drop(worker *w, http_c *hc)
{
    if (hc->state == 0 || hc->state == 3) return;
    hc->state = 3;
    uv_close((uv_handle_t *)&hc->tcp, http_close_cb);
    cst *s = hc->owner;
    if (s->step == A_POSTING) {
        w->ctr[CTR_http_errors]++;
        fail_call(w, s, "HTTP connection lost", NULL, 0);
    }
}

static void http_write_cb(uv_write_t *req, int status)
{
    free(req->data);
    free(req);
    (void)status;
}

static void http_send(http_c *hc, char *req, size_t n)
{
    uv_write_t *wr = malloc(sizeof *wr);
    wr->data = req;
    uv_buf_t b = uv_buf_init(req, (unsigned)n);
    if (uv_write(wr, (uv_stream_t *)&hc->tcp, &b, 1, http_write_cb) < 0) {
        free(req);
        free(wr);
        http_drop(g_w, hc);
    }
}

static void http_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    http_c *hc = (http_c *)h;
    if (hc->rcap - hc->rlen < 4096) {
        hc->rcap = hc->rcap ? hc->rcap * 2 : 16384;
        hc->rbuf = realloc(hc->rbuf, hc->rcap);
    }
    (void)sz;
    *b = uv_buf_init(hc->rbuf + hc->rlen, (unsigned)(hc->rcap - hc->rlen));
}

static void on_post_answer(worker *w, cst *s, int status, const char *body, size_t n);

static void http_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    http_c *hc = (http_c *)st;
    worker *w = g_w;
    (void)b;
    if (nread < 0) {
        http_drop(w, hc);
        return;
    }
    hc->rlen += (size_t)nread;
    for (;;) {
        char *end = memmem(hc->rbuf, hc->rlen, "\r\n\r\n", 4);
        if (!end) return;
        size_t head = (size_t)(end - hc->rbuf) + 4;
        int status = 0;
        if (hc->rlen < 12 || sscanf(hc->rbuf, "HTTP/1.1 %d", &status) != 1) {
            http_drop(w, hc);
            return;
        }
        size_t clen = 0;
        for (char *p = hc->rbuf; p < end; p++) {
            if ((p == hc->rbuf || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15)) {
                clen = strtoul(p + 15, NULL, 10);
                break;
            }
        }
        if (hc->rlen < head + clen) return;
        on_post_answer(w, hc->owner, status, hc->rbuf + head, clen);
        memmove(hc->rbuf, hc->rbuf + head + clen, hc->rlen - head - clen);
        hc->rlen -= head + clen;
    }
}

static void http_connected(uv_connect_t *req, int status)
{
    http_c *hc = req->data;
    if (status < 0) {
        http_drop(g_w, hc);
        return;
    }
    hc->state = 2;
    uv_read_start((uv_stream_t *)&hc->tcp, http_alloc, http_read);
    if (hc->pending) {
        char *p = hc->pending;
        hc->pending = NULL;
        http_send(hc, p, hc->plen);
    }
}

/* Sends the POST of caller s (opening its HTTP connection if needed). */
static int http_post(worker *w, cst *s, const char *body, size_t blen)
{
    if (!s->http) {
        s->http = calloc(1, sizeof *s->http);
        s->http->owner = s;
    }
    http_c *hc = s->http;
    char uid[256], tok[1024];
    uint64_t id = (uint64_t)s->c->idx + g_opt.id_offset;
    if (!g_opt.token_secret || pattern_expand(uid, sizeof uid, g_opt.user_pattern, id) < 0 ||
        token_mint(tok, sizeof tok, g_opt.token_secret, strlen(g_opt.token_secret), uid, g_opt.sid,
                   (int64_t)time(NULL) + (int64_t)g_opt.token_ttl) < 0)
        return -1;
    size_t cap = blen + strlen(tok) + 512;
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "POST /api/v1/calls HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%.*s",
                     g_opt.host, tok, blen, (int)blen, body);
    if (n < 0 || (size_t)n >= cap) {
        free(req);
        return -1;
    }
    if (hc->state == 2) {
        http_send(hc, req, (size_t)n);
        return 0;
    }
    free(hc->pending);
    hc->pending = req;
    hc->plen = (size_t)n;
    if (hc->state == 1) return 0;
    if (hc->state == 3) return -1; /* still closing: the retry comes back */
    uv_tcp_init(w->loop, &hc->tcp);
    uv_tcp_nodelay(&hc->tcp, 1);
    hc->creq.data = hc;
    hc->state = 1;
    const struct sockaddr_in *dst = &g_opt.dst[s->c->idx % (uint32_t)(g_opt.nports ? g_opt.nports : 1)];
    if (uv_tcp_connect(&hc->creq, &hc->tcp, (const struct sockaddr *)dst, http_connected) < 0) {
        hc->state = 3;
        uv_close((uv_handle_t *)&hc->tcp, http_close_cb);
        return -1;
    }
    return 0;
}

/* ---- signaling -------------------------------------------------------------- */

/* Pushes signal {to: peer, type, data: {t: now_ns, body}} on the call topic. */
static void signal_out(worker *w, cst *s, const char *type, const char *body)
{
    sd_w *sd = SD(w);
    int n = snprintf(sd->buf, sd->cap, "{\"to\":\"%s\",\"type\":\"%s\",\"data\":{\"t\":%llu,\"%s\":\"%s\"}}",
                     s->peer, type, (unsigned long long)now_ns(),
                     !strcmp(type, "ice") ? "candidate" : "sdp", body);
    if (n < 0 || (size_t)n >= sd->cap) return;
    if (conn_push_topic(s->c, s->cjoin, s->topic, "signal", sd->buf, (size_t)n))
        w->ctr[CTR_signals_sent]++;
}

static uint32_t push_call(cst *s, const char *event)
{
    return conn_push_topic(s->c, s->cjoin, s->topic, event, "{}", 2);
}

static void join_call(cst *s, const char *id)
{
    snprintf(s->call_id, sizeof s->call_id, "%s", id);
    snprintf(s->topic, sizeof s->topic, "call:%s", id);
    s->ice_in = 0;
    s->got_answer = false;
    s->accept_seen = false;
    s->cjoin = conn_push_topic(s->c, 0, s->topic, "phx_join", "{}", 2);
    s->expect = s->cjoin;
}

/* The caller's offer, once the callee accepted. */
static void send_offer(worker *w, cst *s)
{
    mark(w, s, H_C_OFFER);
    s->step = A_OFFERED;
    signal_out(w, s, "offer", SD(w)->sdp);
}

static void maybe_connected(worker *w, cst *s)
{
    (void)w;
    if (s->caller && s->step == A_ICE_SENT && s->ice_in >= ICE_EACH) {
        mark(w, s, H_C_ICE);
        s->step = A_CONNECTING;
        s->expect = push_call(s, "connected");
    } else if (!s->caller && s->step == B_ANSWERED && s->ice_in >= ICE_EACH) {
        s->step = B_CONNECTED;
        s->late_ref = push_call(s, "connected");
    }
}

/* ---- the call, step by step ---------------------------------------------------- */

static void call_start(worker *w, cst *s)
{
    if (w->phase != PH_RUN || !conn_is_joined(s->c)) {
        s->step = S_IDLE;
        return;
    }
    char peer[64], body[160];
    uint64_t id = (uint64_t)s->c->idx + g_opt.id_offset;
    if (pattern_expand(peer, sizeof peer, "{peeruser}", id) < 0) return;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    int n = snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"media\":\"audio\"}", peer);
    s->step = A_POSTING;
    s->t_post = now_ns();
    s->measured = s->t_post >= SD(w)->t_meas && s->t_post < SD(w)->t_end;
    s->topic[0] = '\0';
    s->cjoin = 0;
    w->ctr[CTR_calls_started]++;
    if (http_post(w, s, body, (size_t)n) < 0) {
        w->ctr[CTR_http_errors]++;
        fail_call(w, s, "POST not sent", NULL, 0);
    }
}

static void on_post_answer(worker *w, cst *s, int status, const char *body, size_t n)
{
    if (s->step != A_POSTING) return;
    if (status != 201 && status != 200) {
        w->ctr[CTR_http_errors]++;
        fail_call(w, s, "POST refused", body, n);
        return;
    }
    mark(w, s, H_C_POST);
    json_t *j = json_loadb(body, n, 0, NULL);
    json_t *call = json_object_get(j, "call");
    const char *id = json_string_value(json_object_get(call, "id"));
    const char *st = json_string_value(json_object_get(call, "state"));
    if (!id || !st || !strcmp(st, "ended")) {
        fail_call(w, s, "POST answered without a live call", body, n);
        json_decref(j);
        return;
    }
    join_call(s, id);
    s->step = A_JOINING;
    json_decref(j);
}

/* The state of the call in a reply or a state push. */
static const char *call_state(span obj, char *out, size_t cap)
{
    span call, st;
    if (!json_obj_get(obj, "call", &call) || !json_obj_get(call, "state", &st) || st.n < 2 ||
        st.n - 2 >= cap)
        return NULL;
    memcpy(out, st.p + 1, st.n - 2);
    out[st.n - 2] = '\0';
    return out;
}

static void w_reply(worker *w, conn *c, uint32_t ref, bool ok, span resp)
{
    cst *s = state_of(w, c);
    if (!ok) {
        if (ref && ref == s->late_ref) return; /* the call ended first: not an error */
        w->ctr[CTR_call_errors]++;
        if (ref == s->expect && s->step != S_IDLE) fail_call(w, s, "push refused", resp.p, resp.n);
        return;
    }
    if (!ref || ref != s->expect) return;
    s->expect = 0;
    char st[24];
    switch (s->step) {
    case A_JOINING:
        mark(w, s, H_C_JOINED);
        if (s->accept_seen ||
            (call_state(resp, st, sizeof st) && (!strcmp(st, "connecting") || !strcmp(st, "connected"))))
            send_offer(w, s);
        else
            s->step = A_WAIT_ACCEPT;
        break;
    case A_CONNECTING: {
        uint64_t now = now_ns();
        if (s->measured) {
            hist_record(&w->h[H_LAT], (now - s->t_post) / 1000);
            w->ctr[CTR_calls_measured]++;
        }
        w->ctr[CTR_calls_connected]++;
        if (g_opt.talk > 0) {
            s->step = A_TALKING;
            s->retry_at = now + (uint64_t)(g_opt.talk * 1e9);
            break;
        }
        s->step = A_HANGUP;
        s->expect = push_call(s, "hangup");
        break;
    }
    case A_HANGUP:
        s->step = A_LEAVING;
        s->expect = push_call(s, "phx_leave");
        s->cjoin = 0;
        break;
    case A_LEAVING:
        w->ctr[CTR_calls_done]++;
        s->topic[0] = '\0';
        call_start(w, s);
        break;
    case B_JOINING:
        s->step = B_RINGING;
        s->expect = push_call(s, "ringing");
        break;
    case B_RINGING:
        s->step = B_ACCEPTING;
        s->expect = push_call(s, "accept");
        break;
    case B_ACCEPTING:
        mark(w, caller_of(w, s), H_C_ACCEPTED);
        if (s->step == B_ACCEPTING) s->step = B_ACCEPTED;
        break;
    default:
        break;
    }
}

static void on_signal(worker *w, cst *s, span payload)
{
    span type, data, t;
    uint64_t sent = 0;
    if (!json_obj_get(payload, "type", &type) || !json_obj_get(payload, "data", &data)) return;
    w->ctr[CTR_signals_recv]++;
    if (json_obj_get(data, "t", &t) && span_u64(t, &sent) && sent >= SD(w)->t_meas &&
        sent < SD(w)->t_end) {
        uint64_t now = now_ns();
        hist_record(&w->h[H_SIG], now > sent ? (now - sent) / 1000 : 0);
    }
    if (span_str_eq(type, "ice")) {
        s->ice_in++;
        maybe_connected(w, s);
    } else if (span_str_eq(type, "offer") && !s->caller && s->step >= B_ACCEPTING) {
        signal_out(w, s, "answer", SD(w)->sdp + 200);
        for (int i = 0; i < ICE_EACH; i++) signal_out(w, s, "ice", SD(w)->ice);
        s->step = B_ANSWERED;
        maybe_connected(w, s);
    } else if (span_str_eq(type, "answer") && s->caller && s->step == A_OFFERED) {
        mark(w, s, H_C_ANSWER);
        for (int i = 0; i < ICE_EACH; i++) signal_out(w, s, "ice", SD(w)->ice);
        s->step = A_ICE_SENT;
        maybe_connected(w, s);
    }
}

static void w_push(worker *w, conn *c, const phx_frame *f)
{
    cst *s = state_of(w, c);
    if (span_str_eq(f->event, "call:incoming")) {
        if (s->caller) return;
        span call, id, caller;
        if (!json_obj_get(f->payload, "call", &call) || !json_obj_get(call, "id", &id) ||
            !json_obj_get(call, "caller_id", &caller) || id.n < 3 || id.n > 22 || caller.n < 3 ||
            caller.n > 60)
            return;
        if (s->cjoin && s->topic[0]) conn_push_topic(c, s->cjoin, s->topic, "phx_leave", "{}", 2);
        char cid[24];
        memcpy(cid, id.p + 1, id.n - 2);
        cid[id.n - 2] = '\0';
        memcpy(s->peer, caller.p + 1, caller.n - 2);
        s->peer[caller.n - 2] = '\0';
        join_call(s, cid);
        s->step = B_JOINING;
        mark(w, caller_of(w, s), H_C_INCOMING);
        return;
    }
    if (!s->topic[0] || !span_str_eq(f->topic, s->topic)) return; /* an older call's topic */
    if (span_str_eq(f->event, "signal")) {
        on_signal(w, s, f->payload);
    } else if (span_str_eq(f->event, "state")) {
        char st[24];
        if (!call_state(f->payload, st, sizeof st)) return;
        if (s->caller && s->step == A_WAIT_ACCEPT && !strcmp(st, "connecting")) send_offer(w, s);
        else if (s->caller && s->step == A_JOINING && !strcmp(st, "connecting")) s->accept_seen = true;
        else if (!strcmp(st, "ended")) {
            if (!s->caller) {
                conn_push_topic(c, s->cjoin, s->topic, "phx_leave", "{}", 2);
                s->cjoin = 0;
                s->topic[0] = '\0';
                s->step = S_IDLE;
            } else if (s->step < A_HANGUP) {
                fail_call(w, s, "ended before connected", f->payload.p, f->payload.n);
            }
        }
    }
}

/* --talk: hangs up the calls held long enough, starts the pairs' first calls
 * on their spread slots. */
static void on_pace(uv_timer_t *t)
{
    worker *w = t->data;
    sd_w *sd = SD(w);
    uint64_t now = now_ns();
    for (uint32_t j = 0; j < w->n; j++) {
        cst *s = &sd->cs[j];
        if (s->step == A_TALKING && now >= s->retry_at) {
            s->t_post = now; /* the 15 s timeout of the hangup counts from here */
            s->step = A_HANGUP;
            s->expect = push_call(s, "hangup");
        } else if (s->step == A_RETRY && now >= s->retry_at) {
            call_start(w, s);
        }
    }
}

static void w_go(worker *w)
{
    sd_w *sd = SD(w);
    uint64_t go = now_ns();
    sd->t_meas = go + (uint64_t)(g_opt.warmup * 1e9);
    sd->t_end = sd->t_meas + (uint64_t)(g_opt.run * 1e9);
    uint32_t pairs = g_opt.conns / 2 ? g_opt.conns / 2 : 1;
    for (uint32_t j = 0; j < w->n; j++) {
        cst *s = &sd->cs[j];
        if (!s->caller || !conn_is_joined(&w->conns[j])) continue;
        if (g_opt.talk > 0) {
            uint32_t k = (w->lo + j) / 2; /* the pair's index */
            s->step = A_RETRY;
            s->retry_at = go + (uint64_t)((double)k / pairs * g_opt.talk * 1e9);
        } else {
            call_start(w, s);
        }
    }
    if (g_opt.talk > 0) {
        uv_timer_init(w->loop, &sd->pace);
        sd->pace.data = w;
        uv_timer_start(&sd->pace, on_pace, 1, 5);
        sd->pace_on = true;
    }
}

static void w_tick(worker *w, uint64_t now)
{
    sd_w *sd = SD(w);
    uint64_t live = 0;
    for (uint32_t j = 0; j < w->n; j++) {
        cst *s = &sd->cs[j];
        if (!s->caller) continue;
        if (s->step >= A_POSTING && s->step <= A_HANGUP) live++;
        if (s->step == A_RETRY && now >= s->retry_at) call_start(w, s);
        else if (s->step != S_IDLE && s->step != A_RETRY && s->step != A_TALKING &&
                 now - s->t_post > 15000000000ull)
        {
            char why[64];
            snprintf(why, sizeof why, "timed out (15 s) at step %d of", (int)s->step);
            fail_call(w, s, why, s->topic, strlen(s->topic));
        }
    }
    if (w->phase == PH_RUN && now >= sd->t_meas && now < sd->t_end) {
        w->ctr[CTR_live_sum] += live;
        w->ctr[CTR_live_ticks]++;
    }
}

static void w_stop(worker *w)
{
    sd_w *sd = SD(w);
    if (sd->pace_on) {
        uv_timer_stop(&sd->pace);
        uv_close((uv_handle_t *)&sd->pace, NULL);
        sd->pace_on = false;
    }
    /* measured calls still not connected count as failed (the slow tail) */
    for (uint32_t j = 0; j < w->n; j++) {
        cst *s = &sd->cs[j];
        if (s->caller && s->measured && s->step >= A_POSTING && s->step <= A_CONNECTING) {
            w->ctr[CTR_calls_failed]++;
            s->measured = false;
        }
    }
    for (uint32_t j = 0; j < w->n; j++) {
        cst *s = &sd->cs[j];
        if (s->http && s->http->state && s->http->state != 3) {
            s->http->state = 3;
            uv_close((uv_handle_t *)&s->http->tcp, NULL);
        }
    }
}

/* ---- parent ---------------------------------------------------------------------- */

static void p_result(parent *p, void *obj)
{
    json_t *res = obj;
    const uint64_t *c = p->sum_ctr;
    double run = p->t_stop > p->t_run_start ? (double)(p->t_stop - p->t_run_start) / 1e9 : 0;
    bool windowed = g_opt.talk > 0 || g_opt.warmup > 0;
    if (windowed) run = g_opt.run;
    double rate = run > 0 ? (double)c[CTR_calls_measured] / run : 0;
    double live = c[CTR_live_ticks] ? (double)c[CTR_live_sum] * g_opt.procs / (double)c[CTR_live_ticks] : 0;
    json_t *o = json_object();
    json_object_set_new(o, "pairs", json_integer((json_int_t)(p->ready_joined / 2)));
    json_object_set_new(o, "run_s", json_real(run));
    json_object_set_new(o, "talk_s", json_real(g_opt.talk));
    json_object_set_new(o, "warmup_s", json_real(g_opt.warmup));
    json_object_set_new(o, "live_calls_mean", json_real(live));
    json_object_set_new(o, "measured", json_integer((json_int_t)c[CTR_calls_measured]));
    json_object_set_new(o, "started", json_integer((json_int_t)c[CTR_calls_started]));
    json_object_set_new(o, "connected", json_integer((json_int_t)c[CTR_calls_connected]));
    json_object_set_new(o, "completed", json_integer((json_int_t)c[CTR_calls_done]));
    json_object_set_new(o, "failed", json_integer((json_int_t)c[CTR_calls_failed]));
    json_object_set_new(o, "error_replies", json_integer((json_int_t)c[CTR_call_errors]));
    json_object_set_new(o, "http_errors", json_integer((json_int_t)c[CTR_http_errors]));
    json_object_set_new(o, "signals_sent", json_integer((json_int_t)c[CTR_signals_sent]));
    json_object_set_new(o, "signals_received", json_integer((json_int_t)c[CTR_signals_recv]));
    json_object_set_new(o, "calls_per_s", json_real(rate));
    json_object_set_new(o, "setup", hist_json(&p->h[H_LAT]));
    json_object_set_new(o, "signal_relay", hist_json(&p->h[H_SIG]));
    json_t *steps = json_object();
    for (int k = H_C_POST; k <= H_C_ICE; k++)
        json_object_set_new(steps, sbl_hist_names[k], hist_json(&p->h[k]));
    json_object_set_new(o, "setup_steps", steps);
    json_object_set_new(res, "calls", o);
    printf("  %llu pairs, %.1f s: %llu calls started, %llu connected (%.1f/s), %llu completed, "
           "%llu failed, %llu error replies, %llu HTTP errors; signals %llu sent, %llu received\n",
           (unsigned long long)(p->ready_joined / 2), run, (unsigned long long)c[CTR_calls_started],
           (unsigned long long)c[CTR_calls_connected], rate, (unsigned long long)c[CTR_calls_done],
           (unsigned long long)c[CTR_calls_failed], (unsigned long long)c[CTR_call_errors],
           (unsigned long long)c[CTR_http_errors], (unsigned long long)c[CTR_signals_sent],
           (unsigned long long)c[CTR_signals_recv]);
    printf("  measured window %.1f s (after %.1f s of warm-up), talk %.1f s: %llu calls set up "
           "(%.1f/s), %.0f calls live at once on average\n",
           run, g_opt.warmup, g_opt.talk, (unsigned long long)c[CTR_calls_measured], rate, live);
    hist_print("call setup (POST -> connected)", &p->h[H_LAT]);
    hist_print("signal relay", &p->h[H_SIG]);
    static const char *const step_label[] = {
        "  setup step: POST answered", "  setup step: call:incoming at callee",
        "  setup step: caller joined call:<id>", "  setup step: callee's accept answered",
        "  setup step: caller sees connecting", "  setup step: answer at caller",
        "  setup step: 10 ICE in, connected sent"};
    for (int k = H_C_POST; k <= H_C_ICE; k++) hist_print(step_label[k - H_C_POST], &p->h[k]);
}

/* Stops after the warm-up, the measured run and (with --talk or --warmup)
 * the drain that lets the measured calls finish. */
static void p_tick(parent *p, uint64_t now)
{
    double total = g_opt.run;
    if (g_opt.talk > 0 || g_opt.warmup > 0) total += g_opt.warmup + g_opt.drain;
    if ((double)(now - p->t_run_start) >= total * 1e9) parent_request_stop(p);
}

static int check(sbl_opts *o)
{
    if (!o->token_secret) {
        fprintf(stderr, "sbload: the calls scenario needs --token-secret (the POST is authenticated)\n");
        return -1;
    }
    if (o->conns % 2) {
        fprintf(stderr, "sbload: the calls scenario pairs connections: --conns must be even\n");
        return -1;
    }
    return 0;
}

const scenario scen_calls = {
    .name = "calls",
    .targets = "P9",
    .summary = "pairs set up calls back to back (POST, ring, accept, offer/answer, 10 ICE each "
               "way, connected, hangup); setup p99, signal relay p99, calls/s",
    .implemented = true,
    .default_topic = "user:{user}",
    .default_event = "signal",
    .default_run = 10,
    .check = check,
    .w_init = w_init,
    .w_go = w_go,
    .w_reply = w_reply,
    .w_push = w_push,
    .w_tick = w_tick,
    .w_stop = w_stop,
    .p_ready = scen_common_ready,
    .p_tick = p_tick,
    .p_result = p_result,
};
