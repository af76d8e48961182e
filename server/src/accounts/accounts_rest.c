/* accounts_rest.c — the REST edge of accounts: sign-up, sign-in, refresh
 * and logout (api.md §2 "Auth and account"), and the route table of
 * accounts/ (profile_rest.c adds its own). The account pieces that know no
 * HTTP are accounts.c's (accounts_internal.h).
 *
 * Every handler follows one pattern: validate the request synchronously
 * (answering 4xx at once), then chain asynchronous steps — password work on
 * the thread pool, single-statement queries on the reactor's db pool — with
 * a heap context that the last step frees after answering. Each multi-row
 * change is one SQL statement (data-modifying CTEs), so it is atomic without
 * holding a transaction open across round trips. */
#include "accounts/accounts.h"
#include "accounts/accounts_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <llhttp.h>
#include "accounts/password.h"
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/ratelimit.h"
#include "base/token.h"
#include "base/verr.h"
#include "bus/bus_control.h"
#include "http/http.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"

#define PASSWORD_MIN_CHARS 8
#define PASSWORD_MAX_CHARS 256
#define PASSWORD_MAX_BYTES 1024 /* longer is refused without hashing */
#define DISPLAY_NAME_MAX 64

/* Copies header value s keeping printable ASCII only, at most outlen-1 bytes
 * (so anything stored from it is valid UTF-8). */
static void ascii_copy(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    for (; s && *s && o + 1 < outlen; s++)
        if ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) out[o++] = *s;
    out[o] = 0;
}

/* The session id of the request's access token as a bigint parameter, or
 * NULL when it is not one of ours (e.g. minted by `switchboard token`). */
static const char *sid_param(const sb_req *req)
{
    return id_parse(req->auth.session_id) ? req->auth.session_id : NULL;
}

/* Forgets a session on every node: its sockets are closed and its access
 * tokens refused until they would have expired anyway (the listeners of
 * the control event, main.c). */
static void session_kill(const char *sid)
{
    if (!sid || !*sid) return;
    bus_control_publish(&(bus_ctl){BUS_CTL_SESSION_REVOKED, sid, 1008});
}

/* ------------------------------------------------------------------------ */
/* Handler context                                                           */
/* ------------------------------------------------------------------------ */

typedef struct actx {
    sb_req *req;
    db_pool *db;
    uv_loop_t *loop;
    char username[40];
    char *password; /* copy, wiped when freed */
    size_t pwlen;
    char *display_name;
    char *stored_hash; /* login: the account's encoded hash */
    json_t *user;      /* login: the account, from the lookup */
    char user_id[24];
    bool banned;
    bool found;
    char refresh[48];   /* the refresh token handed out */
    char refresh_h[65]; /* and its stored hash */
    char old_h[65];     /* refresh/logout: hash of the token presented */
    char sid[TOKEN_MAX_ID + 1];
    char ua[200];
    char ip[48];
} actx;

/* A context for req (answers 500 and returns NULL when out of memory). */
static actx *ctx_new(sb_req *req)
{
    actx *c = calloc(1, sizeof *c);
    if (!c) {
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    c->req = req;
    c->db = req->r ? db_of(req->r) : NULL;
    c->loop = req->r ? &req->r->loop : uv_default_loop();
    ascii_copy(http_req_header(req, "user-agent"), c->ua, sizeof c->ua);
    ascii_copy(req->client_ip, c->ip, sizeof c->ip);
    return c;
}

/* Frees c, wiping the password copy. Does not answer the request. */
static void ctx_free(actx *c)
{
    if (c->password) {
        memset(c->password, 0, c->pwlen);
        free(c->password);
    }
    free(c->display_name);
    free(c->stored_hash);
    json_decref(c->user);
    free(c);
}

/* Sends {user, access_token, refresh_token, expires_in} with `status`,
 * minting the access token for c->user_id / c->sid; steals user. Frees c. */
static void respond_tokens(actx *c, int status, json_t *user)
{
    char *access = token_mint((const uint8_t *)g_config.secret, g_config.secret_len, c->user_id, c->sid,
                              (int64_t)time(NULL) + g_config.access_ttl_s);
    if (!access) {
        json_decref(user);
        http_respond_error(c->req, 500, "internal", "could not mint a token", NULL);
        ctx_free(c);
        return;
    }
    json_t *o =
        json_pack("{s:o,s:s,s:s,s:I}", "user", user, "access_token", access, "refresh_token",
                  c->refresh, "expires_in", (json_int_t)g_config.access_ttl_s);
    free(access);
    http_respond_json(c->req, status, o);
    ctx_free(c);
}

/* Answers with the db error and frees c. */
static void fail_db(actx *c, const PGresult *res, const char *err)
{
    rest_db_error(c->req, res, err);
    ctx_free(c);
}

/* The start of a query callback: true after answering a failed query (and
 * freeing c). */
static bool db_failed(actx *c, const PGresult *res, const char *err)
{
    if (res && !err) return false;
    fail_db(c, res, err);
    return true;
}

/* Answers an error without details and frees c. */
static void ctx_fail(actx *c, int status, const char *code, const char *message)
{
    http_respond_error(c->req, status, code, message, NULL);
    ctx_free(c);
}

/* Mints the refresh token to hand out (c->refresh, c->refresh_h) and
 * writes its lifetime in seconds to ttl; false after answering 500 and
 * freeing c. */
static bool ctx_refresh_new(actx *c, char ttl[32])
{
    if (accounts_refresh_new(c->refresh, c->refresh_h) != 0) {
        ctx_fail(c, 500, "internal", "no randomness");
        return false;
    }
    snprintf(ttl, 32, "%lld", (long long)g_config.refresh_ttl_s);
    return true;
}

/* A context for req holding the hash of the refresh token presented
 * (refresh, logout); NULL when already answered. */
static actx *ctx_new_old(sb_req *req, const char h[65])
{
    actx *c = ctx_new(req);
    if (c) memcpy(c->old_h, h, 65);
    return c;
}

/* The end of a body's validation: true after answering 422 (and freeing
 * b) when v holds errors. */
static bool body_refused(sb_req *req, json_t *b, verr *v)
{
    if (!verr_any(v)) return false;
    json_decref(b);
    rest_verr_respond(req, v);
    return true;
}

/* True after answering 429 (and freeing b) when wait > 0 seconds. */
static bool rate_refused(sb_req *req, json_t *b, int wait)
{
    if (!wait) return false;
    json_decref(b);
    rest_rate_limited(req, wait);
    return true;
}

/* Copies the password member (already validated) into c. */
static int ctx_set_password(actx *c, const char *pw)
{
    c->pwlen = strlen(pw);
    c->password = malloc(c->pwlen + 1);
    if (!c->password) return -1;
    memcpy(c->password, pw, c->pwlen + 1);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* POST /api/v1/auth/signup {username, password, display_name?}              */
/* ------------------------------------------------------------------------ */

/* Taken: in use, or the former name of an account deleted less than
 * SB_ACCOUNT_USERNAME_GRACE seconds ago. */
static const char SQL_USERNAME_TAKEN[] =
    "SELECT 1 FROM users WHERE username = $1 OR (deleted_username = $1"
    " AND deleted_at > now() - make_interval(secs => $2::float8))";

static const char SQL_SIGNUP[] =
    "WITH u AS ("
    "  INSERT INTO users (username, display_name, password_hash) VALUES ($1, $2, $3)"
    "  ON CONFLICT (username) DO NOTHING RETURNING *),"
    " s AS ("
    "  INSERT INTO sessions (user_id, user_agent, ip) SELECT id, $4, $5 FROM u"
    "  RETURNING id, user_id),"
    " t AS ("
    "  INSERT INTO refresh_tokens (token_hash, session_id, expires_at)"
    "  SELECT decode($6, 'hex'), s.id, now() + make_interval(secs => $7::float8) FROM s)"
    "SELECT " USER_COLS ", s.id FROM u JOIN s ON s.user_id = u.id";

/* Answers 409 conflict for a username already in use. */
static void respond_taken(sb_req *req)
{
    http_respond_error(req, 409, "conflict", "username is already taken",
                     json_pack("{s:s}", "username", "is already taken"));
}

/* Sign-up step 4: the user, session and refresh token are stored -> 201. */
static void signup_inserted(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (db_failed(c, res, err)) return;
    if (PQntuples(res) != 1) { /* lost a race for the username */
        respond_taken(c->req);
        ctx_free(c);
        return;
    }
    snprintf(c->user_id, sizeof c->user_id, "%s", PQgetvalue(res, 0, UC_ID));
    snprintf(c->sid, sizeof c->sid, "%s", PQgetvalue(res, 0, UC_N));
    log_msg(LOG_INFO, "signup", "user_id", json_string(c->user_id), NULL);
    respond_tokens(c, 201, accounts_user_json(res, 0));
}

/* Sign-up step 3 (loop thread): the Argon2id hash is ready -> insert. */
static void signup_hashed(char *encoded, void *arg)
{
    actx *c = arg;
    if (!encoded) {
        ctx_fail(c, 500, "internal", "password hashing failed");
        return;
    }
    char ttl[32];
    if (!ctx_refresh_new(c, ttl)) {
        free(encoded);
        return;
    }
    const char *p[7] = {c->username, c->display_name, encoded, c->ua, c->ip, c->refresh_h, ttl};
    db_query(c->db, SQL_SIGNUP, 7, p, signup_inserted, c);
    free(encoded);
}

/* Sign-up step 2: the name was free a moment ago -> hash off the loop. */
static void signup_checked(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (db_failed(c, res, err)) return;
    if (PQntuples(res) > 0) {
        respond_taken(c->req);
        ctx_free(c);
        return;
    }
    if (password_hash_async(c->loop, c->password, c->pwlen, signup_hashed, c) != 0) {
        rest_unavailable(c->req);
        ctx_free(c);
    }
}

/* Sign-up step 1: validate, rate-limit per IP, check the name. */
static void h_signup(sb_req *req)
{
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *username, *password, *display;
    char uname[40] = "";
    if (verr_get_string(b, "username", VERR_REQUIRED, 1, 64, &v, &username) == 1 &&
        !accounts_username_normalize(username, uname, sizeof uname))
        verr_add(&v, "username", "must be 3 to 32 characters: letters, digits, '_' or '.'");
    verr_get_string(b, "password", VERR_REQUIRED, PASSWORD_MIN_CHARS, PASSWORD_MAX_CHARS, &v,
                    &password);
    if (verr_get_string(b, "display_name", VERR_NULLABLE | VERR_NO_CTRL, 1, DISPLAY_NAME_MAX, &v,
                        &display) == 1 &&
        display && strspn(display, " ") == strlen(display))
        verr_add(&v, "display_name", "must not be blank");
    if (body_refused(req, b, &v)) return;
    char key[64];
    ratelimit_ip_key(req->client_ip, key, sizeof key);
    if (rate_refused(req, b, ratelimit_hit(RL_SIGNUP_IP, key))) return;
    actx *c = ctx_new(req);
    if (!c) {
        json_decref(b);
        return;
    }
    snprintf(c->username, sizeof c->username, "%s", uname);
    c->display_name = strdup(display ? display : uname);
    if (!c->display_name || ctx_set_password(c, password) != 0) {
        json_decref(b);
        ctx_fail(c, 500, "internal", "out of memory");
        return;
    }
    json_decref(b);
    char grace[32];
    snprintf(grace, sizeof grace, "%lld", (long long)g_config.account_username_grace_s);
    const char *p[2] = {c->username, grace};
    db_query(c->db, SQL_USERNAME_TAKEN, 2, p, signup_checked, c);
}

/* ------------------------------------------------------------------------ */
/* POST /api/v1/auth/login {username, password}                              */
/* ------------------------------------------------------------------------ */

static const char SQL_LOGIN_LOOKUP[] =
    "SELECT " USER_COLS ", u.password_hash FROM users u WHERE u.username = $1";

static const char SQL_SESSION_NEW[] =
    "WITH s AS ("
    "  INSERT INTO sessions (user_id, user_agent, ip) VALUES ($1, $2, $3) RETURNING id),"
    " t AS ("
    "  INSERT INTO refresh_tokens (token_hash, session_id, expires_at)"
    "  SELECT decode($4, 'hex'), s.id, now() + make_interval(secs => $5::float8) FROM s),"
    " seen AS (UPDATE users SET last_seen_at = now() WHERE id = $1)"
    "SELECT id FROM s";

/* The one answer for an unknown account or a wrong password. */
static void respond_bad_login(sb_req *req)
{
    http_respond_error(req, 401, "unauthorized", "invalid username or password", NULL);
}

/* Login step 4: the new session and its refresh token are stored -> 200. */
static void login_session(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (!res || err || PQntuples(res) != 1) {
        fail_db(c, res, err);
        return;
    }
    snprintf(c->sid, sizeof c->sid, "%s", PQgetvalue(res, 0, 0));
    json_t *u = c->user;
    c->user = NULL;
    respond_tokens(c, 200, u);
}

/* Login step 3: password checked (1 match, 0 mismatch, -1 bad hash). */
static void login_verified(int ok, void *arg)
{
    actx *c = arg;
    if (ok < 0 && c->found) {
        log_msg(LOG_ERROR, "login: stored password hash is malformed", "user_id",
                json_string(c->user_id), NULL);
        ctx_fail(c, 500, "internal", "internal error");
        return;
    }
    if (ok != 1 || !c->found) {
        respond_bad_login(c->req);
        ctx_free(c);
        return;
    }
    if (c->banned) {
        ctx_fail(c, 403, "forbidden", "this account is banned");
        return;
    }
    char ttl[32];
    if (!ctx_refresh_new(c, ttl)) return;
    const char *p[5] = {c->user_id, c->ua, c->ip, c->refresh_h, ttl};
    db_query(c->db, SQL_SESSION_NEW, 5, p, login_session, c);
}

/* Login step 2: the account row (or none) -> verify off the loop. */
static void login_looked_up(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (db_failed(c, res, err)) return;
    if (PQntuples(res) == 1) {
        c->found = true;
        snprintf(c->user_id, sizeof c->user_id, "%s", PQgetvalue(res, 0, UC_ID));
        c->banned = accounts_row_banned(res, 0);
        c->user = accounts_user_json(res, 0);
        c->stored_hash = strdup(PQgetvalue(res, 0, UC_N));
        if (!c->stored_hash) {
            ctx_fail(c, 500, "internal", "out of memory");
            return;
        }
    }
    /* An unknown account is checked against a dummy hash: same time taken. */
    if (password_verify_async(c->loop, c->stored_hash, c->password, c->pwlen, login_verified, c) !=
        0) {
        rest_unavailable(c->req);
        ctx_free(c);
    }
}

/* Login step 1: validate, rate-limit per IP and per account, look up. */
static void h_login(sb_req *req)
{
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *username, *password;
    verr_get_string(b, "username", VERR_REQUIRED, 1, 256, &v, &username);
    verr_get_string(b, "password", VERR_REQUIRED, 1, PASSWORD_MAX_BYTES, &v, &password);
    if (body_refused(req, b, &v)) return;
    char key[96];
    ratelimit_ip_key(req->client_ip, key, sizeof key);
    int wait = ratelimit_hit(RL_LOGIN_IP, key);
    char uname[40];
    bool valid = accounts_username_normalize(username, uname, sizeof uname);
    if (!wait && valid) wait = ratelimit_hit(RL_LOGIN_ACCOUNT, uname);
    if (rate_refused(req, b, wait)) return;
    if (!valid || strlen(password) > PASSWORD_MAX_BYTES) {
        json_decref(b);
        respond_bad_login(req);
        return;
    }
    actx *c = ctx_new(req);
    if (!c) {
        json_decref(b);
        return;
    }
    snprintf(c->username, sizeof c->username, "%s", uname);
    int rc = ctx_set_password(c, password);
    json_decref(b);
    if (rc != 0) {
        ctx_fail(c, 500, "internal", "out of memory");
        return;
    }
    const char *p[1] = {c->username};
    db_query(c->db, SQL_LOGIN_LOOKUP, 1, p, login_looked_up, c);
}

/* ------------------------------------------------------------------------ */
/* POST /api/v1/auth/refresh {refresh_token}                                 */
/* ------------------------------------------------------------------------ */

/* Rotates a live token: marks it rotated, issues its successor in the same
 * session. Under concurrent use of one token only one statement wins (the
 * loser re-checks rotated_at after the row lock and finds it set). */
static const char SQL_ROTATE[] =
    "WITH old AS ("
    "  UPDATE refresh_tokens rt SET rotated_at = now() FROM sessions s"
    "  WHERE rt.token_hash = decode($1, 'hex') AND rt.rotated_at IS NULL"
    "    AND rt.expires_at > now() AND s.id = rt.session_id AND s.revoked_at IS NULL"
    "  RETURNING rt.session_id, s.user_id),"
    " ins AS ("
    "  INSERT INTO refresh_tokens (token_hash, session_id, expires_at)"
    "  SELECT decode($2, 'hex'), session_id, now() + make_interval(secs => $3::float8) FROM old),"
    " ses AS (UPDATE sessions SET last_used_at = now() WHERE id IN (SELECT session_id FROM old)),"
    " seen AS (UPDATE users SET last_seen_at = now() WHERE id IN (SELECT user_id FROM old))"
    "SELECT " USER_COLS ", old.session_id FROM old JOIN users u ON u.id = old.user_id";

/* A rotated token presented again: the family is compromised, revoke it. */
static const char SQL_REUSE[] =
    "WITH s AS ("
    "  UPDATE sessions SET revoked_at = now(), revoke_reason = 'reuse' FROM refresh_tokens rt"
    "  WHERE rt.token_hash = decode($1, 'hex') AND rt.rotated_at IS NOT NULL"
    "    AND rt.session_id = sessions.id AND sessions.revoked_at IS NULL"
    "  RETURNING sessions.id, sessions.user_id),"
    " d AS (DELETE FROM devices WHERE session_id IN (SELECT id FROM s))"
    "SELECT id, user_id FROM s";

static const char SQL_REVOKE_SID[] =
    "WITH s AS ("
    "  UPDATE sessions SET revoked_at = now(), revoke_reason = $2"
    "  WHERE id = $1::int8 AND revoked_at IS NULL RETURNING id),"
    " d AS (DELETE FROM devices WHERE session_id IN (SELECT id FROM s))"
    "SELECT id FROM s";
/* Refresh, failed rotation: a revoked family (reuse) or a dead token -> 401. */
static void refresh_reuse_checked(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (db_failed(c, res, err)) return;
    if (PQntuples(res) > 0) {
        const char *sid = PQgetvalue(res, 0, 0);
        log_msg(LOG_WARN, "refresh token reuse: session revoked", "session_id", json_string(sid),
                "user_id", json_string(PQgetvalue(res, 0, 1)), "ip", json_string(c->ip), NULL);
        session_kill(sid);
        http_respond_error(c->req, 401, "unauthorized",
                         "refresh token was already used; the session has been revoked", NULL);
    } else {
        http_respond_error(c->req, 401, "unauthorized", "invalid or expired refresh token", NULL);
    }
    ctx_free(c);
}

/* Refresh: rotated -> new pair; nothing rotated -> check for reuse. */
static void refresh_rotated(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (db_failed(c, res, err)) return;
    if (PQntuples(res) != 1) {
        const char *p[1] = {c->old_h};
        db_query(c->db, SQL_REUSE, 1, p, refresh_reuse_checked, c);
        return;
    }
    snprintf(c->user_id, sizeof c->user_id, "%s", PQgetvalue(res, 0, UC_ID));
    snprintf(c->sid, sizeof c->sid, "%s", PQgetvalue(res, 0, UC_N));
    if (accounts_row_banned(res, 0)) {
        const char *p[2] = {c->sid, "banned"};
        db_query(c->db, SQL_REVOKE_SID, 2, p, accounts_ignore_result, NULL);
        session_kill(c->sid);
        ctx_fail(c, 403, "forbidden", "this account is banned");
        return;
    }
    respond_tokens(c, 200, accounts_user_json(res, 0));
}

/* Refresh step 1: validate the token shape, then rotate in one statement. */
static void h_refresh(sb_req *req)
{
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *tok;
    verr_get_string(b, "refresh_token", VERR_REQUIRED, 1, 256, &v, &tok);
    if (body_refused(req, b, &v)) return;
    char h[65];
    int bad = accounts_refresh_hash(tok, h);
    json_decref(b);
    if (bad) {
        http_respond_error(req, 401, "unauthorized", "invalid or expired refresh token", NULL);
        return;
    }
    actx *c = ctx_new_old(req, h);
    char ttl[32];
    if (!c || !ctx_refresh_new(c, ttl)) return;
    const char *p[3] = {c->old_h, c->refresh_h, ttl};
    db_query(c->db, SQL_ROTATE, 3, p, refresh_rotated, c);
}

/* ------------------------------------------------------------------------ */
/* POST /api/v1/auth/logout                                                  */
/*   {refresh_token} revokes that token's session; otherwise the session of  */
/*   the bearer access token is revoked. 204 either way.                     */
/* ------------------------------------------------------------------------ */

static const char SQL_REVOKE_BY_TOKEN[] =
    "WITH t AS (SELECT session_id FROM refresh_tokens WHERE token_hash = decode($1, 'hex')),"
    " s AS ("
    "  UPDATE sessions SET revoked_at = now(), revoke_reason = 'logout'"
    "  WHERE id IN (SELECT session_id FROM t) AND revoked_at IS NULL RETURNING id),"
    " d AS (DELETE FROM devices WHERE session_id IN (SELECT id FROM s))"
    "SELECT session_id FROM t";

static const char SQL_LOGOUT_SID[] =
    "WITH s AS ("
    "  UPDATE sessions SET revoked_at = now(), revoke_reason = 'logout'"
    "  WHERE id = $1::int8 AND user_id = $2::int8 AND revoked_at IS NULL RETURNING id),"
    " d AS (DELETE FROM devices WHERE session_id IN (SELECT id FROM s))"
    "SELECT id FROM s";

/* Logout: the session is revoked (or was) -> close its sockets, 204. */
static void logout_done(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (db_failed(c, res, err)) return;
    if (!c->sid[0]) { /* by refresh token: the session is what the token names */
        if (PQntuples(res) == 0) {
            ctx_fail(c, 401, "unauthorized", "invalid refresh token");
            return;
        }
        snprintf(c->sid, sizeof c->sid, "%s", PQgetvalue(res, 0, 0));
    }
    session_kill(c->sid);
    http_respond(c->req, 204, NULL, NULL, 0, NULL);
    ctx_free(c);
}

/* Logout by refresh token (body) or by the bearer access token. */
static void h_logout(sb_req *req)
{
    json_t *b = rest_body(req, false);
    if (!b) return;
    json_t *rt = json_object_get(b, "refresh_token");
    if (rt && !json_is_null(rt)) {
        char h[65];
        if (!json_is_string(rt) || accounts_refresh_hash(json_string_value(rt), h) != 0) {
            json_decref(b);
            http_respond_error(req, 401, "unauthorized", "invalid refresh token", NULL);
            return;
        }
        json_decref(b);
        actx *c = ctx_new_old(req, h);
        if (!c) return;
        const char *p[1] = {c->old_h};
        db_query(c->db, SQL_REVOKE_BY_TOKEN, 1, p, logout_done, c);
        return;
    }
    json_decref(b);
    if (!rest_auth(req)) return;
    actx *c = ctx_new(req);
    if (!c) return;
    snprintf(c->sid, sizeof c->sid, "%s", req->auth.session_id);
    if (!sid_param(req) || !id_parse(req->auth.user_id)) {
        /* not a database session (e.g. a `switchboard token` token): nothing stored */
        session_kill(c->sid);
        http_respond(req, 204, NULL, NULL, 0, NULL);
        ctx_free(c);
        return;
    }
    const char *p[2] = {req->auth.session_id, req->auth.user_id};
    db_query(c->db, SQL_LOGOUT_SID, 2, p, logout_done, c);
}

/* ------------------------------------------------------------------------ */
/* Revoked sessions at start, and registration                               */
/* ------------------------------------------------------------------------ */

int accounts_load_revoked(const char *conninfo)
{
    const char *const keys[] = {"dbname", "connect_timeout", NULL};
    const char *const vals[] = {conninfo, "5", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1); /* dbname expands a URI or key=value string */
    if (PQstatus(pg) != CONNECTION_OK) {
        log_msg(LOG_WARN, "revoked_sessions_not_loaded", "error", json_string(PQerrorMessage(pg)), NULL);
        PQfinish(pg);
        return -1;
    }
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)g_config.access_ttl_s + 5);
    const char *p[1] = {ttl};
    PGresult *res = PQexecParams(pg,
                                 "SELECT id::text, floor(extract(epoch from revoked_at))::int8 FROM sessions"
                                 " WHERE revoked_at > now() - make_interval(secs => $1::float8)",
                                 1, NULL, p, NULL, NULL, 0);
    int n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        n = PQntuples(res);
        for (int i = 0; i < n; i++)
            rest_revoke_session(PQgetvalue(res, i, 0),
                                strtoll(PQgetvalue(res, i, 1), NULL, 10) + g_config.access_ttl_s + 5);
        log_msg(LOG_INFO, "revoked_sessions_loaded", "count", json_integer(n), NULL);
    } else {
        log_msg(LOG_WARN, "revoked_sessions_not_loaded", "error", json_string(PQerrorMessage(pg)), NULL);
    }
    PQclear(res);
    PQfinish(pg);
    return n;
}

int accounts_routes(void)
{
    if (ratelimit_configure(g_config.ratelimit_login_ip, g_config.ratelimit_login_account,
                            g_config.ratelimit_signup_ip, g_config.ratelimit_connect_ip) != 0) {
        log_msg(LOG_ERROR, "bad_config", "error",
                json_string("SB_RATELIMIT_LOGIN_IP, SB_RATELIMIT_LOGIN_ACCOUNT, SB_RATELIMIT_SIGNUP_IP and "
                            "SB_RATELIMIT_CONNECT_IP take N/seconds, e.g. 30/60, or off"),
                NULL);
        return -1;
    }

    router_add(HTTP_POST, "/api/v1/auth/signup", h_signup);
    router_add(HTTP_POST, "/api/v1/auth/login", h_login);
    router_add(HTTP_POST, "/api/v1/auth/refresh", h_refresh);
    router_add(HTTP_POST, "/api/v1/auth/logout", h_logout);
    accounts_profile_routes(); /* /me, /users, /devices: profile_rest.c */
    accounts_me_routes();      /* password change, account deletion: me_rest.c */
    return 0;
}
