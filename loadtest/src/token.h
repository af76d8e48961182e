/* token.h — minting Switchboard-style access tokens for load clients:
 * base64url(claims JSON) "." base64url(HMAC-SHA256(secret, first part)),
 * no padding, claims {"sub":"<user_id>","sid":"<sid>","exp":<unix>}. */
#ifndef SBL_TOKEN_H
#define SBL_TOKEN_H

#include <stddef.h>
#include <stdint.h>

/* base64url without padding; out must hold 4 * ((n + 2) / 3) + 1 bytes.
 * Returns the length written (NUL-terminated). */
size_t b64url(const void *in, size_t n, char *out);
/* Writes the token into out. Returns its length or -1 if cap is too small. */
int token_mint(char *out, size_t cap, const char *secret, size_t secret_len,
               const char *user_id, const char *sid, int64_t exp_unix);

#endif
