/* scen_sends.c — P4 (durable sends): every joined connection pushes
 * --event (default "message:send") on its own topic (default user:{id})
 * with {"conversation_id","client_id","kind":"text","body"}, and sends the
 * next one as soon as the previous one is answered (closed loop), for --run
 * seconds or --count sends per connection. Measures acknowledged sends/s,
 * the ack latency, error replies, and message:new pushes received.
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
} sd_w;

static void w_init(worker *w)
{
    sd_w *s = calloc(1, sizeof *s);
    s->cap = strlen(g_opt.body) * 6 + 1024;
    s->buf = malloc(s->cap);
    w->sdata = s;
}

static void send_next(worker *w, conn *c)
{
    sd_w *s = w->sdata;
    if (w->phase != PH_RUN || !conn_is_joined(c)) return;
    if (g_opt.count && c->nsent >= g_opt.count) return;
    char conv[512];
    uint64_t id = (uint64_t)c->idx + g_opt.id_offset;
    if (g_nconv_lines) {
        snprintf(conv, sizeof conv, "%s", g_conv_lines[c->idx % g_nconv_lines]);
    } else if (pattern_expand(conv, sizeof conv, g_opt.conv_pattern, id) < 0) {
        return;
    }
    char econv[1024], ebody_small[8];
    (void)ebody_small;
    if (json_escape(econv, sizeof econv, conv, strlen(conv)) < 0) return;
    int n = snprintf(s->buf, s->cap,
                     "{\"conversation_id\":\"%s\",\"client_id\":\"sbl-%llu-%u-%llu\","
                     "\"kind\":\"text\",\"body\":\"",
                     econv, (unsigned long long)(w->t0 % 1000000), c->idx,
                     (unsigned long long)c->nsent);
    if (n < 0 || (size_t)n >= s->cap) return;
    int b = json_escape(s->buf + n, s->cap - (size_t)n - 4, g_opt.body, strlen(g_opt.body));
    if (b < 0) return;
    n += b;
    memcpy(s->buf + n, "\"}", 3);
    n += 2;
    char topic[512];
    conn_topic(c, topic, sizeof topic);
    c->t_req = now_ns();
    c->req_ref = conn_push(c, topic, g_opt.event, s->buf, (size_t)n);
    if (c->req_ref) {
        c->nsent++;
        w->ctr[CTR_sends]++;
    }
}

static void w_go(worker *w)
{
    for (uint32_t i = 0; i < w->n; i++)
        if (conn_is_joined(&w->conns[i])) send_next(w, &w->conns[i]);
}

static void w_reply(worker *w, conn *c, uint32_t ref, bool ok, span resp)
{
    if (!c->req_ref || ref != c->req_ref) return;
    uint64_t now = now_ns();
    hist_record(&w->h[H_LAT], (now - c->t_req) / 1000);
    c->req_ref = 0;
    if (ok) {
        w->ctr[CTR_acks]++;
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
    send_next(w, c);
}

static void w_push(worker *w, conn *c, const phx_frame *f)
{
    (void)c;
    if (span_str_eq(f->event, "message:new")) w->ctr[CTR_msg_new]++;
}

static void p_result(parent *p, void *obj)
{
    json_t *res = obj;
    const uint64_t *c = p->sum_ctr;
    double run = p->t_stop > p->t_run_start ? (double)(p->t_stop - p->t_run_start) / 1e9 : 0;
    double aps = run > 0 ? (double)c[CTR_acks] / run : 0;
    json_t *o = json_object();
    json_object_set_new(o, "senders", json_integer((json_int_t)p->ready_joined));
    json_object_set_new(o, "run_s", json_real(run));
    json_object_set_new(o, "sends", json_integer((json_int_t)c[CTR_sends]));
    json_object_set_new(o, "acks", json_integer((json_int_t)c[CTR_acks]));
    json_object_set_new(o, "error_replies", json_integer((json_int_t)c[CTR_send_errors]));
    json_object_set_new(o, "acks_per_s", json_real(aps));
    json_object_set_new(o, "ack_latency", hist_json(&p->h[H_LAT]));
    json_object_set_new(o, "message_new_received", json_integer((json_int_t)c[CTR_msg_new]));
    json_object_set_new(res, "sends", o);
    printf("  %llu senders, closed loop, %.1f s: %llu sends, %llu acked (%.0f/s), %llu error "
           "replies, %llu message:new received\n",
           (unsigned long long)p->ready_joined, run, (unsigned long long)c[CTR_sends],
           (unsigned long long)c[CTR_acks], aps, (unsigned long long)c[CTR_send_errors],
           (unsigned long long)c[CTR_msg_new]);
    hist_print("ack latency", &p->h[H_LAT]);
}

const scenario scen_sends = {
    .name = "sends",
    .targets = "P4",
    .summary = "each connection sends message:send closed-loop on user:{id}; acks/s, ack p99",
    .implemented = true,
    .default_topic = "user:{id}",
    .default_event = "message:send",
    .default_run = 10,
    .w_init = w_init,
    .w_go = w_go,
    .w_reply = w_reply,
    .w_push = w_push,
    .p_result = p_result,
};
