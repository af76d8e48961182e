/* accounts_connect.h — the application's socket connect (what Phoenix's
 * UserSocket.connect/3 is): an access token in, the user and session the
 * socket runs as out. main.c hands accounts_connect_socket to the Phoenix
 * connect (phx_connect_set_handler); it uses no Phoenix types. */
#ifndef SB_ACCOUNTS_CONNECT_H
#define SB_ACCOUNTS_CONNECT_H

#include <stdbool.h>
#include "base/token.h"

/* Whether a session has been signed out (its access tokens refused). Set by
 * main.c before the reactors run (the revoked-session list); NULL: none is. */
typedef bool (*accounts_connect_revoked_fn)(const char *session_id);
extern accounts_connect_revoked_fn accounts_connect_revoked_hook;

/* Accepts `token` (NUL-terminated) when it is an unexpired access token
 * signed with the configured secret whose session is not revoked: fills
 * *claims and returns 0. Otherwise returns -1. Thread-safe, never blocks. */
int accounts_connect_socket(const char *token, token_claims *claims);

#endif
