/* me_rest.c — what a user does to their own account with their password
 * (api.md §2 "Auth and account"):
 *   POST /api/v1/me/password {current_password, new_password} -> 204: the
 *     password changes and every other session of the user is revoked
 *     (their refresh tokens refused, access tokens refused on every node,
 *     sockets closed 1008); the calling session stays.
 *   DELETE /api/v1/me {password} -> 204: the account is deleted: every
 *     session revoked and every socket closed 1008 on every node; devices,
 *     end-to-end keys (keys/) and the user's blocks deleted (and their
 *     unreferenced media: a trigger of media/, migrations/125); the profile
 *     replaced at once by the
 *     "deleted account" placeholder (display_name "Deleted account",
 *     username "~<id>"); messages stay for the other members. The former
 *     username stays reserved for SB_ACCOUNT_USERNAME_GRACE seconds.
 * A wrong password answers 403 forbidden and changes nothing; attempts
 * count against the per-account login limit (SB_RATELIMIT_LOGIN_ACCOUNT). */
#include "accounts/accounts.h"
#include "accounts/accounts_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "accounts/password.h"
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/ratelimit.h"
#include "base/verr.h"
#include "bus/bus_control.h"
#include "http/http.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"

#define PASSWORD_MIN_CHARS 8
#define PASSWORD_MAX_CHARS 256
#define DELETED_NAME "Deleted account"

static const char SQL_HASH[] =
    "SELECT password_hash FROM users WHERE id = $1::int8 AND deleted_at IS NULL";

/* New hash, other sessions revoked (with their devices); their ids. */
static const char SQL_PASSWORD[] =
    "WITH u AS (UPDATE users SET password_hash = $2 WHERE id = $1::int8 AND deleted_at IS NULL"
    "           RETURNING id),"
    " s AS (UPDATE sessions SET revoked_at = now(), revoke_reason = 'password'"
    "       WHERE user_id IN (SELECT id FROM u) AND id IS DISTINCT FROM $3::int8"
    "         AND revoked_at IS NULL RETURNING id),"
    " d AS (DELETE FROM devices WHERE session_id IN (SELECT id FROM s))"
    " SELECT id::text FROM s";

/* The placeholder profile, every session revoked, devices and blocks gone;
 * the revoked session ids. */
static const char SQL_DELETE[] =
    "WITH u AS (UPDATE users SET deleted_at = now(), deleted_username = username,"
    "                  username = '~' || id::text, display_name = '" DELETED_NAME "', about = '',"
    "                  avatar_media_id = NULL, password_hash = '!deleted'"
    "           WHERE id = $1::int8 AND deleted_at IS NULL RETURNING id),"
    " s AS (UPDATE sessions SET revoked_at = now(), revoke_reason = 'deleted'"
    "       WHERE user_id IN (SELECT id FROM u) AND revoked_at IS NULL RETURNING id),"
    " d AS (DELETE FROM devices WHERE user_id IN (SELECT id FROM u)),"
    " b AS (DELETE FROM blocks WHERE blocker_id IN (SELECT id FROM u)),"
    " k1 AS (DELETE FROM e2e_prekeys WHERE user_id IN (SELECT id FROM u)),"
    " k2 AS (DELETE FROM e2e_prekey_state WHERE user_id IN (SELECT id FROM u)),"
    " k3 AS (DELETE FROM e2e_bundles WHERE user_id IN (SELECT id FROM u))"
    " SELECT id::text FROM s";

typedef struct mctx {
    sb_req *req;
    db_pool *db;
    bool del;        /* DELETE /me, else a password change */
    char *password;  /* the password presented (wiped when freed) */
    char *new_pw;    /* the new password (wiped when freed) */
    char *stored;    /* the stored hash */
} mctx;

static void wipe_free(char *s)
{
    if (!s) return;
    memset(s, 0, strlen(s));
    free(s);
}

static void mctx_free(mctx *c)
{
    wipe_free(c->password);
    wipe_free(c->new_pw);
    free(c->stored);
    free(c);
}

/* Ends each revoked session on every node (tokens refused, sockets 1008). */
static void kill_sessions(const PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++)
        bus_control_publish(&(bus_ctl){BUS_CTL_SESSION_REVOKED, PQgetvalue(res, i, 0), 1008});
}

static void changed(const PGresult *res, const char *err, void *arg)
{
    mctx *c = arg;
    if (!res || err) {
        rest_db_error(c->req, res, err);
        mctx_free(c);
        return;
    }
    kill_sessions(res);
    if (c->del) {
        /* also the sockets of tokens no session row backs */
        bus_control_publish(&(bus_ctl){BUS_CTL_USER_DISCONNECT, c->req->auth.user_id, 1008});
        bus_control_publish(&(bus_ctl){BUS_CTL_SESSION_REVOKED, c->req->auth.session_id, 1008});
        log_msg(LOG_INFO, "account_deleted", "user_id", json_string(c->req->auth.user_id), NULL);
    }
    http_respond(c->req, 204, NULL, NULL, 0, NULL);
    mctx_free(c);
}

static void hashed(char *encoded, void *arg)
{
    mctx *c = arg;
    if (!encoded) {
        http_respond_error(c->req, 500, "internal", "password hashing failed", NULL);
        mctx_free(c);
        return;
    }
    const char *sid = id_parse(c->req->auth.session_id) ? c->req->auth.session_id : NULL;
    const char *p[3] = {c->req->auth.user_id, encoded, sid};
    db_query(c->db, SQL_PASSWORD, 3, p, changed, c);
    free(encoded);
}

static void verified(int ok, void *arg)
{
    mctx *c = arg;
    if (ok != 1) {
        if (ok < 0) log_msg(LOG_ERROR, "stored password hash is malformed", "user_id",
                            json_string(c->req->auth.user_id), NULL);
        http_respond_error(c->req, 403, "forbidden", "the password is wrong",
                           json_pack("{s:s}", c->del ? "password" : "current_password", "is wrong"));
        mctx_free(c);
        return;
    }
    if (c->del) {
        const char *p[1] = {c->req->auth.user_id};
        db_query(c->db, SQL_DELETE, 1, p, changed, c);
        return;
    }
    uv_loop_t *loop = c->req->r ? &c->req->r->loop : uv_default_loop();
    if (password_hash_async(loop, c->new_pw, strlen(c->new_pw), hashed, c) != 0) {
        rest_unavailable(c->req);
        mctx_free(c);
    }
}

static void looked_up(const PGresult *res, const char *err, void *arg)
{
    mctx *c = arg;
    if (!res || err) {
        rest_db_error(c->req, res, err);
        mctx_free(c);
        return;
    }
    if (PQntuples(res) != 1) {
        http_respond_error(c->req, 401, "unauthorized", "this account no longer exists", NULL);
        mctx_free(c);
        return;
    }
    c->stored = strdup(PQgetvalue(res, 0, 0));
    uv_loop_t *loop = c->req->r ? &c->req->r->loop : uv_default_loop();
    if (!c->stored ||
        password_verify_async(loop, c->stored, c->password, strlen(c->password), verified, c) != 0) {
        rest_unavailable(c->req);
        mctx_free(c);
    }
}

/* Both handlers: validate, rate-limit, look the hash up. */
static void begin(sb_req *req, bool del)
{
    if (!rest_auth(req)) return;
    if (!id_parse(req->auth.user_id)) {
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *pw = NULL, *npw = NULL;
    verr_get_string(b, del ? "password" : "current_password", VERR_REQUIRED, 1, PASSWORD_MAX_CHARS,
                    &v, &pw);
    if (!del)
        verr_get_string(b, "new_password", VERR_REQUIRED, PASSWORD_MIN_CHARS, PASSWORD_MAX_CHARS,
                        &v, &npw);
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    char key[80];
    snprintf(key, sizeof key, "id:%s", req->auth.user_id);
    int wait = ratelimit_hit(RL_LOGIN_ACCOUNT, key);
    if (wait) {
        json_decref(b);
        rest_rate_limited(req, wait);
        return;
    }
    mctx *c = calloc(1, sizeof *c);
    if (c) {
        c->password = strdup(pw);
        if (npw) c->new_pw = strdup(npw);
    }
    json_decref(b);
    if (!c || !c->password || (npw && !c->new_pw)) {
        if (c) mctx_free(c);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    c->req = req;
    c->db = req->r ? db_of(req->r) : NULL;
    c->del = del;
    const char *p[1] = {req->auth.user_id};
    db_query(c->db, SQL_HASH, 1, p, looked_up, c);
}

static void h_password(sb_req *req) { begin(req, false); }
static void h_delete(sb_req *req) { begin(req, true); }

/* Registers POST /api/v1/me/password and DELETE /api/v1/me. */
void accounts_me_routes(void)
{
    router_add(HTTP_POST, "/api/v1/me/password", h_password);
    router_add(HTTP_DELETE, "/api/v1/me", h_delete);
}
