/* turn.h — the ICE servers (STUN/TURN) a call participant is handed
 * (api.md "Calls": POST /calls, GET /calls/active, GET /turn). The contract
 * between the call signaling (calls_rest.c) and the TURN credentials
 * (turn.c): only this header is shared. */
#ifndef SB_TURN_H
#define SB_TURN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Returns a new JSON array (the caller owns the reference, never NULL) of
 * ICE servers for the user with decimal id user_id, each
 * {"urls":[...], "username":..., "credential":...} as in api.md's
 * GET /api/v1/turn (STUN-only entries may omit username/credential). An
 * empty array when no TURN/STUN URIs are configured. Pure: no I/O, callable
 * from any reactor thread. */
json_t *turn_ice_servers(const char *user_id);

/* ---- coturn REST-API credentials (turn.c), for turn_rest.c and tests ---- */

#define TURN_CREDENTIAL_LEN 28 /* base64 of a 20-byte HMAC-SHA1, with padding */
#define TURN_URIS_MAX 16       /* URIs in SB_TURN_URIS */
#define TURN_TTL_MAX 31536000  /* one year */

/* Writes coturn's ephemeral username "<expiry_unix>:<user_id>" into out.
 * Returns 0, or -1 when user_id is not a decimal id or out (outsz bytes) is
 * too small. */
int turn_username(int64_t expiry_unix, const char *user_id, char *out, size_t outsz);

/* Writes base64(HMAC-SHA1(secret, username)) (TURN_CREDENTIAL_LEN chars and
 * a NUL) into out, the password coturn's use-auth-secret expects. Returns 0,
 * or -1 when outsz < TURN_CREDENTIAL_LEN + 1 or OpenSSL fails. */
int turn_credential(const uint8_t *secret, size_t secret_len, const char *username, char *out,
                    size_t outsz);

/* Checks SB_TURN_URIS / SB_TURN_SECRET / SB_TURN_TTL (g_cfg) once at start:
 * every comma-separated URI starts with turn:, turns:, stun: or stuns: and
 * has a host, at most TURN_URIS_MAX of them, turn(s): URIs need a secret,
 * the TTL is 1..TURN_TTL_MAX. Returns 0, or -1 with a message in err. */
int turn_config_check(char *err, size_t errsz);

/* The ICE servers of user_id as of now_unix (see turn_ice_servers): the
 * stun(s): URIs as one entry without credentials, the turn(s): URIs as one
 * entry with the username expiring at now_unix + SB_TURN_TTL and its
 * credential. Never NULL. */
json_t *turn_ice_servers_at(const char *user_id, int64_t now_unix);

/* The body of GET /api/v1/turn for user_id as of now_unix:
 * {"ice_servers":[...], "ttl":s, "uris":[turn(s) URIs], "username":...,
 * "credential":...} (username and credential null when no turn(s): URI is
 * configured). Never NULL. */
json_t *turn_answer(const char *user_id, int64_t now_unix);

/* Registers GET /api/v1/turn (turn_rest.c). */
void turn_rest_routes(void);

#endif
