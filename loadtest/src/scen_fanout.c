/* scen_fanout.c — P3 (broadcast fan-out) and P7 (soak: the same for
 * minutes, with the server's RSS sampled).
 *
 * Every connection joins one topic. The first joined connection of worker 0
 * is the publisher: it pushes --event (default "shout") with payload
 * {"seq":n,"t":<send time, CLOCK_MONOTONIC ns>, ...--payload fields} and
 * keeps at most --window broadcasts waiting for their reply (optionally
 * paced by --pub-rate). Each receiver records the delivery latency; the
 * latency of a broadcast to its LAST receiver is found by the parent, which
 * merges every worker's (seq, count, latest receive) records. Publishing
 * stops after --count broadcasts or --run seconds; the parent then waits up
 * to --drain seconds for the deliveries still in flight. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "report.h"
#include "sbload.h"

#define RING 8192u    /* broadcasts tracked at once per worker */
#define PRING 65536u  /* ... and in the parent */
#define OUT_CAP 1024u

typedef struct win_slot {
    uint32_t ref;
    uint64_t seq, t;
} win_slot;

typedef struct fo_w {
    conn *pub;
    uint64_t next_seq;
    uint32_t outstanding;
    win_slot *win;
    uint64_t pub_end;
    int finished; /* DONE sent */
    double tokens;
    uint64_t t_tokens;
    uv_timer_t pacer;
    ipc_track *ring;
    ipc_track out[OUT_CAP];
    uint32_t nout;
    char *suffix; /* ,"pad":"...",<user fields>} */
    char *pbuf;   /* the payload being sent */
    size_t suffix_len;
    char topic[512];
} fo_w;

static void flush_out(worker *w, fo_w *s)
{
    if (!s->nout) return;
    worker_send(w, M_TRACK, s->out, s->nout * sizeof(ipc_track));
    s->nout = 0;
}

static void emit(worker *w, fo_w *s, ipc_track *slot)
{
    s->out[s->nout++] = *slot;
    memset(slot, 0, sizeof *slot);
    if (s->nout == OUT_CAP) flush_out(w, s);
}

static void w_init(worker *w)
{
    fo_w *s = calloc(1, sizeof *s);
    s->ring = calloc(RING, sizeof *s->ring);
    s->win = calloc(g_opt.window, sizeof *s->win);
    s->next_seq = 1;
    /* Payload suffix: padding then the user's own fields. */
    size_t ul = 0;
    const char *user = g_opt.payload;
    const char *ob = strchr(user, '{'), *cb = strrchr(user, '}');
    if (ob && cb && cb > ob) {
        user = ob + 1;
        ul = (size_t)(cb - ob - 1);
        while (ul && (*user == ' ' || *user == '\n')) user++, ul--;
    }
    s->suffix = malloc(g_opt.pad + ul + 32);
    size_t o = 0;
    if (g_opt.pad) {
        memcpy(s->suffix + o, ",\"pad\":\"", 8);
        o += 8;
        memset(s->suffix + o, 'x', g_opt.pad);
        o += g_opt.pad;
        s->suffix[o++] = '"';
    }
    if (ul) {
        s->suffix[o++] = ',';
        memcpy(s->suffix + o, user, ul);
        o += ul;
    }
    s->suffix[o++] = '}';
    s->suffix_len = o;
    s->pbuf = malloc(o + 64);
    w->sdata = s;
}

static void pub_fill(worker *w);
static void on_pub_timer(uv_timer_t *t) { pub_fill(t->data); }

static void pub_finish(worker *w, fo_w *s)
{
    if (s->finished) return;
    s->finished = 1;
    if (uv_is_active((uv_handle_t *)&s->pacer)) uv_timer_stop(&s->pacer);
    ipc_done d = {w->ctr[CTR_published], w->ctr[CTR_pub_acked]};
    worker_send(w, M_DONE, &d, sizeof d);
}

static void pub_fill(worker *w)
{
    fo_w *s = w->sdata;
    if (!s->pub || s->finished || w->phase != PH_RUN) return;
    uint64_t now = now_ns();
    bool more = now < s->pub_end && (!g_opt.count || s->next_seq <= g_opt.count) &&
                conn_is_joined(s->pub);
    if (!more) {
        if (s->outstanding == 0 || !conn_is_joined(s->pub)) pub_finish(w, s);
        return;
    }
    if (g_opt.pub_rate > 0) {
        s->tokens += (double)(now - s->t_tokens) * g_opt.pub_rate / 1e9;
        s->t_tokens = now;
        /* up to 100 ms of tokens: a worker loop busy reading its subscribers
         * for tens of ms must not lose the rate (1 ms of tokens did) */
        double cap = g_opt.pub_rate / 10 > 1 ? g_opt.pub_rate / 10 : 1;
        if (s->tokens > cap) s->tokens = cap;
    }
    char *buf = s->pbuf;
    while (s->outstanding < g_opt.window && (!g_opt.count || s->next_seq <= g_opt.count)) {
        if (g_opt.pub_rate > 0 && s->tokens < 1) break;
        uint64_t t = now_ns();
        int n = snprintf(buf, 64, "{\"seq\":%llu,\"t\":%llu", (unsigned long long)s->next_seq,
                         (unsigned long long)t);
        memcpy(buf + n, s->suffix, s->suffix_len);
        uint32_t ref = conn_push(s->pub, s->topic, g_opt.event, buf, (size_t)n + s->suffix_len);
        if (!ref) {
            pub_finish(w, s);
            return;
        }
        for (uint32_t i = 0; i < g_opt.window; i++)
            if (!s->win[i].ref) {
                s->win[i] = (win_slot){ref, s->next_seq, t};
                break;
            }
        if (!w->tm.first_pub) w->tm.first_pub = t;
        s->outstanding++;
        s->next_seq++;
        w->ctr[CTR_published]++;
        if (g_opt.pub_rate > 0) s->tokens -= 1;
    }
}

static void w_go(worker *w)
{
    fo_w *s = w->sdata;
    if (w->id != 0) return;
    for (uint32_t i = 0; i < w->n; i++)
        if (conn_is_joined(&w->conns[i])) {
            s->pub = &w->conns[i];
            break;
        }
    if (!s->pub) {
        pub_finish(w, s);
        return;
    }
    conn_topic(s->pub, s->topic, sizeof s->topic);
    s->pub_end = now_ns() + (uint64_t)(g_opt.run * 1e9);
    s->t_tokens = now_ns();
    s->tokens = 1;
    if (g_opt.pub_rate > 0) {
        uv_timer_init(w->loop, &s->pacer);
        s->pacer.data = w;
        uv_timer_start(&s->pacer, on_pub_timer, 1, 1);
    }
    pub_fill(w);
}

static void w_reply(worker *w, conn *c, uint32_t ref, bool ok, span resp)
{
    fo_w *s = w->sdata;
    (void)resp;
    if (c != s->pub) return;
    for (uint32_t i = 0; i < g_opt.window; i++) {
        if (s->win[i].ref != ref) continue;
        uint64_t now = now_ns();
        hist_record(&w->h[H_ACK], (now - s->win[i].t) / 1000);
        s->win[i].ref = 0;
        s->outstanding--;
        w->ctr[ok ? CTR_pub_acked : CTR_pub_errors]++;
        w->tm.last_pub_ack = now;
        pub_fill(w);
        return;
    }
}

static void w_push(worker *w, conn *c, const phx_frame *f)
{
    fo_w *s = w->sdata;
    (void)c;
    if (!span_str_eq(f->event, g_opt.event)) return;
    span sv, tv;
    uint64_t seq, t;
    if (!json_obj_get(f->payload, "seq", &sv) || !json_obj_get(f->payload, "t", &tv) ||
        !span_u64(sv, &seq) || !span_u64(tv, &t)) {
        w->ctr[CTR_bad_deliveries]++;
        return;
    }
    uint64_t now = now_ns();
    hist_record(&w->h[H_LAT], now > t ? (now - t) / 1000 : 0);
    w->ctr[CTR_deliveries]++;
    if (!w->tm.first_delivery) w->tm.first_delivery = now;
    w->tm.last_delivery = now;
    ipc_track *slot = &s->ring[seq % RING];
    if (slot->key != seq) {
        if (slot->key) emit(w, s, slot);
        slot->key = seq;
        slot->origin_ns = t;
    }
    slot->count++;
    slot->max_recv_ns = now;
    if (slot->count >= w->joined_at_go) emit(w, s, slot);
}

static void w_tick(worker *w, uint64_t now)
{
    fo_w *s = w->sdata;
    (void)now;
    flush_out(w, s);
    if (s->pub && w->phase == PH_RUN) pub_fill(w); /* notices --run ending */
}

static void w_stop(worker *w)
{
    fo_w *s = w->sdata;
    for (uint32_t i = 0; i < RING; i++)
        if (s->ring[i].key) emit(w, s, &s->ring[i]);
    flush_out(w, s);
}

/* ---- parent ---------------------------------------------------------------------- */

typedef struct fo_p {
    ipc_track *ring;
    uint64_t expected; /* receivers per broadcast */
    uint64_t published, pub_acked;
    int done;
    uint64_t t_done;
    uint64_t complete, incomplete, pending;
    hist last;
} fo_p;

static void p_init(parent *p)
{
    fo_p *s = calloc(1, sizeof *s);
    s->ring = calloc(PRING, sizeof *s->ring);
    hist_init(&s->last);
    p->sdata = s;
}

static void finalize(fo_p *s, ipc_track *e)
{
    if (e->count >= s->expected)
        s->complete++;
    else
        s->incomplete++;
    if (e->max_recv_ns && e->origin_ns && e->max_recv_ns > e->origin_ns)
        hist_record(&s->last, (e->max_recv_ns - e->origin_ns) / 1000);
    memset(e, 0, sizeof *e);
    s->pending--;
}

static void p_ready(parent *p)
{
    fo_p *s = p->sdata;
    s->expected = p->ready_joined;
    scen_common_ready(p);
}

static void p_msg(parent *p, int wid, uint32_t type, const void *body, size_t len)
{
    fo_p *s = p->sdata;
    (void)wid;
    if (type == M_DONE && len == sizeof(ipc_done)) {
        const ipc_done *d = body;
        s->published += d->published;
        s->pub_acked += d->acked;
        s->done = 1;
        s->t_done = now_ns();
        return;
    }
    if (type != M_TRACK) return;
    const ipc_track *r = body;
    for (size_t i = 0; i < len / sizeof *r; i++) {
        ipc_track *e = &s->ring[r[i].key % PRING];
        if (e->key != r[i].key) {
            if (e->key) finalize(s, e);
            e->key = r[i].key;
            s->pending++;
        }
        if (r[i].origin_ns) e->origin_ns = r[i].origin_ns;
        e->count += r[i].count;
        if (r[i].max_recv_ns > e->max_recv_ns) e->max_recv_ns = r[i].max_recv_ns;
        if (e->count >= s->expected) finalize(s, e);
    }
}

static void p_tick(parent *p, uint64_t now)
{
    fo_p *s = p->sdata;
    if (now < p->t_run_start) return;
    if (s->done && (s->complete >= s->published ||
                    (double)(now - s->t_done) > g_opt.drain * 1e9))
        parent_request_stop(p);
    /* Safety: the publisher never finished (replies lost, publisher dropped). */
    if ((double)(now - p->t_run_start) > (g_opt.run + g_opt.drain + 10) * 1e9)
        parent_request_stop(p);
}

static void p_finish(parent *p)
{
    fo_p *s = p->sdata;
    for (uint32_t i = 0; i < PRING; i++)
        if (s->ring[i].key) finalize(s, &s->ring[i]);
}

static void result_common(parent *p, json_t *res, double *dps_out, double *p99_out)
{
    fo_p *s = p->sdata;
    const uint64_t *c = p->sum_ctr;
    const sbl_times *tm = &p->tm;
    double span_s = tm->last_delivery > tm->first_pub
                        ? (double)(tm->last_delivery - tm->first_pub) / 1e9
                        : 0;
    double dps = span_s > 0 ? (double)c[CTR_deliveries] / span_s : 0;
    double bps = span_s > 0 ? (double)c[CTR_published] / span_s : 0;
    uint64_t exp_deliv = c[CTR_published] * s->expected;
    json_t *f = json_object();
    json_object_set_new(f, "subscribers", json_integer((json_int_t)s->expected));
    json_object_set_new(f, "window", json_integer(g_opt.window));
    json_object_set_new(f, "broadcasts", json_integer((json_int_t)c[CTR_published]));
    json_object_set_new(f, "broadcasts_acked", json_integer((json_int_t)c[CTR_pub_acked]));
    json_object_set_new(f, "broadcasts_complete", json_integer((json_int_t)s->complete));
    json_object_set_new(f, "broadcasts_incomplete", json_integer((json_int_t)s->incomplete));
    json_object_set_new(f, "deliveries", json_integer((json_int_t)c[CTR_deliveries]));
    json_object_set_new(f, "deliveries_expected", json_integer((json_int_t)exp_deliv));
    json_object_set_new(f, "publish_to_last_delivery_s", json_real(span_s));
    json_object_set_new(f, "deliveries_per_s", json_real(dps));
    json_object_set_new(f, "broadcasts_per_s", json_real(bps));
    json_object_set_new(f, "last_subscriber_latency", hist_json(&s->last));
    json_object_set_new(f, "delivery_latency", hist_json(&p->h[H_LAT]));
    json_object_set_new(f, "publish_ack_latency", hist_json(&p->h[H_ACK]));
    json_object_set_new(res, "fanout", f);
    printf("  fan-out to %llu subscribers, window %u: %llu broadcasts (%llu complete, %llu "
           "incomplete) in %.3f s = %.0f broadcasts/s\n",
           (unsigned long long)s->expected, g_opt.window,
           (unsigned long long)c[CTR_published], (unsigned long long)s->complete,
           (unsigned long long)s->incomplete, span_s, bps);
    printf("  deliveries: %llu of %llu expected = %.0f deliveries/s\n",
           (unsigned long long)c[CTR_deliveries], (unsigned long long)exp_deliv, dps);
    hist_print("last subscriber latency", &s->last);
    hist_print("every delivery latency", &p->h[H_LAT]);
    hist_print("publish -> reply", &p->h[H_ACK]);
    *dps_out = dps;
    *p99_out = hist_quantile(&s->last, 0.99) / 1000.0;
}

static void p_result(parent *p, void *obj)
{
    json_t *res = obj, *t = json_object();
    double dps, p99;
    result_common(p, res, &dps, &p99);
    json_object_set_new(t, "P3_deliveries_per_s", target_json(dps, 2000000, 1));
    json_object_set_new(t, "P3_last_subscriber_p99_ms", target_json(p99, 100, 0));
    json_object_set_new(res, "target_checks", t);
}

/* Soak (P7): the fan-out for --run seconds (default 600) with the server's
 * RSS sampled about 200 times; growth = the highest sample of the second
 * half over the sample at half time (the first half is the warm-up: rings,
 * arenas and socket buffers reach their working size); the growth since
 * 20 % of the run is reported too. */
static void p_result_soak(parent *p, void *obj)
{
    json_t *res = obj, *t = json_object();
    double dps, p99;
    result_common(p, res, &dps, &p99);
    if (p->nrss >= 5) {
        uint64_t warm = p->rss_samples[p->nrss / 2], last = p->rss_samples[p->nrss - 1];
        uint64_t early = p->rss_samples[p->nrss / 5], top = warm;
        for (uint32_t i = p->nrss / 2; i < p->nrss; i++)
            if (p->rss_samples[i] > top) top = p->rss_samples[i];
        double growth = ((double)top - (double)warm) / (double)warm * 100.0;
        double growth20 = ((double)last - (double)early) / (double)early * 100.0;
        json_object_set_new(res, "rss_growth_since_20pct_pct", json_real(growth20));
        json_t *a = json_array();
        for (uint32_t i = 0; i < p->nrss; i++)
            json_array_append_new(a, json_integer((json_int_t)p->rss_samples[i]));
        json_object_set_new(res, "rss_samples_kb", a);
        json_object_set_new(res, "rss_sample_interval_s", json_real(p->rss_sample_every));
        json_object_set_new(res, "rss_growth_after_warmup_pct", json_real(growth));
        json_object_set_new(t, "P7_rss_growth_pct", target_json(growth, 5, 0));
        printf("  server RSS at half time %.1f MiB, highest after %.1f MiB (%+.2f %%); at 20 %% of the "
               "run %.1f MiB, at the end %.1f MiB (%+.2f %%)\n",
               warm / 1024.0, top / 1024.0, growth, early / 1024.0, last / 1024.0, growth20);
    } else {
        printf("  (no RSS samples: pass --server-pid to watch the server's memory)\n");
    }
    json_object_set_new(res, "target_checks", t);
}

const scenario scen_fanout = {
    .name = "fanout",
    .targets = "P3",
    .summary = "N subscribers on one topic, one publisher broadcasting back to back",
    .implemented = true,
    .default_topic = "echo:fanout",
    .default_event = "shout",
    .default_run = 10,
    .w_init = w_init,
    .w_go = w_go,
    .w_reply = w_reply,
    .w_push = w_push,
    .w_tick = w_tick,
    .w_stop = w_stop,
    .p_init = p_init,
    .p_ready = p_ready,
    .p_msg = p_msg,
    .p_tick = p_tick,
    .p_finish = p_finish,
    .p_result = p_result,
};

const scenario scen_soak = {
    .name = "soak",
    .targets = "P7",
    .summary = "fanout for --run (default 600) s with the server's RSS sampled (--server-pid)",
    .implemented = true,
    .default_topic = "echo:fanout",
    .default_event = "shout",
    .default_run = 600,
    .w_init = w_init,
    .w_go = w_go,
    .w_reply = w_reply,
    .w_push = w_push,
    .w_tick = w_tick,
    .w_stop = w_stop,
    .p_init = p_init,
    .p_ready = p_ready,
    .p_msg = p_msg,
    .p_tick = p_tick,
    .p_finish = p_finish,
    .p_result = p_result_soak,
};
