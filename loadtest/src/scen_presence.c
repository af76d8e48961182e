/* scen_presence.c — P8 (Presence at scale): --conns viewers join one topic
 * (default conversation:load) one by one (pace with --rate). For each
 * join, every viewer already there receives a presence_diff whose "joins"
 * are keyed by user id; sbload maps the key back to the connection index
 * through --user-pattern and measures, per join, the time from the phx_join
 * being sent to the LAST viewer receiving the diff (merged across workers by
 * the parent). With --server-pid it reports the server's memory per viewer
 * like the connections scenario. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "report.h"
#include "sbload.h"

#define CHUNK 4096u

static ipc_track *recs; /* per global connection index (worker side and parent side) */

/* With --user-file, presence keys are user ids from the file: a sorted
 * (id, line) index maps them back to connection indices. */
typedef struct user_ix {
    const char *id;
    uint64_t line;
} user_ix;
static user_ix *g_uix;

static int uix_cmp(const void *a, const void *b)
{
    return strcmp(((const user_ix *)a)->id, ((const user_ix *)b)->id);
}

static void uix_build(void)
{
    if (!g_pattern_nusers || g_uix) return;
    g_uix = malloc(g_pattern_nusers * sizeof *g_uix);
    if (!g_uix) return;
    for (size_t i = 0; i < g_pattern_nusers; i++) g_uix[i] = (user_ix){g_pattern_users[i], i};
    qsort(g_uix, g_pattern_nusers, sizeof *g_uix, uix_cmp);
}

/* The id (connection index + --id-offset) of presence key k, or 0. */
static int key_to_id(span k, uint64_t *id)
{
    if (!g_uix) return pattern_match(g_opt.user_pattern, k.p, k.n, id);
    char buf[256];
    if (k.n >= sizeof buf) return 0;
    memcpy(buf, k.p, k.n);
    buf[k.n] = 0;
    user_ix key = {buf, 0};
    const user_ix *f = bsearch(&key, g_uix, g_pattern_nusers, sizeof *g_uix, uix_cmp);
    if (!f) return 0;
    *id = f->line; /* {user} = line id: connection id = line (mod the file length) */
    return 1;
}

static void w_init(worker *w)
{
    (void)w;
    recs = calloc(g_opt.conns ? g_opt.conns : 1, sizeof *recs);
    uix_build();
}

static void w_joined(worker *w, conn *c)
{
    (void)w;
    recs[c->idx].key = c->idx + 1;
    recs[c->idx].origin_ns = c->t_req; /* when the phx_join was sent */
}

static void w_push(worker *w, conn *c, const phx_frame *f)
{
    (void)c;
    if (span_str_eq(f->event, "presence_state")) {
        w->ctr[CTR_presence_states]++;
        return;
    }
    if (!span_str_eq(f->event, "presence_diff")) return;
    w->ctr[CTR_presence_diffs]++;
    span joins, k, v;
    if (!json_obj_get(f->payload, "joins", &joins)) return;
    uint64_t now = now_ns();
    size_t pos = 0;
    while (json_obj_next(joins, &pos, &k, &v)) {
        uint64_t id;
        if (!key_to_id(k, &id) || id < g_opt.id_offset) continue;
        uint64_t idx = id - g_opt.id_offset;
        if (idx >= g_opt.conns) continue;
        recs[idx].key = idx + 1;
        recs[idx].count++;
        if (now > recs[idx].max_recv_ns) recs[idx].max_recv_ns = now;
    }
}

static void w_stop(worker *w)
{
    ipc_track *out = malloc(CHUNK * sizeof *out);
    uint32_t n = 0;
    for (uint32_t i = 0; i < g_opt.conns; i++) {
        if (!recs[i].key) continue;
        out[n++] = recs[i];
        if (n == CHUNK) {
            worker_send(w, M_TRACK, out, n * sizeof *out);
            n = 0;
        }
    }
    if (n) worker_send(w, M_TRACK, out, n * sizeof *out);
    free(out);
}

static void p_init(parent *p)
{
    (void)p;
    recs = calloc(g_opt.conns ? g_opt.conns : 1, sizeof *recs);
}

static void p_msg(parent *p, int wid, uint32_t type, const void *body, size_t len)
{
    (void)p;
    (void)wid;
    if (type != M_TRACK) return;
    const ipc_track *r = body;
    for (size_t i = 0; i < len / sizeof *r; i++) {
        uint64_t idx = r[i].key - 1;
        if (!r[i].key || idx >= g_opt.conns) continue;
        ipc_track *e = &recs[idx];
        e->key = r[i].key;
        if (r[i].origin_ns) e->origin_ns = r[i].origin_ns;
        e->count += r[i].count;
        if (r[i].max_recv_ns > e->max_recv_ns) e->max_recv_ns = r[i].max_recv_ns;
    }
}

static hist g_last;
static uint64_t g_diff_deliv, g_joins_seen;

static void p_finish(parent *p)
{
    (void)p;
    hist_init(&g_last);
    for (uint32_t i = 0; i < g_opt.conns; i++) {
        const ipc_track *e = &recs[i];
        g_diff_deliv += e->count;
        if (e->origin_ns && e->max_recv_ns > e->origin_ns) {
            hist_record(&g_last, (e->max_recv_ns - e->origin_ns) / 1000);
            g_joins_seen++;
        }
    }
}

static void p_result(parent *p, void *obj)
{
    json_t *res = obj, *t = json_object();
    uint64_t n = p->ready_joined;
    /* Joining one by one, join k (1-based) is seen by k viewers. */
    uint64_t expected = n * (n + 1) / 2;
    json_t *o = json_object();
    json_object_set_new(o, "viewers", json_integer((json_int_t)n));
    json_object_set_new(o, "joins_with_diff", json_integer((json_int_t)g_joins_seen));
    json_object_set_new(o, "diff_join_entries_received", json_integer((json_int_t)g_diff_deliv));
    json_object_set_new(o, "diff_join_entries_expected_sequential",
                        json_integer((json_int_t)expected));
    json_object_set_new(o, "presence_state_frames",
                        json_integer((json_int_t)p->sum_ctr[CTR_presence_states]));
    json_object_set_new(o, "join_to_last_viewer", hist_json(&g_last));
    json_object_set_new(res, "presence", o);
    printf("  presence: %llu viewers, diffs carrying %llu join entries (%llu if strictly one by "
           "one), %llu presence_state frames\n",
           (unsigned long long)n, (unsigned long long)g_diff_deliv, (unsigned long long)expected,
           (unsigned long long)p->sum_ctr[CTR_presence_states]);
    hist_print("join -> last viewer's diff", &g_last);
    json_object_set_new(t, "P8_diff_p99_ms",
                        target_json(hist_quantile(&g_last, 0.99) / 1000.0, 100, 0));
    if (p->rss_baseline && p->rss_end && n) {
        double per = ((double)p->rss_end - (double)p->rss_baseline) * 1024.0 / (double)n;
        json_object_set_new(res, "server_bytes_per_viewer", json_real(per));
        json_object_set_new(t, "P8_bytes_per_viewer", target_json(per, 2048, 0));
        printf("  server memory: %.0f bytes per viewer above baseline\n", per);
    }
    json_object_set_new(res, "target_checks", t);
}

const scenario scen_presence = {
    .name = "presence",
    .targets = "P8",
    .summary = "viewers join one Presence topic one by one; diff latency to the last viewer",
    .implemented = true,
    .default_topic = "conversation:load",
    .default_event = "ping",
    .default_run = 3,
    .w_init = w_init,
    .w_joined = w_joined,
    .w_push = w_push,
    .w_stop = w_stop,
    .p_init = p_init,
    .p_msg = p_msg,
    .p_finish = p_finish,
    .p_result = p_result,
};
