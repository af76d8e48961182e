/* push_jwt.c — RS256 service-account assertions (push_jwt.h). */
#include "push/push_jwt.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include "base/b64url.h"

/* b64url of o's compact JSON (o is released). */
static char *b64_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) return NULL;
    char *b = b64url_encode(s, strlen(s));
    free(s);
    return b;
}

char *push_jwt_make(const push_parse_key_t *k, int64_t now_s)
{
    json_t *h = json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
    if (h && k->private_key_id[0]) json_object_set_new(h, "kid", json_string(k->private_key_id));
    char *hb = b64_json(h);
    char *cb = b64_json(json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", k->client_email, "scope",
                                  PUSH_JWT_SCOPE, "aud", k->token_uri, "iat", (json_int_t)now_s,
                                  "exp", (json_int_t)(now_s + 3600)));
    char *out = NULL, *input = NULL, *sb = NULL;
    unsigned char *sig = NULL;
    EVP_MD_CTX *ctx = NULL;
    if (!hb || !cb) goto done;
    size_t hl = strlen(hb), cl = strlen(cb);
    input = malloc(hl + 1 + cl + 1);
    if (!input) goto done;
    memcpy(input, hb, hl);
    input[hl] = '.';
    memcpy(input + hl + 1, cb, cl + 1);
    ctx = EVP_MD_CTX_new();
    size_t siglen = 0;
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input, hl + 1 + cl) != 1)
        goto done;
    sig = malloc(siglen);
    if (!sig || EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, hl + 1 + cl) != 1)
        goto done;
    sb = b64url_encode(sig, siglen);
    if (!sb) goto done;
    size_t il = hl + 1 + cl, sl = strlen(sb);
    out = malloc(il + 1 + sl + 1);
    if (!out) goto done;
    memcpy(out, input, il);
    out[il] = '.';
    memcpy(out + il + 1, sb, sl + 1);
done:
    EVP_MD_CTX_free(ctx);
    free(hb);
    free(cb);
    free(input);
    free(sig);
    free(sb);
    return out;
}
