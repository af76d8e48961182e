/* admin_auth.c — see admin_auth.h. */
#include "admin/admin_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

int admin_auth_check(const char *authorization, const char *admin_token)
{
    if (!admin_token || !admin_token[0]) return ADMIN_AUTH_DISABLED;
    if (!authorization) return ADMIN_AUTH_MISSING;
    const char *p = authorization;
    while (*p == ' ' || *p == '\t') p++;
    if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) return ADMIN_AUTH_MISSING;
    p += 6;
    while (*p == ' ' || *p == '\t') p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (n == 0) return ADMIN_AUTH_MISSING;
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)p, n, a);
    SHA256((const unsigned char *)admin_token, strlen(admin_token), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0 ? ADMIN_AUTH_OK : ADMIN_AUTH_WRONG;
}
