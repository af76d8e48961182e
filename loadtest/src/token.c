/* token.c — access token minting (see token.h). */
#include "token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

size_t b64url(const void *in_, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const uint8_t *in = in_;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = t[v >> 6 & 63];
        out[o++] = t[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        if (i + 1 < n) out[o++] = t[v >> 6 & 63];
    }
    out[o] = 0;
    return o;
}

int token_mint(char *out, size_t cap, const char *secret, size_t secret_len,
               const char *user_id, const char *sid, int64_t exp_unix)
{
    char claims[256];
    int cl = snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"sid\":\"%s\",\"exp\":%lld}",
                      user_id, sid, (long long)exp_unix);
    if (cl < 0 || (size_t)cl >= sizeof claims) return -1;
    size_t need = 4 * (((size_t)cl + 2) / 3) + 1 + 44 + 1;
    if (cap < need) return -1;
    size_t o = b64url(claims, (size_t)cl, out);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)out, o, mac, &ml))
        return -1;
    out[o++] = '.';
    o += b64url(mac, ml, out + o);
    return (int)o;
}
