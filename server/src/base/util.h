/* util.h — small shared helpers: growable strings, time, UTF-8, URL decoding. */
#ifndef SB_UTIL_H
#define SB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf;

/* Appends len bytes (keeps p NUL-terminated). Returns 0, or -1 when out of
 * memory or when the result would exceed `limit` bytes (0 = no limit). */
int strbuf_add(strbuf *s, const void *data, size_t len, size_t limit);
int strbuf_addf(strbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_free(strbuf *s);

/* Wall-clock milliseconds since the Unix epoch. */
int64_t now_unix_ms(void);
/* Formats ms-since-epoch as RFC 3339 UTC with milliseconds into out (>= 25 bytes). */
void format_rfc3339_ms(int64_t ms, char *out, size_t outlen);
/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool utf8_valid(const uint8_t *s, size_t len);
/* Percent-decodes in[0..len) into a malloc'd NUL-terminated string; '+' is a
 * space when `plus`. Returns NULL for bad escapes or embedded NUL. */
char *url_decode(const char *in, size_t len, bool plus);
/* Case-insensitive ASCII comparison of a[0..n) with NUL-terminated b. */
bool ascii_ieq(const char *a, size_t n, const char *b);
/* Fills buf with n cryptographically random bytes; returns 0 or -1. */
int random_bytes(void *buf, size_t n);
/* Writes 2n hex digits of data plus NUL into out. */
void hex_encode(const uint8_t *data, size_t n, char *out);

#endif
