/* accounts_internal.h — what the accounts core (accounts.c) shares with
 * its REST edges (accounts_rest.c, profile_rest.c). Knows no HTTP. */
#ifndef SB_ACCOUNTS_INTERNAL_H
#define SB_ACCOUNTS_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

/* The user columns every query selects, in this order, from alias u. */
#define USER_COLS                                                                                  \
    "u.id, u.username, u.display_name, u.about, u.avatar_media_id, "                               \
    "floor(extract(epoch from u.created_at) * 1000)::int8, "                                       \
    "floor(extract(epoch from u.last_seen_at) * 1000)::int8, (u.banned_at IS NOT NULL)"
enum { UC_ID, UC_USERNAME, UC_DISPLAY, UC_ABOUT, UC_AVATAR, UC_CREATED, UC_SEEN, UC_BANNED, UC_N };

/* The public user object {id, username, display_name, about,
 * avatar_media_id, created_at} from the USER_COLS at row (new reference). */
json_t *accounts_user_json(const PGresult *res, int row);
/* True if the USER_COLS row at `row` is a banned account. */
bool accounts_row_banned(const PGresult *res, int row);

/* Makes a new refresh token (base64url of 32 random bytes) into tok and its
 * stored form (hex SHA-256 of the bytes) into hash. Returns 0 or -1. */
int accounts_refresh_new(char tok[48], char hash[65]);
/* The stored form of a refresh token presented by a client, or -1 when it
 * cannot be one of ours (not base64url of exactly 32 bytes). */
int accounts_refresh_hash(const char *tok, char hash[65]);

/* db_query callback for fire-and-forget queries: logs real errors only. */
void accounts_ignore_result(const PGresult *res, const char *err, void *arg);

/* Registers the profile, user and device routes (profile_rest.c); called
 * by accounts_routes. */
void accounts_profile_routes(void);
/* Registers POST /me/password and DELETE /me (me_rest.c); called by
 * accounts_routes. */
void accounts_me_routes(void);

#endif
