/* admin_auth.h — the admin listener's bearer token check (api.md §4;
 * docs/operations.md). Core: pure, no I/O. */
#ifndef SB_ADMIN_AUTH_H
#define SB_ADMIN_AUTH_H

enum {
    ADMIN_AUTH_OK = 0,
    ADMIN_AUTH_MISSING,  /* no Authorization header, or not "Bearer <token>": 401 */
    ADMIN_AUTH_WRONG,    /* a bearer token that is not the admin token: 403 */
    ADMIN_AUTH_DISABLED, /* no admin token configured: every admin action refused, 403 */
};

/* Checks an Authorization header value (may be NULL) against the
 * configured admin token (may be NULL or empty: disabled). The comparison
 * takes the same time whatever the tokens' contents and lengths (both are
 * hashed with SHA-256, the digests compared with CRYPTO_memcmp). */
int admin_auth_check(const char *authorization, const char *admin_token);

#endif
