/* util.h — small shared helpers: time, UTF-8, URL decoding, random bytes, hex. */
#ifndef SB_UTIL_H
#define SB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the Unix epoch. */
int64_t util_now_unix_ms(void);
/* Formats ms-since-epoch as RFC 3339 UTC with milliseconds into out (>= 25 bytes). */
void util_format_rfc3339_ms(int64_t ms, char *out, size_t outlen);
/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool util_utf8_valid(const uint8_t *s, size_t len);
/* Percent-decodes in[0..len) into a malloc'd NUL-terminated string; '+' is a
 * space when `plus`. Returns NULL for bad escapes or embedded NUL. */
char *util_url_decode(const char *in, size_t len, bool plus);
/* Case-insensitive ASCII comparison of a[0..n) with NUL-terminated b. */
bool util_ascii_ieq(const char *a, size_t n, const char *b);
/* Fills buf with n cryptographically random bytes; returns 0 or -1. */
int util_random_bytes(void *buf, size_t n);
/* Writes 2n hex digits of data plus NUL into out. */
void util_hex_encode(const uint8_t *data, size_t n, char *out);
/* Narrows s[0..*len) past leading and trailing spaces and tabs (HTTP's
 * optional whitespace); returns the new start and updates *len. */
const char *util_trim_ows(const char *s, size_t *len);

#endif
