/* keys.c — the key directory core (keys.h): validation, the fetch limit,
 * the sb_keys_* statements and the prekeys_low push. */
#include "keys/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/ratelimit.h"
#include "base/util.h"
#include "bus/pubsub.h"
#include "store/db.h"
#include "sync/tailer.h"

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

long keys_b64_len(const char *s)
{
    if (!s) return -1;
    size_t n = strlen(s), pad = 0;
    if (n == 0) return -1;
    while (pad < 2 && n > pad && s[n - 1 - pad] == '=') pad++;
    size_t body = n - pad;
    for (size_t i = 0; i < body; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/'))
            return -1;
    }
    if (body % 4 == 1 || body == 0) return -1;
    if (pad && (n % 4 != 0)) return -1;           /* padded text is whole quads */
    if (pad && pad != (4 - body % 4) % 4) return -1; /* exactly the padding needed */
    return (long)(body / 4 * 3 + (body % 4 ? body % 4 - 1 : 0));
}

/* Checks string member `f` of o as base64 of 1..max bytes; records errors
 * under `field`. Returns the string or NULL. */
static const char *b64_member(json_t *o, const char *f, size_t max, const char *field, verr *v)
{
    json_t *x = json_object_get(o, f);
    char msg[96];
    if (!x) {
        snprintf(msg, sizeof msg, "%s is required", f);
        verr_add(v, field, msg);
        return NULL;
    }
    const char *s = json_string_value(x);
    long n = s && json_string_length(x) <= max * 2 ? keys_b64_len(s) : -1;
    if (n < 1 || (size_t)n > max) {
        snprintf(msg, sizeof msg, "%s must be base64 of 1 to %zu bytes", f, max);
        verr_add(v, field, msg);
        return NULL;
    }
    return s;
}

/* Reads member "id" of o: an integer 0..KEYS_ID_MAX. Returns it, or -1. */
static long long key_id(json_t *o, const char *field, verr *v)
{
    json_t *x = json_object_get(o, "id");
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > KEYS_ID_MAX) {
        verr_add(v, field, "id must be an integer from 0 to 4294967295");
        return -1;
    }
    return (long long)json_integer_value(x);
}

/* A signed prekey {id, public_key, signature} into a fresh object, or NULL. */
static json_t *signed_key(json_t *o, const char *field, verr *v)
{
    if (!json_is_object(o)) {
        verr_add(v, field, o ? "must be an object {id, public_key, signature}" : "is required");
        return NULL;
    }
    long long id = key_id(o, field, v);
    const char *pk = b64_member(o, "public_key", KEYS_KEY_MAX_BYTES, field, v);
    const char *sig = b64_member(o, "signature", KEYS_SIG_MAX_BYTES, field, v);
    if (id < 0 || !pk || !sig) return NULL;
    return json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "public_key", pk, "signature", sig);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

json_t *keys_validate_upload(json_t *body, verr *v)
{
    if (!json_is_object(body)) {
        verr_add(v, "body", "must be a JSON object");
        return NULL;
    }
    const char *ik = b64_member(body, "identity_key", KEYS_KEY_MAX_BYTES, "identity_key", v);
    json_t *spk = signed_key(json_object_get(body, "signed_prekey"), "signed_prekey", v);
    json_t *lr = NULL;
    json_t *lrx = json_object_get(body, "last_resort_prekey");
    if (lrx && !json_is_null(lrx)) lr = signed_key(lrx, "last_resort_prekey", v);
    json_t *otx = json_object_get(body, "one_time_prekeys");
    json_t *ot = json_array();
    if (otx && !json_is_null(otx) && !json_is_array(otx)) {
        verr_add(v, "one_time_prekeys", "must be an array of {id, public_key}");
    } else if (otx && json_array_size(otx) > KEYS_OTPK_PER_REQUEST) {
        char msg[64];
        snprintf(msg, sizeof msg, "at most %d per request", KEYS_OTPK_PER_REQUEST);
        verr_add(v, "one_time_prekeys", msg);
    } else if (otx && json_is_array(otx)) {
        size_t n = json_array_size(otx);
        long long ids[KEYS_OTPK_PER_REQUEST];
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            json_t *k = json_array_get(otx, i);
            if (!json_is_object(k)) {
                verr_add(v, "one_time_prekeys", "must be an array of {id, public_key}");
                ok = false;
                break;
            }
            ids[i] = key_id(k, "one_time_prekeys", v);
            const char *pk = b64_member(k, "public_key", KEYS_KEY_MAX_BYTES, "one_time_prekeys", v);
            if (ids[i] < 0 || !pk) ok = false;
            else json_array_append_new(ot, json_pack("{s:I,s:s}", "id", (json_int_t)ids[i], "public_key", pk));
        }
        if (ok) {
            qsort(ids, n, sizeof ids[0], cmp_ll);
            for (size_t i = 1; i < n; i++)
                if (ids[i] == ids[i - 1]) {
                    verr_add(v, "one_time_prekeys", "ids must be unique");
                    break;
                }
        }
    }
    if (verr_any(v) || !ik || !spk) {
        json_decref(spk);
        json_decref(lr);
        json_decref(ot);
        return NULL;
    }
    json_t *out = json_pack("{s:s,s:o,s:o}", "identity_key", ik, "signed_prekey", spk,
                            "one_time_prekeys", ot);
    if (out && lr) json_object_set_new(out, "last_resort_prekey", lr);
    else json_decref(lr);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Running the statements                                                    */
/* ------------------------------------------------------------------------ */

enum { OP_PUT, OP_FETCH, OP_COUNT };

typedef struct keys_req {
    const keys_sink_ops *ops;
    void *to;
    int op;
    char target[24]; /* OP_FETCH: whose bundle */
} keys_req;

static ratelimit_table *g_fetch_rl;
static ratelimit_limit g_fetch_lim;

void keys_init(void)
{
    if (ratelimit_limit_parse(g_config.ratelimit_keys_fetch, &g_fetch_lim) != 0) {
        log_msg(LOG_WARN, "bad SB_RATELIMIT_KEYS_FETCH (want N/seconds); using 10/200", NULL);
        ratelimit_limit_parse("10/200", &g_fetch_lim);
    }
    if (!g_fetch_rl && (g_fetch_rl = ratelimit_table_new(RL_TABLE_MAX))) ratelimit_table_set_kind(g_fetch_rl, "keys_fetch");
}

static void fail(keys_req *q, const char *code, const char *msg, json_t *details, int retry)
{
    q->ops->fail(q->to, code, msg, details, retry);
    free(q);
}

/* A failed query: unavailable for connection trouble, validation_failed for
 * a value out of range, else internal (logged). */
static void fail_db(keys_req *q, const PGresult *res, const char *err)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!res || !st || !strncmp(st, "08", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2) ||
        !strcmp(st, "40001") || !strcmp(st, "40P01")) {
        fail(q, "unavailable", "the database is unavailable; nothing was done", NULL, 1);
        return;
    }
    if (!strcmp(st, "23505")) {
        fail(q, "conflict", "conflicts with an existing record", NULL, 0);
        return;
    }
    log_msg(LOG_ERROR, "keys db error", "sqlstate", json_string(st), "error",
            json_string(err ? err : ""), NULL);
    fail(q, "internal", "internal error", NULL, 0);
}

static void done(const PGresult *res, const char *err, void *arg)
{
    keys_req *q = arg;
    if (!res || err) {
        fail_db(q, res, err);
        return;
    }
    json_t *r = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)
                    ? json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_ANY, NULL)
                    : NULL;
    if (!json_is_object(r)) {
        json_decref(r);
        fail(q, "internal", "bad result", NULL, 0);
        return;
    }
    const char *code = json_string_value(json_object_get(r, "error"));
    if (code) {
        const char *msg = json_string_value(json_object_get(r, "message"));
        json_t *d = json_object_get(r, "details");
        fail(q, code, msg ? msg : code, json_is_object(d) ? json_incref(d) : NULL, 0);
        json_decref(r);
        return;
    }
    if (q->op == OP_PUT) {
        /* keys:changed events were appended: wake this node's tailer */
        if (json_is_true(json_object_get(r, "changed"))) tailer_kick();
        json_object_del(r, "changed");
    } else if (q->op == OP_FETCH) {
        json_t *low = json_object_get(r, "low");
        if (json_is_integer(low)) {
            /* ephemeral (docs/keys.md): the app reads GET /keys/count on connect */
            char topic[32];
            snprintf(topic, sizeof topic, "user:%s", q->target);
            json_t *p = json_pack("{s:O}", "count", low);
            pubsub_broadcast(topic, "prekeys_low", p, NULL);
            json_decref(p);
        }
        json_object_del(r, "low");
    }
    q->ops->ok(q->to, r);
    free(q);
}

/* Starts op: NULL after answering when there is no database or memory. */
static keys_req *begin(const keys_sink_ops *ops, void *to, struct db_pool *db, int op,
                       const char *user_id)
{
    if (!db) {
        ops->fail(to, "unavailable", "no database is configured", NULL, 1);
        return NULL;
    }
    if (!id_parse(user_id)) {
        ops->fail(to, "unauthorized", "this account no longer exists", NULL, 0);
        return NULL;
    }
    keys_req *q = calloc(1, sizeof *q);
    if (!q) {
        ops->fail(to, "internal", "out of memory", NULL, 0);
        return NULL;
    }
    q->ops = ops;
    q->to = to;
    q->op = op;
    return q;
}

void keys_put(const keys_sink_ops *ops, void *to, struct db_pool *db, const char *user_id,
              json_t *body)
{
    verr v = {0};
    json_t *norm = keys_validate_upload(body, &v);
    if (!norm) {
        json_t *d = v.details;
        v.details = NULL;
        ops->fail(to, "validation_failed", "the request has invalid fields", d, 0);
        return;
    }
    keys_req *q = begin(ops, to, db, OP_PUT, user_id);
    if (!q) {
        json_decref(norm);
        return;
    }
    char *text = json_dumps(norm, JSON_COMPACT);
    json_decref(norm);
    char max[16], low[16];
    snprintf(max, sizeof max, "%d", KEYS_OTPK_STORED);
    snprintf(low, sizeof low, "%d", g_config.prekey_low);
    const char *p[4] = {user_id, text, max, low};
    db_query(db, "SELECT sb_keys_put($1::int8, $2::jsonb, $3::int, $4::int)::text", 4, p, done, q);
    free(text);
}

void keys_fetch(const keys_sink_ops *ops, void *to, struct db_pool *db, const char *user_id,
                const char *target)
{
    if (!target || !id_parse(target) || strlen(target) > 20) {
        ops->fail(to, "not_found", "this user has no keys", NULL, 0);
        return;
    }
    if (g_fetch_rl) {
        char key[48];
        snprintf(key, sizeof key, "%s:%s", user_id, target);
        int64_t wait = ratelimit_table_take(g_fetch_rl, key, &g_fetch_lim, util_now_unix_ms(), 1);
        if (wait > 0) {
            ops->fail(to, "rate_limited", "too many key fetches for this user; slow down", NULL,
                      (int)((wait + 999) / 1000));
            return;
        }
    }
    keys_req *q = begin(ops, to, db, OP_FETCH, user_id);
    if (!q) return;
    snprintf(q->target, sizeof q->target, "%s", target);
    char low[16];
    snprintf(low, sizeof low, "%d", g_config.prekey_low);
    const char *p[3] = {user_id, target, low};
    db_query(db, "SELECT sb_keys_fetch($1::int8, $2::int8, $3::int)::text", 3, p, done, q);
}

void keys_count(const keys_sink_ops *ops, void *to, struct db_pool *db, const char *user_id)
{
    keys_req *q = begin(ops, to, db, OP_COUNT, user_id);
    if (!q) return;
    const char *p[1] = {user_id};
    db_query(db,
             "SELECT json_build_object('count', (SELECT count(*) FROM e2e_prekeys WHERE user_id = $1::int8))::text",
             1, p, done, q);
}
