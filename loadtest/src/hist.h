/* hist.h — HdrHistogram-style latency histogram.
 *
 * A fixed array of log-linear buckets: values below 256 are exact, above that
 * each power of two is split into 128 sub-buckets, so any recorded value is
 * reported within 1/128 (< 0.8 %) of its true value. Recording is one index
 * computation and one increment: no allocation per sample. Values are
 * unsigned 64-bit integers in whatever unit the caller picks (sbload uses
 * microseconds). Two histograms merge by adding their arrays, which is how
 * worker processes' histograms are combined by the parent. */
#ifndef SBL_HIST_H
#define SBL_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_N ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct hist {
    uint64_t count;
    uint64_t min, max; /* exact extremes (min valid when count > 0) */
    uint64_t sum;
    uint64_t b[HIST_N];
} hist;

void hist_init(hist *h);
/* Index of the bucket that holds v. */
unsigned hist_index(uint64_t v);
/* Highest value that falls in bucket idx. */
uint64_t hist_upper(unsigned idx);
/* Lowest value that falls in bucket idx. */
uint64_t hist_lower(unsigned idx);

static inline void hist_record(hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    if (h->count == 0 || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->count++;
    h->sum += v;
}

/* Adds src into dst. */
void hist_merge(hist *dst, const hist *src);
/* Value at quantile q (0..1): the highest value equivalent to the sample of
 * rank ceil(q * count), clamped to the exact max; 0 when empty. */
uint64_t hist_quantile(const hist *h, double q);
double hist_mean(const hist *h);

#endif
