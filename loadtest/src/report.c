/* report.c — summaries (see report.h). */
#include "report.h"

#include <string.h>

const char *const sbl_ctr_names[CTR__N] = {
#define X(n) #n,
    SBL_COUNTERS(X)
#undef X
};
const char *const sbl_hist_names[H__N] = {"join", "latency", "publish_ack", "send_lag", "signal_relay",
    "call_post", "call_incoming", "call_joined", "call_accepted", "call_offer", "call_answer", "call_ice"};

static void min_nz(uint64_t *d, uint64_t s)
{
    if (s && (!*d || s < *d)) *d = s;
}
static void max_nz(uint64_t *d, uint64_t s)
{
    if (s > *d) *d = s;
}

void times_merge(sbl_times *dst, const sbl_times *src)
{
    min_nz(&dst->first_join, src->first_join);
    max_nz(&dst->last_join, src->last_join);
    min_nz(&dst->first_pub, src->first_pub);
    max_nz(&dst->last_pub_ack, src->last_pub_ack);
    min_nz(&dst->first_delivery, src->first_delivery);
    max_nz(&dst->last_delivery, src->last_delivery);
    dst->joined_now += src->joined_now;
    dst->worker_rss_kb += src->worker_rss_kb;
}

static bool is_error_ctr(int k)
{
    const char *n = sbl_ctr_names[k];
    return strncmp(n, "err_", 4) == 0 || k == CTR_join_errors || k == CTR_failed ||
           k == CTR_closed_by_server || k == CTR_reset_by_server || k == CTR_hb_timeout ||
           k == CTR_phx_error || k == CTR_pub_errors || k == CTR_send_errors ||
           k == CTR_bad_deliveries;
}

uint64_t report_errors_total(const uint64_t *ctr)
{
    uint64_t s = 0;
    for (int k = 0; k < CTR__N; k++)
        if (is_error_ctr(k) && k != CTR_failed) s += ctr[k];
    return s;
}

static double ms(uint64_t us) { return (double)us / 1000.0; }

json_t *hist_json(const hist *h)
{
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    json_object_set_new(o, "mean_ms", json_real(hist_mean(h) / 1000.0));
    json_object_set_new(o, "p50_ms", json_real(ms(hist_quantile(h, 0.50))));
    json_object_set_new(o, "p99_ms", json_real(ms(hist_quantile(h, 0.99))));
    json_object_set_new(o, "p999_ms", json_real(ms(hist_quantile(h, 0.999))));
    json_object_set_new(o, "max_ms", json_real(ms(h->max)));
    return o;
}

void hist_print(const char *label, const hist *h)
{
    if (!h->count) {
        printf("  %-28s no samples\n", label);
        return;
    }
    printf("  %-28s n=%llu  p50 %.3f  p99 %.3f  p999 %.3f  max %.3f ms\n", label,
           (unsigned long long)h->count, ms(hist_quantile(h, 0.5)), ms(hist_quantile(h, 0.99)),
           ms(hist_quantile(h, 0.999)), ms(h->max));
}

json_t *target_json(double v, double limit, int at_least)
{
    json_t *o = json_object();
    json_object_set_new(o, "value", json_real(v));
    json_object_set_new(o, "limit", json_real(limit));
    json_object_set_new(o, "pass", json_boolean(at_least ? v >= limit : v <= limit));
    return o;
}

void report_common(parent *p, json_t *res, uint64_t t_end)
{
    const uint64_t *ctr = p->sum_ctr;
    json_object_set_new(res, "scenario", json_string(g_scen->name));
    json_object_set_new(res, "targets", json_string(g_scen->targets));
    json_object_set_new(res, "conns", json_integer(g_opt.conns));
    json_object_set_new(res, "procs", json_integer(g_opt.procs));
    json_t *ports = json_array();
    for (int i = 0; i < g_opt.nports; i++) json_array_append_new(ports, json_integer(g_opt.ports[i]));
    json_object_set_new(res, "ports", ports);
    json_object_set_new(res, "sources", json_integer(g_opt.nsrc));
    json_object_set_new(res, "topic", json_string(g_opt.topic));
    json_object_set_new(res, "elapsed_s", json_real((double)(t_end - p->t0) / 1e9));
    json_object_set_new(res, "timed_out", json_boolean(p->timed_out));
    json_object_set_new(res, "interrupted", json_boolean(p->interrupted));

    /* Connect phase: measured when every worker had settled its connects. */
    const sbl_times *tr = &p->tm_ready;
    double t_all = tr->last_join ? (double)(tr->last_join - p->t0) / 1e9 : 0;
    double jps = t_all > 0 ? (double)p->ready_joined / t_all : 0;
    json_t *cj = json_object();
    json_object_set_new(cj, "joined", json_integer((json_int_t)p->ready_joined));
    json_object_set_new(cj, "time_to_all_joined_s", json_real(t_all));
    json_object_set_new(cj, "joins_per_s", json_real(jps));
    json_object_set_new(cj, "peak_joins_per_s", json_real(p->peak_join_rate));
    json_object_set_new(cj, "join_latency", hist_json(&p->h[H_JOIN]));
    json_object_set_new(res, "connect", cj);

    json_t *errs = json_object(), *all = json_object();
    for (int k = 0; k < CTR__N; k++) {
        if (!ctr[k]) continue;
        json_object_set_new(all, sbl_ctr_names[k], json_integer((json_int_t)ctr[k]));
        if (is_error_ctr(k))
            json_object_set_new(errs, sbl_ctr_names[k], json_integer((json_int_t)ctr[k]));
    }
    json_object_set_new(res, "errors", errs);
    json_object_set_new(res, "counters", all);
    json_object_set_new(res, "held_at_stop", json_integer((json_int_t)p->tm.joined_now));
    json_object_set_new(res, "loadgen_rss_kb", json_integer((json_int_t)p->tm.worker_rss_kb));
    if (g_opt.nserver_pids) {
        json_t *r = json_object();
        json_object_set_new(r, "baseline", json_integer((json_int_t)p->rss_baseline));
        json_object_set_new(r, "ready", json_integer((json_int_t)p->rss_ready));
        json_object_set_new(r, "end", json_integer((json_int_t)p->rss_end));
        json_object_set_new(r, "max", json_integer((json_int_t)p->rss_max));
        json_object_set_new(res, "server_rss_kb", r);
        json_t *cv = json_array();
        for (uint32_t i = 0; i < p->ncurve; i++)
            json_array_append_new(cv, json_pack("[I,I]", (json_int_t)p->curve[i][0],
                                                 (json_int_t)p->curve[i][1]));
        json_object_set_new(res, "rss_curve", cv);
    }

    printf("sbload %s (%s): %u connections, %d worker process(es), ports", g_scen->name,
           g_scen->targets, g_opt.conns, g_opt.procs);
    for (int i = 0; i < g_opt.nports; i++) printf("%s%d", i ? "," : " ", g_opt.ports[i]);
    printf(", %d source address(es), topic %s\n", g_opt.nsrc, g_opt.topic);
    printf("  joined %llu/%u in %.3f s: %.0f joins/s average, %.0f joins/s peak second\n",
           (unsigned long long)p->ready_joined, g_opt.conns, t_all, jps, p->peak_join_rate);
    hist_print("connect+upgrade+join", &p->h[H_JOIN]);
    uint64_t ne = report_errors_total(ctr);
    printf("  errors: %llu", (unsigned long long)ne);
    for (int k = 0; k < CTR__N; k++)
        if (ctr[k] && is_error_ctr(k))
            printf(" %s=%llu", sbl_ctr_names[k], (unsigned long long)ctr[k]);
    printf("\n");
    if (g_opt.nserver_pids)
        printf("  server RSS: baseline %.1f MiB, all joined %.1f MiB, end %.1f MiB, max %.1f MiB\n",
               p->rss_baseline / 1024.0, p->rss_ready / 1024.0, p->rss_end / 1024.0,
               p->rss_max / 1024.0);
    if (p->timed_out) printf("  stopped by --duration\n");
    if (p->interrupted) printf("  interrupted\n");
}
