/* metrics.h — the metrics registry: counters, gauges and histograms with
 * fixed buckets, counted per thread without locks and summed when scraped
 * (GET /metrics, the Prometheus text format; docs/operations.md).
 *
 * Every thread that counts owns a shard: an array of METRICS_SLOTS relaxed
 * atomics on cache lines of its own, claimed on its first increment. A
 * counter or gauge is one slot; a histogram is one slot per bucket, one for
 * +Inf and one for the sum. An increment is a load and a store of the
 * thread's own slot (single writer: no lock, no locked instruction); the
 * scrape reads every shard with relaxed loads and sums. Registration takes a
 * lock (normally at start, before the reactors run); metrics_text() and
 * metrics_sum() may run on any thread. A series is a name plus a fixed label
 * text (`route="/x",code="2xx"`): no per-user or per-topic labels. */
#ifndef SB_METRICS_H
#define SB_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include "base/strbuf.h"

#define METRICS_SLOTS 4096  /* slots per shard; slot 0 is a scratch slot */
#define METRICS_SHARDS 256  /* threads that can count (more: counts dropped) */
#define METRICS_MAX_BUCKETS 24

/* A registered series: its first slot (0: not registered — counting it is a
 * harmless no-op on the scratch slot). */
typedef uint32_t metrics_id;

typedef struct metrics_hist {
    metrics_id base;        /* slots base..base+nb: buckets (last: +Inf); base+nb+1: sum */
    int nb;                 /* finite bounds */
    const int64_t *bounds;  /* upper bounds in observed units, ascending */
} metrics_hist;

extern _Thread_local _Atomic uint64_t *metrics_tls;
/* The calling thread's shard, claimed on first use (internal to the inlines). */
_Atomic uint64_t *metrics_shard_claim(void);

/* Adds n to the series' slot on the calling thread's shard. */
static inline void metrics_add(metrics_id id, uint64_t n)
{
    _Atomic uint64_t *s = metrics_tls;
    if (__builtin_expect(s == 0, 0)) s = metrics_shard_claim();
    atomic_store_explicit(&s[id], atomic_load_explicit(&s[id], memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline void metrics_inc(metrics_id id) { metrics_add(id, 1); }
/* Gauges: up and down (the shards' values sum to the gauge). */
static inline void metrics_gauge_add(metrics_id id, int64_t d) { metrics_add(id, (uint64_t)d); }
/* Records value v (in the histogram's observed unit) in h. */
static inline void metrics_observe(const metrics_hist *h, int64_t v)
{
    int i = 0;
    while (i < h->nb && v > h->bounds[i]) i++;
    metrics_add(h->base + (metrics_id)i, 1);
    metrics_add(h->base + (metrics_id)h->nb + 1, (uint64_t)(v < 0 ? 0 : v));
}

/* Registers a counter series (name ends in _total) with labels (NULL or
 * `k="v",...`); returns its id, 0 when the slots are exhausted (logged by
 * metrics_text as a comment). Same name, same labels: the same id. */
metrics_id metrics_counter(const char *name, const char *help, const char *labels);
/* Registers a gauge series that modules move up and down. */
metrics_id metrics_gauge(const char *name, const char *help, const char *labels);
/* Registers a gauge read at scrape time: fn(arg) gives its value. */
void metrics_gauge_fn(const char *name, const char *help, const char *labels,
                      double (*fn)(void *arg), void *arg);
/* Registers a counter read at scrape time (a module's own atomic total). */
void metrics_counter_fn(const char *name, const char *help, const char *labels,
                        double (*fn)(void *arg), void *arg);
/* Registers a histogram series into *h: `nb` ascending finite upper bounds
 * in observed units (copied), shown divided by `scale` (1e6 for seconds
 * observed in microseconds). h is filled even when slots ran out (then its
 * base is 0: observations go to the scratch slot). */
void metrics_histogram(metrics_hist *h, const char *name, const char *help, const char *labels,
                       const int64_t *bounds, int nb, double scale);
/* A collector appends whole families (# HELP, # TYPE, samples) to out at
 * scrape time: the hook for modules that keep their own figures (push). */
typedef void (*metrics_collect_fn)(strbuf *out, void *arg);
void metrics_collector_add(metrics_collect_fn fn, void *arg);

/* The sum of a counter or gauge series over every shard (gauges: cast to
 * int64_t). */
uint64_t metrics_sum(metrics_id id);
/* Fills counts[0..nb] (non-cumulative, last: +Inf) and *sum (observed
 * units) of h, summed over every shard. */
void metrics_hist_read(const metrics_hist *h, uint64_t *counts, uint64_t *sum);
/* The sum of every series of family `name` (counters, gauges, scrape-time
 * values): what the dashboard shows. 0 for an unknown name. */
double metrics_value(const char *name);
/* A histogram family's first series: copies up to `max` finite bounds (in
 * seconds, or the family's unit) into bounds and nb+1 non-cumulative counts
 * into counts (counts needs max+1 room). Returns nb, or -1 if unknown. */
int metrics_hist_value(const char *name, double *bounds, uint64_t *counts, int max);
/* Appends the whole exposition (text format 0.0.4) to out. 0 or -1 (OOM). */
int metrics_text(strbuf *out);

/* Process figures (RSS bytes, open descriptors, start time): registers them
 * as scrape-time gauges. */
void metrics_register_process(void);

#endif
