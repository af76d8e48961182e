/* range.h — the Range request header (RFC 9110 14.2, bytes only) against a
 * representation of a known size. Pure. */
#ifndef SB_RANGE_H
#define SB_RANGE_H

#include <stdint.h>

#define RANGE_MAX 8 /* more ranges than this: the whole representation */

typedef struct range_span {
    uint64_t start, len; /* satisfiable: start < size, len > 0 */
} range_span;

enum {
    RANGE_FULL = 0,    /* no usable Range (absent, malformed, not bytes, more than
                        * RANGE_MAX or overlapping ranges): send everything, 200 */
    RANGE_PARTIAL = 1, /* *n satisfiable spans (1: 206; more: multipart/byteranges) */
    RANGE_UNSATISFIABLE = 2 /* well-formed, but no range overlaps the content: 416 */
};

/* Parses header (may be NULL) for a representation of `size` bytes into
 * out[RANGE_MAX], in the order asked (unsatisfiable specs dropped, ends
 * clamped to the size). Returns RANGE_FULL, RANGE_PARTIAL or
 * RANGE_UNSATISFIABLE. */
int range_parse(const char *header, uint64_t size, range_span *out, int *n);

#endif
