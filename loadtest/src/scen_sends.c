/* scen_sends.c — P4 (durable sends): every joined connection pushes
 * --event (default "message:send") on its own topic (default user:{id})
 * with {"conversation_id","client_id","kind":"text","body"}, for --run
 * seconds or --count sends per connection, never more than one outstanding
 * per connection. Measures acknowledged sends/s, the ack latency, error
 * replies, and message:new pushes received.
 *
 * Closed loop (default): the next send leaves as soon as the previous one is
 * answered; latency from the send.
 * Open loop (--send-rate N): N sends/s in all. A worker's connections take
 * turns on an even grid: slot k of the worker is due at go + k / r (r = its
 * share of N) and belongs to local connection k % n, round k / n. A due slot
 * is sent at once; if that connection's previous send is still unanswered,
 * it is sent when the ack comes and counted late (so is every further
 * round already due then). Latency runs from the slot, not from the actual
 * send, so a backlog shows up as latency (no coordinated omission). With
 * --warmup W the slots of the first W s are sent but not measured (the
 * latency, lag, late count and achieved rate are of the slots after it).
 * Slots stop at go + W + --run; the sends still owed are then drained (at most
 * --drain s). Whatever is unanswered at the stop (outstanding, or owed and
 * never sent) is counted `sends_unanswered` and recorded with the time it
 * had waited so far: a lower bound, never left out of the percentiles.
 *
 * The conversation of connection i is --conv-pattern expanded with
 * {id} = i + --id-offset and {peer} = id ^ 1 (pairs 0-1, 2-3, ... as direct
 * conversations), or line i of --conv-file. Against Switchboard the users
 * and conversations must exist first (a setup step outside sbload).
 * Pointed at an echo channel with --event ping it is a request/reply
 * round-trip benchmark that works on any Phoenix app. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "report.h"
#include "sbload.h"

char **g_conv_lines;
size_t g_nconv_lines;

typedef struct sd_w {
    char topic[512];
    char *buf;
    size_t cap;
    /* open loop (--send-rate) */
    bool paced;
    bool done_sent;     /* M_DONE reported */
    uint64_t t_go;      /* ns: slot 0 */
    uint64_t t_meas;    /* ns: slots from here on are measured (go + --warmup) */
    uint64_t run_end;   /* ns: no slot at or after this */
    double interval;    /* ns between two slots of this worker */
    uint64_t cursor;    /* next slot the timer has not looked at */
    uint32_t nout;      /* sends awaiting their reply */
    uv_timer_t pacer;
} sd_w;

static void w_init(worker *w)
{
    sd_w *s = calloc(1, sizeof *s);
    s->cap = strlen(g_opt.body) * 6 + 1024;
    s->buf = malloc(s->cap);
    s->paced = g_opt.send_rate > 0;
    w->sdata = s;
}

/* Due time (ns) of round r of local connection j (open loop). */
static uint64_t slot_time(const sd_w *s, const worker *w, uint64_t r, uint32_t j)
{
    return s->t_go + (uint64_t)((double)(r * w->n + j) * s->interval);
}

/* Pushes the next send of c, stamped t_req (its slot, or now when closed
 * loop). Returns true when it left. */
static bool send_one(worker *w, conn *c, uint64_t t_req)
{
    sd_w *s = w->sdata;
    if (w->phase != PH_RUN || !conn_is_joined(c)) return false;
    if (g_opt.count && c->nsent >= g_opt.count) return false;
    char conv[512];
    uint64_t id = (uint64_t)c->idx + g_opt.id_offset;
    if (g_nconv_lines) {
        snprintf(conv, sizeof conv, "%s", g_conv_lines[c->idx % g_nconv_lines]);
    } else if (pattern_expand(conv, sizeof conv, g_opt.conv_pattern, id) < 0) {
        return false;
    }
    char econv[1024];
    if (json_escape(econv, sizeof econv, conv, strlen(conv)) < 0) return false;
    int n = snprintf(s->buf, s->cap,
                     "{\"conversation_id\":\"%s\",\"client_id\":\"sbl-%llu-%u-%llu\","
                     "\"kind\":\"text\",\"body\":\"",
                     econv, (unsigned long long)(w->t0 % 1000000), c->idx,
                     (unsigned long long)c->nsent);
    if (n < 0 || (size_t)n >= s->cap) return false;
    int b = json_escape(s->buf + n, s->cap - (size_t)n - 4, g_opt.body, strlen(g_opt.body));
    if (b < 0) return false;
    n += b;
    memcpy(s->buf + n, "\"}", 3);
    n += 2;
    char topic[512];
    conn_topic(c, topic, sizeof topic);
    c->t_req = t_req;
    c->req_ref = conn_push(c, topic, g_opt.event, s->buf, (size_t)n);
    if (!c->req_ref) return false;
    if (s->paced && t_req >= s->t_meas) {
        uint64_t now = now_ns();
        hist_record(&w->h[H_LAG], now > t_req ? (now - t_req) / 1000 : 0);
    }
    c->nsent++;
    w->ctr[CTR_sends]++;
    s->nout++;
    return true;
}

/* Open loop: reports M_DONE once no slot is left and nothing is awaited. */
static void check_done(worker *w, sd_w *s)
{
    if (s->done_sent || s->nout) return;
    /* every slot before run_end has been looked at by the timer */
    if (slot_time(s, w, s->cursor / w->n, (uint32_t)(s->cursor % w->n)) < s->run_end) return;
    s->done_sent = true;
    ipc_done d = {w->ctr[CTR_sends], w->ctr[CTR_acks]};
    worker_send(w, M_DONE, &d, sizeof d);
}

/* Open loop: sends every slot due by now whose connection is free, then
 * sleeps until the next slot. */
static void on_pace(uv_timer_t *t)
{
    worker *w = t->data;
    sd_w *s = w->sdata;
    if (w->phase != PH_RUN) return;
    uint64_t now = now_ns();
    uint64_t due = 0;
    for (;;) {
        uint64_t r = s->cursor / w->n;
        uint32_t j = (uint32_t)(s->cursor % w->n);
        due = slot_time(s, w, r, j);
        if (due > now || due >= s->run_end) break;
        conn *c = &w->conns[j];
        /* not yet sent, and free: otherwise the ack sends it (late) */
        if (c->nsent == r && !c->req_ref) send_one(w, c, due);
        s->cursor++;
    }
    if (due >= s->run_end) {
        check_done(w, s);
        return;
    }
    uint64_t ms = (due - now + 999999) / 1000000;
    uv_timer_start(&s->pacer, on_pace, ms ? ms : 1, 0);
}

static void w_go(worker *w)
{
    sd_w *s = w->sdata;
    if (!s->paced) {
        for (uint32_t i = 0; i < w->n; i++)
            if (conn_is_joined(&w->conns[i])) send_one(w, &w->conns[i], now_ns());
        return;
    }
    s->t_go = now_ns();
    s->t_meas = s->t_go + (uint64_t)(g_opt.warmup * 1e9);
    s->run_end = s->t_meas + (uint64_t)(g_opt.run * 1e9);
    double share = g_opt.send_rate * (double)w->n / (double)(w->total ? w->total : 1);
    s->interval = share > 0 ? 1e9 / share : 1e18;
    if (!w->n) {
        s->run_end = s->t_go;
        check_done(w, s);
        return;
    }
    uv_timer_init(w->loop, &s->pacer);
    s->pacer.data = w;
    on_pace(&s->pacer);
}

static void w_reply(worker *w, conn *c, uint32_t ref, bool ok, span resp)
{
    sd_w *s = w->sdata;
    if (!c->req_ref || ref != c->req_ref) return;
    uint64_t now = now_ns();
    if (!s->paced || c->t_req >= s->t_meas)
        hist_record(&w->h[H_LAT], now > c->t_req ? (now - c->t_req) / 1000 : 0);
    c->req_ref = 0;
    s->nout--;
    if (ok) {
        w->ctr[CTR_acks]++;
        if (s->paced && now >= s->t_meas && now < s->run_end) w->ctr[CTR_acks_in_run]++;
    } else {
        w->ctr[CTR_send_errors]++;
        static int logged;
        if (!logged++) {
            char line[300];
            int n = snprintf(line, sizeof line, "send refused: %.*s",
                             (int)(resp.n > 250 ? 250 : resp.n), resp.p);
            if (n > 0) worker_send(w, M_LOG, line, (size_t)n);
        }
    }
    if (!s->paced) {
        send_one(w, c, now);
        return;
    }
    /* open loop: the next round of c, if its slot has come (it came while
     * this one was outstanding: late) */
    uint32_t j = (uint32_t)(c - w->conns);
    uint64_t due = slot_time(s, w, c->nsent, j);
    if (due <= now && due < s->run_end && send_one(w, c, due) && due >= s->t_meas)
        w->ctr[CTR_sends_late]++;
    check_done(w, s);
}

/* Open loop, at the stop: every send still awaited or owed (slot passed,
 * never sent) is counted unanswered and recorded with its wait so far. */
static void w_stop(worker *w)
{
    sd_w *s = w->sdata;
    if (!s->paced || !s->t_go) return;
    uint64_t now = now_ns(), upto = now < s->run_end ? now : s->run_end;
    for (uint32_t j = 0; j < w->n; j++) {
        conn *c = &w->conns[j];
        if (c->req_ref) {
            if (c->t_req >= s->t_meas)
                hist_record(&w->h[H_LAT], now > c->t_req ? (now - c->t_req) / 1000 : 0);
            w->ctr[CTR_sends_unanswered]++;
        }
        if (!(c->flags & CF_JOINED_ONCE)) continue; /* never joined: a connect error */
        for (uint64_t r = c->nsent; !g_opt.count || r < g_opt.count; r++) {
            uint64_t due = slot_time(s, w, r, j);
            if (due >= upto) break;
            if (due >= s->t_meas) hist_record(&w->h[H_LAT], (now - due) / 1000);
            w->ctr[CTR_sends_unanswered]++;
        }
    }
}

static void w_push(worker *w, conn *c, const phx_frame *f)
{
    (void)c;
    if (span_str_eq(f->event, "message:new")) w->ctr[CTR_msg_new]++;
}

/* Parent state: workers that reported M_DONE (open loop). */
typedef struct sd_p {
    int done;
} sd_p;

static void p_init(parent *p) { p->sdata = calloc(1, sizeof(sd_p)); }

static void p_msg(parent *p, int wid, uint32_t type, const void *body, size_t len)
{
    sd_p *s = p->sdata;
    (void)wid;
    (void)body;
    (void)len;
    if (type == M_DONE) s->done++;
}

/* Closed loop: stop after --run. Open loop: stop when every worker has
 * drained its sends, or --drain s after the run. */
static void p_tick(parent *p, uint64_t now)
{
    sd_p *s = p->sdata;
    if (g_opt.send_rate <= 0) {
        scen_common_tick(p, now);
        return;
    }
    if (s->done >= p->nprocs ||
        (double)(now - p->t_run_start) > (g_opt.warmup + g_opt.run + g_opt.drain) * 1e9)
        parent_request_stop(p);
}

static void p_result(parent *p, void *obj)
{
    json_t *res = obj;
    const uint64_t *c = p->sum_ctr;
    bool paced = g_opt.send_rate > 0;
    double run = p->t_stop > p->t_run_start ? (double)(p->t_stop - p->t_run_start) / 1e9 : 0;
    if (paced) run = g_opt.run;
    double aps = run > 0 ? (double)(paced ? c[CTR_acks_in_run] : c[CTR_acks]) / run : 0;
    const hist *h = &p->h[H_LAT];
    json_t *o = json_object();
    json_object_set_new(o, "mode", json_string(paced ? "paced" : "closed_loop"));
    json_object_set_new(o, "senders", json_integer((json_int_t)p->ready_joined));
    json_object_set_new(o, "run_s", json_real(run));
    json_object_set_new(o, "sends", json_integer((json_int_t)c[CTR_sends]));
    json_object_set_new(o, "acks", json_integer((json_int_t)c[CTR_acks]));
    json_object_set_new(o, "error_replies", json_integer((json_int_t)c[CTR_send_errors]));
    json_object_set_new(o, "acks_per_s", json_real(aps));
    if (paced) {
        json_object_set_new(o, "target_rate", json_real(g_opt.send_rate));
        json_object_set_new(o, "warmup_s", json_real(g_opt.warmup));
        json_object_set_new(o, "achieved_rate", json_real(aps));
        json_object_set_new(o, "late", json_integer((json_int_t)c[CTR_sends_late]));
        json_object_set_new(o, "unanswered", json_integer((json_int_t)c[CTR_sends_unanswered]));
        json_object_set_new(o, "send_lag", hist_json(&p->h[H_LAG]));
    }
    json_object_set_new(o, "ack_latency", hist_json(h));
    json_object_set_new(o, "message_new_received", json_integer((json_int_t)c[CTR_msg_new]));
    json_object_set_new(res, "sends", o);
    if (paced)
        printf("  %llu senders, paced at %.0f sends/s, %.1f s after %.1f s of warm-up: %llu sends "
               "(%llu late), %llu acked (%.0f/s within the run), %llu unanswered, %llu error "
               "replies, %llu message:new received\n",
               (unsigned long long)p->ready_joined, g_opt.send_rate, run, g_opt.warmup,
               (unsigned long long)c[CTR_sends], (unsigned long long)c[CTR_sends_late],
               (unsigned long long)c[CTR_acks], aps, (unsigned long long)c[CTR_sends_unanswered],
               (unsigned long long)c[CTR_send_errors], (unsigned long long)c[CTR_msg_new]);
    else
        printf("  %llu senders, closed loop, %.1f s: %llu sends, %llu acked (%.0f/s), %llu error "
               "replies, %llu message:new received\n",
               (unsigned long long)p->ready_joined, run, (unsigned long long)c[CTR_sends],
               (unsigned long long)c[CTR_acks], aps, (unsigned long long)c[CTR_send_errors],
               (unsigned long long)c[CTR_msg_new]);
    hist_print(paced ? "ack latency (from the slot)" : "ack latency", h);
    if (paced) hist_print("send lag (slot -> sent)", &p->h[H_LAG]);
}

const scenario scen_sends = {
    .name = "sends",
    .targets = "P4",
    .summary = "each connection sends message:send on user:{id}, closed loop or paced "
               "(--send-rate); acks/s, ack p99",
    .implemented = true,
    .default_topic = "user:{id}",
    .default_event = "message:send",
    .default_run = 10,
    .w_init = w_init,
    .w_go = w_go,
    .w_reply = w_reply,
    .w_push = w_push,
    .w_stop = w_stop,
    .p_init = p_init,
    .p_msg = p_msg,
    .p_tick = p_tick,
    .p_result = p_result,
};
