/* admin_ops.h — what the admin actions do to accounts (api.md §4): ban,
 * unban, disconnect, and the counts the dashboard shows. Core: Postgres and
 * the bus only; the admin edge (admin_rest.c) answers HTTP. */
#ifndef SB_ADMIN_OPS_H
#define SB_ADMIN_OPS_H

#include <jansson.h>

struct db_pool;

/* The answer, on the calling reactor's thread: body (stolen) on success,
 * else code (not_found, unavailable, internal) and a message. */
typedef void (*admin_ops_done_fn)(void *arg, json_t *body, const char *code, const char *message);

/* Bans user_id: sets users.banned_at (kept if already banned), revokes
 * every session (revoke_reason 'banned'; their refresh tokens die with
 * them), deletes their devices, then publishes, for every node, each
 * session's revocation (its access tokens refused, its sockets closed 1008)
 * and the user's disconnect (1008). Logins and refreshes are refused while
 * banned_at is set (accounts). Answers {"user_id", "banned": true,
 * "sessions_revoked": n}; not_found for an unknown user. */
void admin_ops_ban(struct db_pool *db, const char *user_id, admin_ops_done_fn done, void *arg);
/* Clears users.banned_at: the user can sign in again (old sessions stay
 * revoked). Answers {"user_id", "banned": false}; not_found. */
void admin_ops_unban(struct db_pool *db, const char *user_id, admin_ops_done_fn done, void *arg);
/* Closes every socket of user_id on every node with 1008 (the user may
 * reconnect). Answers {"user_id", "disconnected": true}; not_found. */
void admin_ops_disconnect(struct db_pool *db, const char *user_id, admin_ops_done_fn done, void *arg);
/* Answers {"open_reports": n, "users": n, "banned_users": n}. */
void admin_ops_counts(struct db_pool *db, admin_ops_done_fn done, void *arg);

#endif
