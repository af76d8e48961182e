/* token.h — signed access tokens (HMAC-SHA256), as the socket and REST accept.
 *
 * Format: base64url(claims JSON) "." base64url(HMAC-SHA256(secret, first part)),
 * claims {"sub":"<user_id>","sid":"<session id>","exp":<unix seconds>}.
 * The signature is compared in constant time. */
#ifndef SB_TOKEN_H
#define SB_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_MAX_ID 64

typedef struct token_claims {
    char user_id[TOKEN_MAX_ID + 1];
    char session_id[TOKEN_MAX_ID + 1];
    int64_t exp;
} token_claims;

enum { TOKEN_OK = 0, TOKEN_BAD = -1, TOKEN_EXPIRED = -2 };

/* Mints a token; returns a malloc'd NUL-terminated string or NULL (ids longer
 * than TOKEN_MAX_ID or containing characters other than [A-Za-z0-9_.:-]). */
char *token_mint(const uint8_t *secret, size_t secret_len, const char *user_id,
                 const char *session_id, int64_t exp_unix);
/* Verifies `tok` (len bytes, not necessarily NUL-terminated) against the
 * secret at time `now_unix`; fills *out on TOKEN_OK. Returns TOKEN_OK,
 * TOKEN_BAD (malformed, bad signature) or TOKEN_EXPIRED. */
int token_verify(const uint8_t *secret, size_t secret_len, const char *tok, size_t len,
                 int64_t now_unix, token_claims *out);

#endif
