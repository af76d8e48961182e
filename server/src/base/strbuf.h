/* strbuf.h — a growable NUL-terminated string with an optional size limit. */
#ifndef SB_STRBUF_H
#define SB_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf;

/* Appends len bytes (keeps p NUL-terminated). Returns 0, or -1 when out of
 * memory or when the result would exceed `limit` bytes (0 = no limit). */
int strbuf_add(strbuf *s, const void *data, size_t len, size_t limit);
/* Appends printf-formatted text (no limit). Returns 0, or -1 when out of memory. */
int strbuf_addf(strbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the text and leaves s empty, ready for reuse. */
void strbuf_free(strbuf *s);

#endif
