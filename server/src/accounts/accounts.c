/* accounts.c — the accounts core: usernames, the public user object, refresh
 * token material, and housekeeping of sessions and tokens (see accounts.h
 * and accounts_internal.h). No HTTP here: the REST edges are
 * accounts_rest.c (sign-up, sign-in, refresh, logout) and profile_rest.c
 * (profiles, user search, devices). */
#include "accounts/accounts.h"
#include "accounts/accounts_internal.h"

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/config.h"
#include "base/log.h"
#include "base/token.h"
#include "base/util.h"
#include "net/reactor.h"
#include "store/db.h"
#include "store/pgval.h"
#include "base/b64url.h"

accounts_presence_fn accounts_presence_hook;

#define REFRESH_BYTES 32

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

bool accounts_username_normalize(const char *in, char *out, size_t outlen)
{
    size_t n = strlen(in);
    if (n < 3 || n > 32 || outlen < n + 1) return false;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
        out[i] = c;
    }
    out[n] = 0;
    return true;
}

/* The public user object {id, username, display_name, about,
 * avatar_media_id, created_at} from the USER_COLS at row. */
json_t *accounts_user_json(const PGresult *res, int row)
{
    json_t *u = json_object();
    json_object_set_new(u, "id", pgval_str(res, row, UC_ID));
    json_object_set_new(u, "username", pgval_str(res, row, UC_USERNAME));
    json_object_set_new(u, "display_name", pgval_str(res, row, UC_DISPLAY));
    json_object_set_new(u, "about", pgval_str(res, row, UC_ABOUT));
    json_object_set_new(u, "avatar_media_id", pgval_str(res, row, UC_AVATAR));
    json_object_set_new(u, "created_at", pgval_time(res, row, UC_CREATED));
    return u;
}

/* True if the USER_COLS row at `row` is a banned account. */
bool accounts_row_banned(const PGresult *res, int row)
{
    return PQgetvalue(res, row, UC_BANNED)[0] == 't';
}

/* SHA-256 of data as 64 lower-case hex digits. */
static void sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    util_hex_encode(md, 32, out);
}

/* Makes a new refresh token (base64url of 32 random bytes) into tok and its
 * stored form (hex SHA-256 of the bytes) into hash. Returns 0 or -1. */
int accounts_refresh_new(char tok[48], char hash[65])
{
    uint8_t raw[REFRESH_BYTES];
    if (util_random_bytes(raw, sizeof raw) != 0) return -1;
    char *s = b64url_encode(raw, sizeof raw);
    if (!s) return -1;
    snprintf(tok, 48, "%s", s);
    free(s);
    sha256_hex(raw, sizeof raw, hash);
    return 0;
}

/* The stored form of a refresh token presented by a client, or -1 when it
 * cannot be one of ours (not base64url of exactly 32 bytes). */
int accounts_refresh_hash(const char *tok, char hash[65])
{
    uint8_t raw[REFRESH_BYTES + 4];
    size_t n = sizeof raw;
    size_t len = strlen(tok);
    if (len != 43 || b64url_decode(tok, len, raw, &n) != 0 || n != REFRESH_BYTES) return -1;
    sha256_hex(raw, REFRESH_BYTES, hash);
    return 0;
}

/* Callback for fire-and-forget queries: logs real errors only. */
void accounts_ignore_result(const PGresult *res, const char *err, void *arg)
{
    if (err && strcmp(err, "unavailable") != 0)
        log_msg(LOG_WARN, "background query failed", "error", json_string(err), NULL);
}
/* ------------------------------------------------------------------------ */
/* Housekeeping and registration                                             */
/* ------------------------------------------------------------------------ */

static const char SQL_PRUNE_TOKENS[] =
    "DELETE FROM refresh_tokens WHERE token_hash IN ("
    " SELECT token_hash FROM refresh_tokens WHERE expires_at < now() LIMIT 10000)";
static const char SQL_PRUNE_SESSIONS[] =
    "DELETE FROM sessions WHERE id IN ("
    " SELECT id FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < now() - interval '30 "
    "days')"
    "   OR (revoked_at IS NULL AND last_used_at < now() - make_interval(secs => $1::float8)"
    "       - interval '1 day') LIMIT 10000)";

void accounts_tick(struct reactor *r)
{
    static _Atomic int64_t last;
    int64_t now = (int64_t)time(NULL);
    int64_t prev = atomic_load(&last);
    if (prev == 0) { /* first call: wait a minute before the first prune */
        atomic_store(&last, now - 3600 + 60);
        return;
    }
    if (now - prev < 3600 || !r || !db_of(r) || !db_pool_ready(db_of(r))) return;
    if (!atomic_compare_exchange_strong(&last, &prev, now)) return;
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)g_config.refresh_ttl_s);
    const char *p[1] = {ttl};
    db_query(db_of(r), SQL_PRUNE_TOKENS, 0, NULL, accounts_ignore_result, NULL);
    db_query(db_of(r), SQL_PRUNE_SESSIONS, 1, p, accounts_ignore_result, NULL);
}
