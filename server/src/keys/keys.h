/* keys.h — the end-to-end-encryption key directory core (api.md "End-to-end
 * encryption key directory", docs/keys.md): upload validation, the
 * per-(requester, target) fetch limit, the sb_keys_* statements of
 * migrations/050_keys.sql and the prekeys_low push. The server stores public
 * keys only. This is the core: no HTTP, no Phoenix; keys_rest.c is the edge. */
#ifndef SB_KEYS_H
#define SB_KEYS_H

#include <jansson.h>
#include <stddef.h>
#include "base/verr.h"

struct db_pool;

#define KEYS_OTPK_PER_REQUEST 100 /* one-time prekeys in one upload */
#define KEYS_OTPK_STORED 1000     /* one-time prekeys stored per user */
#define KEYS_KEY_MAX_BYTES 2048   /* a public key, decoded */
#define KEYS_SIG_MAX_BYTES 256    /* a signature, decoded */
#define KEYS_ID_MAX 4294967295LL  /* prekey ids are 0..2^32-1 */

/* Validates an upload body {identity_key, signed_prekey:{id, public_key,
 * signature}, one_time_prekeys?:[{id, public_key}], last_resort_prekey?:
 * {id, public_key, signature}}: keys and signatures are standard base64
 * (padding optional, no whitespace) of 1..KEYS_KEY_MAX_BYTES /
 * KEYS_SIG_MAX_BYTES bytes, ids integers in 0..KEYS_ID_MAX, at most
 * KEYS_OTPK_PER_REQUEST one-time prekeys with distinct ids. Returns the
 * normalized body (only those members; one_time_prekeys always present),
 * or NULL after recording each bad field in v. Pure. */
json_t *keys_validate_upload(json_t *body, verr *v);

/* Decoded length of standard base64 text s (padding optional), or -1 when s
 * is not base64 (empty, bad character, bad padding, impossible length). */
long keys_b64_len(const char *s);

/* Where an operation's answer goes (the REST edge's function table). */
typedef struct keys_sink_ops {
    /* Success: body stolen. */
    void (*ok)(void *to, json_t *body);
    /* Failure: an api.md error code, a sentence, details (stolen, may be
     * NULL), retry_after_s > 0 when the client may retry after so long. */
    void (*fail)(void *to, const char *code, const char *message, json_t *details,
                 int retry_after_s);
} keys_sink_ops;

/* Registers the REST routes (keys_rest.c) and calls keys_init (once,
 * before the reactors start). */
void keys_routes(void);

/* Sets up the fetch rate limit from g_config (once, before the reactors). */
void keys_init(void);

/* Each operation answers through ops/to exactly once (now or after its
 * query); db is the caller's reactor pool (NULL: unavailable); user_id the
 * authenticated caller. */
/* PUT /keys: body is borrowed. Answers {"count": n}. */
void keys_put(const keys_sink_ops *ops, void *to, struct db_pool *db, const char *user_id,
              json_t *body);
/* GET /keys/:user_id: target must be a valid id string (else not_found).
 * Rate limited per (user_id, target); sends prekeys_low {count} to the
 * target's user: topic when this fetch took the count below SB_PREKEY_LOW. */
void keys_fetch(const keys_sink_ops *ops, void *to, struct db_pool *db, const char *user_id,
                const char *target);
/* GET /keys/count: answers {"count": n}. */
void keys_count(const keys_sink_ops *ops, void *to, struct db_pool *db, const char *user_id);

#endif
