/* token.c — signed access tokens (see token.h).
 *
 * token = base64url(claims) "." base64url(HMAC-SHA256(secret, base64url(claims)))
 * The MAC covers the encoded text of the first part, so it is checked before
 * anything of the claims is decoded or parsed. */
#include "base/token.h"
#include "base/b64url.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX_LEN 1024
#define MAC_LEN 32

/* Ids: 1..TOKEN_MAX_ID characters of [A-Za-z0-9_.:-]. */
static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n > TOKEN_MAX_ID) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static bool mac(const uint8_t *secret, size_t secret_len, const char *msg, size_t len,
                uint8_t out[MAC_LEN])
{
    unsigned int n = 0;
    if (secret_len == 0 || secret_len > INT32_MAX) return false;
    return HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)msg, len, out, &n) !=
               NULL &&
           n == MAC_LEN;
}

/* Mints a token for valid ids and a non-empty secret; NULL otherwise or when
 * out of memory. */
char *token_mint(const uint8_t *secret, size_t secret_len, const char *user_id,
                 const char *session_id, int64_t exp_unix)
{
    if (!secret || !user_id || !session_id) return NULL;
    if (!id_ok(user_id, strlen(user_id)) || !id_ok(session_id, strlen(session_id))) return NULL;
    char claims[2 * TOKEN_MAX_ID + 64]; /* ids need no JSON escaping (charset) */
    int cl = snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"sid\":\"%s\",\"exp\":%lld}",
                      user_id, session_id, (long long)exp_unix);
    if (cl < 0 || (size_t)cl >= sizeof claims) return NULL;
    char *body = b64url_encode(claims, (size_t)cl);
    if (!body) return NULL;
    size_t bl = strlen(body);
    uint8_t sig[MAC_LEN];
    char *sig64 = NULL, *tok = NULL;
    if (mac(secret, secret_len, body, bl, sig) && (sig64 = b64url_encode(sig, MAC_LEN))) {
        size_t sl = strlen(sig64);
        tok = malloc(bl + 1 + sl + 1);
        if (tok) {
            memcpy(tok, body, bl);
            tok[bl] = '.';
            memcpy(tok + bl + 1, sig64, sl + 1);
        }
    }
    free(body);
    free(sig64);
    return tok;
}

/* Copies a claim string that must satisfy id_ok. */
static bool take_id(json_t *claims, const char *key, char dst[TOKEN_MAX_ID + 1])
{
    json_t *v = json_object_get(claims, key);
    if (!json_is_string(v)) return false;
    size_t n = json_string_length(v);
    if (!id_ok(json_string_value(v), n)) return false;
    memcpy(dst, json_string_value(v), n);
    dst[n] = 0;
    return true;
}

/* Verifies signature, then claims, then expiry (exp <= now is expired). *out
 * is written only on TOKEN_OK. */
int token_verify(const uint8_t *secret, size_t secret_len, const char *tok, size_t len,
                 int64_t now_unix, token_claims *out)
{
    if (!secret || !tok || len == 0 || len > TOKEN_MAX_LEN) return TOKEN_BAD;
    const char *dot = memchr(tok, '.', len);
    if (!dot) return TOKEN_BAD;
    size_t bl = (size_t)(dot - tok);
    const char *sig64 = dot + 1;
    size_t sl = len - bl - 1;
    if (bl == 0) return TOKEN_BAD;

    uint8_t sig[MAC_LEN + 3], want[MAC_LEN];
    size_t siglen = sizeof sig;
    if (b64url_decode(sig64, sl, sig, &siglen) != 0 || siglen != MAC_LEN) return TOKEN_BAD;
    if (!mac(secret, secret_len, tok, bl, want)) return TOKEN_BAD;
    if (CRYPTO_memcmp(sig, want, MAC_LEN) != 0) return TOKEN_BAD;

    uint8_t claims_raw[TOKEN_MAX_LEN];
    size_t cl = sizeof claims_raw;
    if (b64url_decode(tok, bl, claims_raw, &cl) != 0) return TOKEN_BAD;
    json_error_t err;
    json_t *claims = json_loadb((const char *)claims_raw, cl, JSON_REJECT_DUPLICATES, &err);
    if (!claims) return TOKEN_BAD;
    token_claims c;
    json_t *exp = json_object_get(claims, "exp");
    bool ok = json_is_object(claims) && take_id(claims, "sub", c.user_id) &&
              take_id(claims, "sid", c.session_id) && json_is_integer(exp);
    if (ok) c.exp = (int64_t)json_integer_value(exp);
    json_decref(claims);
    if (!ok) return TOKEN_BAD;
    if (c.exp <= now_unix) return TOKEN_EXPIRED;
    if (out) *out = c;
    return TOKEN_OK;
}
