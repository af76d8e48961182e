/* hist.c — log-linear bucketed histogram (see hist.h). */
#include "hist.h"

#include <string.h>

void hist_init(hist *h) { memset(h, 0, sizeof *h); }

unsigned hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS + 1 */
    unsigned shift = e - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

uint64_t hist_lower(unsigned idx)
{
    if (idx < 2 * HIST_SUB) return idx;
    unsigned shift = idx / HIST_SUB - 1;
    uint64_t mant = idx % HIST_SUB + HIST_SUB;
    return mant << shift;
}

uint64_t hist_upper(unsigned idx)
{
    if (idx < 2 * HIST_SUB) return idx;
    unsigned shift = idx / HIST_SUB - 1;
    uint64_t mant = idx % HIST_SUB + HIST_SUB;
    if (shift >= 57 && mant == 2 * HIST_SUB - 1) return UINT64_MAX;
    return ((mant + 1) << shift) - 1;
}

void hist_merge(hist *dst, const hist *src)
{
    if (src->count == 0) return;
    if (dst->count == 0 || src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (unsigned i = 0; i < HIST_N; i++) dst->b[i] += src->b[i];
}

uint64_t hist_quantile(const hist *h, double q)
{
    if (h->count == 0) return 0;
    if (q <= 0) return h->min;
    if (q >= 1) return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count) rank++;
    if (rank == 0) rank = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < HIST_N; i++) {
        cum += h->b[i];
        if (cum >= rank) {
            uint64_t v = hist_upper(i);
            if (v > h->max) v = h->max;
            if (v < h->min) v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const hist *h) { return h->count ? (double)h->sum / (double)h->count : 0.0; }
