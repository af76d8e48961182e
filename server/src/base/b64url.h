/* b64url.h — base64url without padding (RFC 4648 §5): tokens, cursors. */
#ifndef SB_B64URL_H
#define SB_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* Encodes len bytes; returns a malloc'd NUL-terminated string, NULL when out
 * of memory. */
char *b64url_encode(const void *data, size_t len);
/* Strict decode (no padding, no whitespace, zero trailing bits): writes at
 * most *outlen bytes into out, sets *outlen, returns 0; -1 on invalid input
 * or when the result does not fit. */
int b64url_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen);

#endif
