/* fuzz_range.c — libFuzzer target: the Range header parser
 * (media/range.c). Input: 8 bytes of representation size (little endian,
 * kept under 2^40), then the header value. Whatever it says, every span it
 * returns lies inside the size, is non-empty, no two overlap, there are at
 * most RANGE_MAX, and RANGE_FULL / RANGE_UNSATISFIABLE return none. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "media/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) return 0;
    uint64_t total = 0;
    for (int i = 7; i >= 0; i--) total = total << 8 | data[i];
    total &= ((uint64_t)1 << 40) - 1;
    char *h = malloc(size - 8 + 1);
    if (!h) return 0;
    memcpy(h, data + 8, size - 8);
    h[size - 8] = 0;
    range_span sp[RANGE_MAX];
    int n = -1;
    int rk = range_parse(h, total, sp, &n);
    free(h);
    if (rk != RANGE_PARTIAL) {
        if (n != 0) abort();
        if (rk != RANGE_FULL && rk != RANGE_UNSATISFIABLE) abort();
        return 0;
    }
    if (n < 1 || n > RANGE_MAX) abort();
    for (int i = 0; i < n; i++) {
        if (sp[i].len == 0 || sp[i].start >= total || sp[i].len > total - sp[i].start) abort();
        for (int j = i + 1; j < n; j++)
            if (sp[i].start < sp[j].start + sp[j].len && sp[j].start < sp[i].start + sp[i].len) abort();
    }
    return 0;
}
