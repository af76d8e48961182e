/* strbuf.c — growable strings (see strbuf.h). */
#include "base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strbuf_add(strbuf *s, const void *data, size_t len, size_t limit)
{
    if (limit && s->len + len > limit) return -1;
    if (s->len + len + 1 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        while (ncap < s->len + len + 1) ncap *= 2;
        char *np = realloc(s->p, ncap);
        if (!np) return -1;
        s->p = np;
        s->cap = ncap;
    }
    if (len) memcpy(s->p + s->len, data, len);
    s->len += len;
    s->p[s->len] = 0;
    return 0;
}

int strbuf_addf(strbuf *s, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof tmp) return strbuf_add(s, tmp, (size_t)n, 0);
    char *big = malloc((size_t)n + 1);
    if (!big) return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = strbuf_add(s, big, (size_t)n, 0);
    free(big);
    return rc;
}

void strbuf_free(strbuf *s)
{
    free(s->p);
    s->p = NULL;
    s->len = s->cap = 0;
}
