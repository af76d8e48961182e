/* accounts_connect.c — the socket connect callback (see accounts_connect.h). */
#include "accounts/accounts_connect.h"

#include <stdint.h>
#include <string.h>
#include "base/config.h"
#include "base/util.h"

accounts_connect_revoked_fn accounts_connect_revoked_hook;

int accounts_connect_socket(const char *token, token_claims *claims)
{
    if (!token[0]) return -1;
    if (token_verify((const uint8_t *)g_config.secret, g_config.secret_len, token, strlen(token),
                     util_now_unix_ms() / 1000, claims) != TOKEN_OK)
        return -1;
    if (accounts_connect_revoked_hook && accounts_connect_revoked_hook(claims->session_id))
        return -1; /* signed out */
    return 0;
}
