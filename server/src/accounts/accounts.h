/* accounts.h — sign-up, sign-in, sessions, profiles and devices (REST,
 * api.md §2 "Auth and account").
 *
 * Sessions: a sign-in creates a session (its id is the `sid` of the access
 * tokens) and a first refresh token. POST /auth/refresh rotates: the token
 * presented is marked rotated and a new one issued in the same session;
 * presenting a rotated token again revokes the whole session ("family") and
 * disconnects its sockets. Refresh tokens are 32 random bytes (base64url),
 * stored only as SHA-256 hashes. Passwords are Argon2id, hashed off the
 * reactor thread. */
#ifndef SB_ACCOUNTS_H
#define SB_ACCOUNTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reactor;

/* Registers the accounts routes with router_add (call once, before the
 * reactors start). Also applies the rate-limit settings; returns -1 (logged)
 * when one of them is malformed, else 0. */
int accounts_routes(void);

/* At start, before the reactors run: reads the sessions revoked within the
 * last access-token lifetime from Postgres (blocking, bounded by a connect
 * timeout) so that their unexpired access tokens stay refused across a
 * restart. Returns how many were loaded, or -1 (logged) when Postgres could
 * not be read: the server then starts anyway. */
int accounts_load_revoked(const char *conninfo);

/* Presence hook for GET /users/:id: when set, called on the reactor thread
 * with a user id; returns true if the user has a live socket anywhere. It
 * may also set *last_seen_ms (ms since the epoch) to a fresher last-seen time
 * than the database's, and leaves it untouched otherwise. NULL (the
 * default): everyone is reported offline. Set it once at start. */
typedef bool (*accounts_presence_fn)(const char *user_id, int64_t *last_seen_ms);
extern accounts_presence_fn accounts_presence_hook;

/* Housekeeping, to be called from one reactor's 1 s tick: about once an hour
 * deletes expired refresh tokens (rotated ones are kept until they expire,
 * for reuse detection) and sessions left with no token. Never blocks. */
void accounts_tick(struct reactor *r);

/* Lower-cases a username into out (>= 33 bytes) and checks it is 3-32 of
 * [a-z0-9_.]. Returns true if valid. */
bool accounts_username_normalize(const char *in, char *out, size_t outlen);

#endif
