/* range.c — Range header parsing (range.h). */
#include "media/range.h"

#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

static void ows(const char **s)
{
    while (**s == ' ' || **s == '\t') (*s)++;
}

/* Reads 1+ digits; saturates at UINT64_MAX. Returns false without digits. */
static bool num(const char **s, uint64_t *v)
{
    const char *p = *s;
    uint64_t x = 0;
    if (*p < '0' || *p > '9') return false;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
        p++;
    }
    *s = p;
    *v = x;
    return true;
}

int range_parse(const char *h, uint64_t size, range_span *out, int *n)
{
    *n = 0;
    if (!h) return RANGE_FULL;
    const char *s = h;
    ows(&s);
    if (strncasecmp(s, "bytes", 5) != 0) return RANGE_FULL;
    s += 5;
    ows(&s);
    if (*s != '=') return RANGE_FULL;
    s++;
    int specs = 0, got = 0;
    for (;;) {
        ows(&s);
        if (*s == ',') { /* empty list elements are allowed */
            s++;
            continue;
        }
        if (!*s) break;
        if (++specs > RANGE_MAX) return RANGE_FULL;
        uint64_t a = 0, b = UINT64_MAX;
        bool suffix = false;
        if (*s == '-') {
            s++;
            if (!num(&s, &b)) return RANGE_FULL;
            suffix = true;
        } else {
            if (!num(&s, &a)) return RANGE_FULL;
            if (*s != '-') return RANGE_FULL;
            s++;
            if (*s >= '0' && *s <= '9') {
                num(&s, &b);
                if (b < a) return RANGE_FULL; /* invalid: the header is ignored */
            }
        }
        ows(&s);
        if (*s && *s != ',') return RANGE_FULL;
        if (suffix) {
            if (b == 0 || size == 0) continue; /* unsatisfiable spec */
            uint64_t l = b < size ? b : size;
            out[got++] = (range_span){size - l, l};
        } else {
            if (a >= size) continue;
            uint64_t last = b >= size ? size - 1 : b;
            out[got++] = (range_span){a, last - a + 1};
        }
    }
    if (specs == 0) return RANGE_FULL;
    if (got == 0) return RANGE_UNSATISFIABLE;
    /* overlapping ranges (a cheap denial of service as multipart): whole */
    for (int i = 0; i < got; i++)
        for (int j = i + 1; j < got; j++) {
            uint64_t ae = out[i].start + out[i].len, be = out[j].start + out[j].len;
            if (out[i].start < be && out[j].start < ae) return RANGE_FULL;
        }
    *n = got;
    return RANGE_PARTIAL;
}
