/* push_metrics.c — push_stats as Prometheus series (see push_metrics.h).
 * Every series is read at scrape time from one push_stats snapshot per
 * series read; push keeps its own atomic totals, so nothing is counted twice. */
#include "push/push_metrics.h"

#include <stddef.h>
#include "base/metrics.h"
#include "base/strbuf.h"
#include "push/push.h"

/* A field of push_stats, by offset, as a double: the scrape-time reader. */
static double stat_at(void *arg)
{
    push_stats s;
    push_stats_get(&s);
    return (double)*(const uint64_t *)((const char *)&s + (size_t)arg);
}

/* The FCM answer time as a summary family without quantiles (_sum, _count). */
static void collect_latency(strbuf *out, void *arg)
{
    (void)arg;
    push_stats s;
    push_stats_get(&s);
    strbuf_addf(out,
                "# HELP sb_push_request_seconds time FCM took to answer a push request\n"
                "# TYPE sb_push_request_seconds summary\n"
                "sb_push_request_seconds_sum %.3f\n"
                "sb_push_request_seconds_count %llu\n",
                (double)s.latency_ms_sum / 1000.0, (unsigned long long)s.latency_count);
}

#define OFF(f) ((void *)offsetof(push_stats, f))

void push_metrics_register(void)
{
    static const struct { const char *labels; size_t off; } results[] = {
        {"result=\"sent\"", offsetof(push_stats, sent)},
        {"result=\"dead_token\"", offsetof(push_stats, failed_dead_token)},
        {"result=\"bad_request\"", offsetof(push_stats, failed_bad_request)},
        {"result=\"forbidden\"", offsetof(push_stats, failed_forbidden)},
        {"result=\"auth\"", offsetof(push_stats, failed_auth)},
        {"result=\"malformed\"", offsetof(push_stats, failed_malformed)},
        {"result=\"other\"", offsetof(push_stats, failed_other)},
        {"result=\"exhausted\"", offsetof(push_stats, failed_exhausted)},
        {"result=\"dropped\"", offsetof(push_stats, dropped)},
        {"result=\"unconfirmed\"", offsetof(push_stats, unconfirmed)},
        {"result=\"coalesced\"", offsetof(push_stats, coalesced)},
        {"result=\"online\"", offsetof(push_stats, skipped_online)},
    };
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        metrics_counter_fn("sb_push_results_total", "pushes by final result (dropped: shed from a full queue; coalesced: a held message replaced by a newer one of the same conversation within SB_FCM_ALERT_INTERVAL_MS, never pushed; online: a recipient of a held message who was online when it was decided)",
                           results[i].labels, stat_at, (void *)results[i].off);
    metrics_counter_fn("sb_push_retries_total", "push retries scheduled (429, 5xx, network)", NULL, stat_at,
                       OFF(retried));
    metrics_counter_fn("sb_push_refused_total",
                       "push requests FCM did not process (REFUSED_STREAM, above a GOAWAY's last-stream-id): sent again",
                       NULL, stat_at, OFF(refused));
    metrics_counter_fn("sb_push_tokens_deleted_total", "devices deleted because FCM called their token dead",
                       NULL, stat_at, OFF(tokens_deleted));
    metrics_counter_fn("sb_push_oauth_fetches_total", "OAuth access tokens obtained", NULL, stat_at,
                       OFF(oauth_fetches));
    metrics_counter_fn("sb_push_oauth_failures_total", "OAuth token requests that failed", NULL, stat_at,
                       OFF(oauth_failures));
    metrics_collector_add(collect_latency, NULL);
    metrics_gauge_fn("sb_push_queued", "pushes waiting to be sent", NULL, stat_at, OFF(queued));
    metrics_gauge_fn("sb_push_held", "messages held until their conversation's interval ends (at most one per conversation)",
                     NULL, stat_at, OFF(held));
}
