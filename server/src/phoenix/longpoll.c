/* longpoll.c — the long-poll transport (see longpoll.h). */
#include "phoenix/longpoll.h"
#include "base/metrics.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "base/log.h"
#include "phoenix/phx_connect.h"
#include "phoenix/phx_socket.h"
#include "http/rest.h"
#include "base/util.h"

#define LP_MAX_MESSAGES 4096
#define LP_ID_LEN 35 /* "lp." + 32 hex */
/* CORS: any origin may read the answer; which origins may use the transport at all is phx_connect_origin_ok's (SB_ALLOWED_ORIGINS) */
#define LP_HEADERS "access-control-allow-origin: *\r\ncache-control: max-age=0, private, must-revalidate\r\n"

typedef struct lp_session {
    struct lp_session *next;
    char id[LP_ID_LEN + 1];
    reactor *owner;
    phx_socket *sock;
    sb_buf **out;
    uint32_t n, cap;
    size_t bytes;
    sb_req *wait_req;       /* held GET (owned by wait_r) */
    reactor *wait_r;
    uint64_t wait_since, last_seen;
    bool closed;
    bool flush_posted;
} lp_session;

/* id -> owner reactor, for requests arriving on other reactors */
typedef struct lp_entry {
    struct lp_entry *next;
    char id[LP_ID_LEN + 1];
    int owner;
} lp_entry;
static lp_entry *g_registry;
static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;

static int registry_owner(const char *id)
{
    int owner = -1;
    pthread_mutex_lock(&g_reg_mu);
    for (lp_entry *e = g_registry; e; e = e->next)
        if (strcmp(e->id, id) == 0) owner = e->owner;
    pthread_mutex_unlock(&g_reg_mu);
    return owner;
}

static void registry_set(const char *id, int owner)
{
    lp_entry *e = calloc(1, sizeof *e);
    if (!e) return;
    strcpy(e->id, id);
    e->owner = owner;
    pthread_mutex_lock(&g_reg_mu);
    e->next = g_registry;
    g_registry = e;
    pthread_mutex_unlock(&g_reg_mu);
}

static void registry_del(const char *id)
{
    pthread_mutex_lock(&g_reg_mu);
    for (lp_entry **pp = &g_registry; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            lp_entry *e = *pp;
            *pp = e->next;
            free(e);
            break;
        }
    pthread_mutex_unlock(&g_reg_mu);
}

/* ---- answering a request that may live on another reactor ---- */

typedef struct lp_answer {
    sb_req *req;
    char *body;
} lp_answer;

static void answer_task(void *arg)
{
    lp_answer *a = arg;
    http_respond(a->req, 200, "application/json; charset=utf-8", a->body, strlen(a->body), LP_HEADERS);
    free(a->body);
    free(a);
}

/* Answers req (owned by reactor rr) with JSON o (stolen). */
static void answer(sb_req *req, reactor *rr, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) s = strdup("{\"status\":500}");
    if (rr == reactor_self()) {
        http_respond(req, 200, "application/json; charset=utf-8", s, strlen(s), LP_HEADERS);
        free(s);
        return;
    }
    lp_answer *a = malloc(sizeof *a);
    if (!a || reactor_post(rr, answer_task, a) != 0) {
        /* cannot reach the reactor: leave the request to its connection's timeout */
        free(a);
        free(s);
        return;
    }
    a->req = req;
    a->body = s;
}

static json_t *status_only(int st) { return json_pack("{s:i}", "status", st); }

/* ---- sessions (owner reactor only) ---- */

static int g_slot; /* reactor slot: the sessions a reactor owns (list head) */

/* The head of reactor r's session list. */
static inline lp_session **sessions_of(reactor *r) { return (lp_session **)&r->slot[g_slot]; }

static lp_session *find_local(reactor *r, const char *id)
{
    for (lp_session *s = *sessions_of(r); s; s = s->next)
        if (strcmp(s->id, id) == 0) return s;
    return NULL;
}

static void flush_to_waiter(lp_session *s)
{
    if (!s->wait_req) return;
    json_t *msgs = json_array();
    for (uint32_t i = 0; i < s->n; i++) {
        json_array_append_new(msgs, json_stringn(sb_buf_text(s->out[i]), sb_buf_text_len(s->out[i])));
        sb_buf_unref(s->out[i]);
    }
    int st = s->n ? 200 : 204;
    s->n = 0;
    s->bytes = 0;
    answer(s->wait_req, s->wait_r, json_pack("{s:o,s:i,s:s}", "messages", msgs, "status", st, "token", s->id));
    s->wait_req = NULL;
    s->last_seen = uv_now(&s->owner->loop);
}

typedef struct lp_flush {
    reactor *r;
    char id[LP_ID_LEN + 1];
} lp_flush;

static void flush_task(void *arg)
{
    lp_flush *f = arg;
    lp_session *s = find_local(f->r, f->id);
    if (s) {
        s->flush_posted = false;
        if (s->n) flush_to_waiter(s);
    }
    free(f);
}

static void session_free(lp_session *s)
{
    for (uint32_t i = 0; i < s->n; i++) sb_buf_unref(s->out[i]);
    free(s->out);
    free(s);
}

/* Ends session s: answers a held poll with 410, detaches the socket. */
static void session_end(lp_session *s)
{
    reactor *r = s->owner;
    for (lp_session **pp = sessions_of(r); *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    registry_del(s->id);
    if (s->wait_req) answer(s->wait_req, s->wait_r, status_only(410));
    s->wait_req = NULL;
    s->closed = true;
    if (s->sock) {
        phx_socket *sock = s->sock;
        s->sock = NULL;
        phx_socket_closed(sock);
    }
    session_free(s);
}

static metrics_id m_lp_slow;
__attribute__((constructor)) static void lp_metrics(void)
{
    m_lp_slow = metrics_counter("sb_slow_consumer_closes_total",
                                "Sockets closed because their outbound queue overflowed (WebSocket 1013, long-poll buffer).", NULL);
}

static int lp_send(void *t, sb_buf *b)
{
    lp_session *s = t;
    if (s->closed) return -1;
    if (b->opcode == 2) return 0; /* binary frames do not travel over long-poll */
    if (s->n == LP_MAX_MESSAGES || s->bytes + b->len > g_config.outbound_max) {
        s->closed = true; /* slow consumer: the next poll learns it is gone */
        metrics_inc(m_lp_slow);
        return -1;
    }
    if (s->n == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 8;
        sb_buf **no = realloc(s->out, ncap * sizeof *no);
        if (!no) return -1;
        s->out = no;
        s->cap = ncap;
    }
    s->out[s->n++] = sb_buf_ref(b);
    s->bytes += b->len;
    if (s->wait_req && !s->flush_posted) {
        lp_flush *f = malloc(sizeof *f);
        if (f) {
            f->r = s->owner;
            strcpy(f->id, s->id);
            if (reactor_post(s->owner, flush_task, f) == 0) s->flush_posted = true;
            else free(f);
        }
    }
    return 0;
}

static void lp_close(void *t, int code)
{
    lp_session *s = t;
    s->closed = true; /* ended by the next request or the sweep */
}

static size_t lp_queued(void *t) { return ((lp_session *)t)->bytes; }
static const phx_transport_ops lp_ops = {lp_send, lp_close, lp_queued, NULL}; /* one buffer per message */

/* ---- requests ---- */

typedef struct lp_call {
    sb_req *req;    /* owned by origin; only passed back */
    reactor *origin;
    reactor *owner;
    char id[LP_ID_LEN + 1];
    bool post;
    bool ndjson;
    char *body;
    size_t body_len;
} lp_call;

static void handle_post(lp_session *s, lp_call *c)
{
    const char *p = c->body, *end = c->body + c->body_len;
    int status = 200;
    while (p < end && !s->closed) {
        const char *nl = c->ndjson ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        const char *le = nl ? nl : end;
        if (le > p) {
            phx_msg m;
            if (phx_decode(s->sock->vsn, false, p, (size_t)(le - p), &m) != 0) {
                status = 400;
                break;
            }
            phx_socket_handle(s->sock, &m);
        }
        p = le + 1;
    }
    answer(c->req, c->origin, status_only(status));
}

static void call_on_owner(void *arg)
{
    lp_call *c = arg;
    lp_session *s = find_local(c->owner, c->id);
    if (!s || s->closed) {
        if (s) session_end(s);
        answer(c->req, c->origin, status_only(410));
    } else {
        s->last_seen = uv_now(&s->owner->loop);
        if (c->post) {
            handle_post(s, c);
        } else {
            if (s->wait_req) flush_to_waiter(s); /* a newer poll replaces the held one */
            s->wait_req = c->req;
            s->wait_r = c->origin;
            s->wait_since = uv_now(&s->owner->loop);
            if (s->n) flush_to_waiter(s);
        }
    }
    free(c->body);
    free(c);
}

static void open_session(sb_req *req, const char *auth_token)
{
    int wait = phx_connect_rate_limited(req);
    if (wait) {
        rest_rate_limited(req, wait);
        return;
    }
    phx_connect_result cr;
    if (phx_connect_run(req, auth_token, false, &cr) != 0) {
        answer(req, req->r, status_only(403));
        return;
    }
    lp_session *s = calloc(1, sizeof *s);
    uint8_t rnd[16];
    if (!s || util_random_bytes(rnd, sizeof rnd) != 0) {
        free(s);
        answer(req, req->r, status_only(500));
        return;
    }
    strcpy(s->id, "lp.");
    util_hex_encode(rnd, sizeof rnd, s->id + 3);
    s->owner = req->r;
    s->last_seen = uv_now(&req->r->loop);
    s->sock = phx_socket_new(req->r, cr.vsn, &cr.claims, &lp_ops, s);
    if (!s->sock) {
        free(s);
        answer(req, req->r, status_only(500));
        return;
    }
    s->next = *sessions_of(req->r);
    *sessions_of(req->r) = s;
    registry_set(s->id, req->r->id);
    answer(req, req->r, json_pack("{s:[],s:i,s:s}", "messages", "status", 410, "token", s->id));
}

void longpoll_handle(sb_req *req)
{
    bool post = req->method == HTTP_POST;
    if (!post && req->method != HTTP_GET) {
        http_respond_error(req, 405, "method_not_allowed", "long-poll takes GET and POST", NULL);
        return;
    }
    if (!phx_connect_origin_ok(req)) { /* every poll, as Phoenix checks it */
        http_respond_error(req, 403, "origin_not_allowed", "this page's origin may not open a socket (SB_ALLOWED_ORIGINS)", NULL);
        return;
    }
    int ntok = http_req_query_count(req, "token");
    char *first = http_req_query(req, "token", false);
    char *last = http_req_query(req, "token", true);
    /* The session token comes last (phoenix.js appends it after the auth
     * params); a lone token is a session token only if it has our form. */
    const char *session = NULL, *auth = first;
    if (ntok >= 2) session = last;
    else if (first && strncmp(first, "lp.", 3) == 0) {
        session = first;
        auth = NULL;
    }
    if (!session) {
        if (post) answer(req, req->r, status_only(410));
        else open_session(req, auth);
        free(first);
        free(last);
        return;
    }
    int owner = strlen(session) == LP_ID_LEN ? registry_owner(session) : -1;
    if (owner < 0 || owner >= reactor_count) {
        answer(req, req->r, status_only(410));
        free(first);
        free(last);
        return;
    }
    lp_call *c = calloc(1, sizeof *c);
    if (!c) {
        answer(req, req->r, status_only(500));
        free(first);
        free(last);
        return;
    }
    c->req = req;
    c->origin = req->r;
    c->owner = &reactor_all[owner];
    strcpy(c->id, session);
    c->post = post;
    const char *ct = http_req_header(req, "content-type");
    c->ndjson = ct && strstr(ct, "ndjson");
    if (post) {
        c->body = malloc(req->body_len + 1);
        if (c->body) memcpy(c->body, req->body, req->body_len + 1);
        c->body_len = c->body ? req->body_len : 0;
    }
    free(first);
    free(last);
    if (c->owner == req->r) call_on_owner(c);
    else if (reactor_post(c->owner, call_on_owner, c) != 0) {
        free(c->body);
        free(c);
        answer(req, req->r, status_only(500));
    }
}

void longpoll_sweep(reactor *r)
{
    uint64_t now = uv_now(&r->loop);
    for (lp_session *s = *sessions_of(r), *next; s; s = next) {
        next = s->next;
        if (s->wait_req && now - s->wait_since >= g_config.longpoll_window_ms) flush_to_waiter(s);
        if (s->closed || (!s->wait_req && now - s->last_seen > 2 * g_config.longpoll_window_ms))
            session_end(s);
    }
}

void longpoll_shutdown(reactor *r)
{
    while (*sessions_of(r)) session_end(*sessions_of(r));
}

static const reactor_hooks g_hooks = {.tick = longpoll_sweep, .stop = longpoll_shutdown};

int longpoll_register(void)
{
    int id = reactor_register(&g_hooks);
    if (id < 0) return -1;
    g_slot = id;
    return 0;
}
