/* accounts.c — sign-up, sign-in, refresh, logout, profiles, user search and
 * push devices (see accounts.h; wire shapes in api.md §2).
 *
 * Every handler follows one pattern: validate the request synchronously
 * (answering 4xx at once), then chain asynchronous steps — password work on
 * the thread pool, single-statement queries on the reactor's db pool — with
 * a heap context that the last step frees after answering. Each multi-row
 * change is one SQL statement (data-modifying CTEs), so it is atomic without
 * holding a transaction open across round trips. */
#include "accounts/accounts.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <llhttp.h>
#include "base/config.h"
#include "store/db.h"
#include "http/http.h"
#include "base/log.h"
#include "accounts/password.h"
#include "phoenix/phx_socket.h"
#include "base/ratelimit.h"
#include "net/reactor.h"
#include "http/rest.h"
#include "http/router.h"
#include "base/token.h"
#include "base/util.h"
#include "base/id.h"
#include "base/page.h"
#include "store/pgval.h"
#include "base/verr.h"

accounts_presence_fn accounts_presence_hook;

#define PASSWORD_MIN_CHARS 8
#define PASSWORD_MAX_CHARS 256
#define PASSWORD_MAX_BYTES 1024 /* longer is refused without hashing */
#define DISPLAY_NAME_MAX 64
#define ABOUT_MAX 500
#define MEDIA_ID_MAX 64
#define PUSH_TOKEN_MAX_CHARS 1024
#define PUSH_TOKEN_MAX_BYTES 2048
#define REFRESH_BYTES 32

/* The user columns every query selects, in this order, from alias u. */
#define USER_COLS                                                                                  \
    "u.id, u.username, u.display_name, u.about, u.avatar_media_id, "                               \
    "floor(extract(epoch from u.created_at) * 1000)::int8, "                                       \
    "floor(extract(epoch from u.last_seen_at) * 1000)::int8, (u.banned_at IS NOT NULL)"
enum { UC_ID, UC_USERNAME, UC_DISPLAY, UC_ABOUT, UC_AVATAR, UC_CREATED, UC_SEEN, UC_BANNED, UC_N };

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
static json_t *user_json(const PGresult *res, int row)
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
static bool row_banned(const PGresult *res, int row)
{
    return PQgetvalue(res, row, UC_BANNED)[0] == 't';
}

/* SHA-256 of data as 64 lower-case hex digits. */
static void sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
}

/* Makes a new refresh token (base64url of 32 random bytes) into tok and its
 * stored form (hex SHA-256 of the bytes) into hash. Returns 0 or -1. */
static int refresh_new(char tok[48], char hash[65])
{
    uint8_t raw[REFRESH_BYTES];
    if (random_bytes(raw, sizeof raw) != 0) return -1;
    char *s = b64url_encode(raw, sizeof raw);
    if (!s) return -1;
    snprintf(tok, 48, "%s", s);
    free(s);
    sha256_hex(raw, sizeof raw, hash);
    return 0;
}

/* The stored form of a refresh token presented by a client, or -1 when it
 * cannot be one of ours (not base64url of exactly 32 bytes). */
static int refresh_hash(const char *tok, char hash[65])
{
    uint8_t raw[REFRESH_BYTES + 4];
    size_t n = sizeof raw;
    size_t len = strlen(tok);
    if (len != 43 || b64url_decode(tok, len, raw, &n) != 0 || n != REFRESH_BYTES) return -1;
    sha256_hex(raw, REFRESH_BYTES, hash);
    return 0;
}


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

/* Forgets a session on this node: its sockets are closed and its access
 * tokens refused until they would have expired anyway. */
static void session_kill(const char *sid)
{
    if (!sid || !*sid) return;
    rest_revoke_session(sid, (int64_t)time(NULL) + g_cfg.access_ttl_s + 5);
    sb_disconnect_session(sid);
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
        sb_respond_error(req, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    c->req = req;
    c->db = req->r ? req->r->db : NULL;
    c->loop = req->r ? &req->r->loop : uv_default_loop();
    ascii_copy(sb_req_header(req, "user-agent"), c->ua, sizeof c->ua);
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
    char *access = token_mint((const uint8_t *)g_cfg.secret, g_cfg.secret_len, c->user_id, c->sid,
                              (int64_t)time(NULL) + g_cfg.access_ttl_s);
    if (!access) {
        json_decref(user);
        sb_respond_error(c->req, 500, "internal", "could not mint a token", NULL);
        ctx_free(c);
        return;
    }
    json_t *o =
        json_pack("{s:o,s:s,s:s,s:I}", "user", user, "access_token", access, "refresh_token",
                  c->refresh, "expires_in", (json_int_t)g_cfg.access_ttl_s);
    free(access);
    sb_respond_json(c->req, status, o);
    ctx_free(c);
}

/* Answers with the db error and frees c. */
static void fail_db(actx *c, const PGresult *res, const char *err)
{
    rest_db_error(c->req, res, err);
    ctx_free(c);
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

static const char SQL_USERNAME_TAKEN[] = "SELECT 1 FROM users WHERE username = $1";

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
    sb_respond_error(req, 409, "conflict", "username is already taken",
                     json_pack("{s:s}", "username", "is already taken"));
}

/* Sign-up step 4: the user, session and refresh token are stored -> 201. */
static void signup_inserted(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (!res || err) {
        fail_db(c, res, err);
        return;
    }
    if (PQntuples(res) != 1) { /* lost a race for the username */
        respond_taken(c->req);
        ctx_free(c);
        return;
    }
    snprintf(c->user_id, sizeof c->user_id, "%s", PQgetvalue(res, 0, UC_ID));
    snprintf(c->sid, sizeof c->sid, "%s", PQgetvalue(res, 0, UC_N));
    log_msg(LOG_INFO, "signup", "user_id", json_string(c->user_id), NULL);
    respond_tokens(c, 201, user_json(res, 0));
}

/* Sign-up step 3 (loop thread): the Argon2id hash is ready -> insert. */
static void signup_hashed(char *encoded, void *arg)
{
    actx *c = arg;
    if (!encoded) {
        sb_respond_error(c->req, 500, "internal", "password hashing failed", NULL);
        ctx_free(c);
        return;
    }
    if (refresh_new(c->refresh, c->refresh_h) != 0) {
        free(encoded);
        sb_respond_error(c->req, 500, "internal", "no randomness", NULL);
        ctx_free(c);
        return;
    }
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)g_cfg.refresh_ttl_s);
    const char *p[7] = {c->username, c->display_name, encoded, c->ua, c->ip, c->refresh_h, ttl};
    db_query(c->db, SQL_SIGNUP, 7, p, signup_inserted, c);
    free(encoded);
}

/* Sign-up step 2: the name was free a moment ago -> hash off the loop. */
static void signup_checked(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (!res || err) {
        fail_db(c, res, err);
        return;
    }
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
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    char key[64];
    ratelimit_ip_key(req->client_ip, key, sizeof key);
    int wait = ratelimit_hit(RL_SIGNUP_IP, key);
    if (wait) {
        json_decref(b);
        rest_rate_limited(req, wait);
        return;
    }
    actx *c = ctx_new(req);
    if (!c) {
        json_decref(b);
        return;
    }
    snprintf(c->username, sizeof c->username, "%s", uname);
    c->display_name = strdup(display ? display : uname);
    if (!c->display_name || ctx_set_password(c, password) != 0) {
        json_decref(b);
        sb_respond_error(req, 500, "internal", "out of memory", NULL);
        ctx_free(c);
        return;
    }
    json_decref(b);
    const char *p[1] = {c->username};
    db_query(c->db, SQL_USERNAME_TAKEN, 1, p, signup_checked, c);
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
    sb_respond_error(req, 401, "unauthorized", "invalid username or password", NULL);
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
        sb_respond_error(c->req, 500, "internal", "internal error", NULL);
        ctx_free(c);
        return;
    }
    if (ok != 1 || !c->found) {
        respond_bad_login(c->req);
        ctx_free(c);
        return;
    }
    if (c->banned) {
        sb_respond_error(c->req, 403, "forbidden", "this account is banned", NULL);
        ctx_free(c);
        return;
    }
    if (refresh_new(c->refresh, c->refresh_h) != 0) {
        sb_respond_error(c->req, 500, "internal", "no randomness", NULL);
        ctx_free(c);
        return;
    }
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)g_cfg.refresh_ttl_s);
    const char *p[5] = {c->user_id, c->ua, c->ip, c->refresh_h, ttl};
    db_query(c->db, SQL_SESSION_NEW, 5, p, login_session, c);
}

/* Login step 2: the account row (or none) -> verify off the loop. */
static void login_looked_up(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (!res || err) {
        fail_db(c, res, err);
        return;
    }
    if (PQntuples(res) == 1) {
        c->found = true;
        snprintf(c->user_id, sizeof c->user_id, "%s", PQgetvalue(res, 0, UC_ID));
        c->banned = row_banned(res, 0);
        c->user = user_json(res, 0);
        c->stored_hash = strdup(PQgetvalue(res, 0, UC_N));
        if (!c->stored_hash) {
            sb_respond_error(c->req, 500, "internal", "out of memory", NULL);
            ctx_free(c);
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
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    char key[96];
    ratelimit_ip_key(req->client_ip, key, sizeof key);
    int wait = ratelimit_hit(RL_LOGIN_IP, key);
    char uname[40];
    bool valid = accounts_username_normalize(username, uname, sizeof uname);
    if (!wait && valid) wait = ratelimit_hit(RL_LOGIN_ACCOUNT, uname);
    if (wait) {
        json_decref(b);
        rest_rate_limited(req, wait);
        return;
    }
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
        sb_respond_error(req, 500, "internal", "out of memory", NULL);
        ctx_free(c);
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

/* Callback for fire-and-forget queries: logs real errors only. */
static void ignore_result(const PGresult *res, const char *err, void *arg)
{
    if (err && strcmp(err, "unavailable") != 0)
        log_msg(LOG_WARN, "background query failed", "error", json_string(err), NULL);
}

/* Refresh, failed rotation: a revoked family (reuse) or a dead token -> 401. */
static void refresh_reuse_checked(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (!res || err) {
        fail_db(c, res, err);
        return;
    }
    if (PQntuples(res) > 0) {
        const char *sid = PQgetvalue(res, 0, 0);
        log_msg(LOG_WARN, "refresh token reuse: session revoked", "session_id", json_string(sid),
                "user_id", json_string(PQgetvalue(res, 0, 1)), "ip", json_string(c->ip), NULL);
        session_kill(sid);
        sb_respond_error(c->req, 401, "unauthorized",
                         "refresh token was already used; the session has been revoked", NULL);
    } else {
        sb_respond_error(c->req, 401, "unauthorized", "invalid or expired refresh token", NULL);
    }
    ctx_free(c);
}

/* Refresh: rotated -> new pair; nothing rotated -> check for reuse. */
static void refresh_rotated(const PGresult *res, const char *err, void *arg)
{
    actx *c = arg;
    if (!res || err) {
        fail_db(c, res, err);
        return;
    }
    if (PQntuples(res) != 1) {
        const char *p[1] = {c->old_h};
        db_query(c->db, SQL_REUSE, 1, p, refresh_reuse_checked, c);
        return;
    }
    snprintf(c->user_id, sizeof c->user_id, "%s", PQgetvalue(res, 0, UC_ID));
    snprintf(c->sid, sizeof c->sid, "%s", PQgetvalue(res, 0, UC_N));
    if (row_banned(res, 0)) {
        const char *p[2] = {c->sid, "banned"};
        db_query(c->db, SQL_REVOKE_SID, 2, p, ignore_result, NULL);
        session_kill(c->sid);
        sb_respond_error(c->req, 403, "forbidden", "this account is banned", NULL);
        ctx_free(c);
        return;
    }
    respond_tokens(c, 200, user_json(res, 0));
}

/* Refresh step 1: validate the token shape, then rotate in one statement. */
static void h_refresh(sb_req *req)
{
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *tok;
    verr_get_string(b, "refresh_token", VERR_REQUIRED, 1, 256, &v, &tok);
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    char h[65];
    int bad = refresh_hash(tok, h);
    json_decref(b);
    if (bad) {
        sb_respond_error(req, 401, "unauthorized", "invalid or expired refresh token", NULL);
        return;
    }
    actx *c = ctx_new(req);
    if (!c) return;
    memcpy(c->old_h, h, sizeof h);
    if (refresh_new(c->refresh, c->refresh_h) != 0) {
        sb_respond_error(req, 500, "internal", "no randomness", NULL);
        ctx_free(c);
        return;
    }
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)g_cfg.refresh_ttl_s);
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
    if (!res || err) {
        fail_db(c, res, err);
        return;
    }
    if (!c->sid[0]) { /* by refresh token: the session is what the token names */
        if (PQntuples(res) == 0) {
            sb_respond_error(c->req, 401, "unauthorized", "invalid refresh token", NULL);
            ctx_free(c);
            return;
        }
        snprintf(c->sid, sizeof c->sid, "%s", PQgetvalue(res, 0, 0));
    }
    session_kill(c->sid);
    sb_respond(c->req, 204, NULL, NULL, 0, NULL);
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
        if (!json_is_string(rt) || refresh_hash(json_string_value(rt), h) != 0) {
            json_decref(b);
            sb_respond_error(req, 401, "unauthorized", "invalid refresh token", NULL);
            return;
        }
        json_decref(b);
        actx *c = ctx_new(req);
        if (!c) return;
        memcpy(c->old_h, h, sizeof h);
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
        sb_respond(req, 204, NULL, NULL, 0, NULL);
        ctx_free(c);
        return;
    }
    const char *p[2] = {req->auth.session_id, req->auth.user_id};
    db_query(c->db, SQL_LOGOUT_SID, 2, p, logout_done, c);
}

/* ------------------------------------------------------------------------ */
/* GET /api/v1/me, PATCH /api/v1/me {display_name?, about?, avatar_media_id?} */
/* ------------------------------------------------------------------------ */

static const char SQL_ME[] = "SELECT " USER_COLS " FROM users u WHERE u.id = $1::int8";

/* A banned account's row is returned unchanged (me_done answers 403). */
static const char SQL_ME_PATCH[] =
    "WITH upd AS (UPDATE users u SET"
    " display_name = CASE WHEN $2::bool THEN $3 ELSE u.display_name END,"
    " about = CASE WHEN $4::bool THEN $5 ELSE u.about END,"
    " avatar_media_id = CASE WHEN $6::bool THEN $7 ELSE u.avatar_media_id END"
    " WHERE u.id = $1::int8 AND u.banned_at IS NULL RETURNING " USER_COLS ")"
    " SELECT * FROM upd UNION ALL"
    " SELECT " USER_COLS " FROM users u WHERE u.id = $1::int8 AND u.banned_at IS NOT NULL";

/* Answers {"user": ...} for the caller's own row (404-ish cases: the
 * account is gone -> 401, banned -> 403). */
static void me_done(const PGresult *res, const char *err, void *arg)
{
    sb_req *req = arg;
    if (!res || err) {
        rest_db_error(req, res, err);
        return;
    }
    if (PQntuples(res) != 1) {
        sb_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    if (row_banned(res, 0)) {
        sb_respond_error(req, 403, "forbidden", "this account is banned", NULL);
        return;
    }
    sb_respond_json(req, 200, json_pack("{s:o}", "user", user_json(res, 0)));
}

/* GET /me: the caller's own account. */
static void h_me(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (!id_parse(req->auth.user_id)) {
        sb_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    const char *p[1] = {req->auth.user_id};
    db_query(req->r ? req->r->db : NULL, SQL_ME, 1, p, me_done, req);
}

/* True if s is a plausible media id: 1..64 of [A-Za-z0-9_-]. */
static bool media_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > MEDIA_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* PATCH /me: validates the fields present, updates them in one statement. */
static void h_me_patch(sb_req *req)
{
    if (!rest_auth(req)) return;
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *display = NULL, *about = NULL, *avatar = NULL;
    int has_display =
        verr_get_string(b, "display_name", VERR_NO_CTRL, 1, DISPLAY_NAME_MAX, &v, &display);
    if (has_display == 1 && strspn(display, " ") == strlen(display))
        verr_add(&v, "display_name", "must not be blank");
    int has_about = verr_get_string(b, "about", VERR_NULLABLE, 0, ABOUT_MAX, &v, &about);
    if (has_about == 1 && about) {
        for (const unsigned char *q = (const unsigned char *)about; *q; q++)
            if ((*q < 0x20 && *q != '\n' && *q != '\t') || *q == 0x7f) {
                verr_add(&v, "about", "must not contain control characters");
                break;
            }
    }
    int has_avatar =
        verr_get_string(b, "avatar_media_id", VERR_NULLABLE, 1, MEDIA_ID_MAX, &v, &avatar);
    if (has_avatar == 1 && avatar && !media_id_ok(avatar))
        verr_add(&v, "avatar_media_id", "is not a media id");
    /* TODO(media issue): check that avatar_media_id names an image the caller uploaded. */
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    if (!id_parse(req->auth.user_id)) {
        json_decref(b);
        sb_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    const char *p[7] = {
        req->auth.user_id,  has_display == 1 ? "t" : "f", display, has_about == 1 ? "t" : "f",
        about ? about : "", has_avatar == 1 ? "t" : "f",  avatar};
    /* the strings point into b: db_query copies or sends them before returning */
    db_query(req->r ? req->r->db : NULL, SQL_ME_PATCH, 7, p, me_done, req);
    json_decref(b);
}

/* ------------------------------------------------------------------------ */
/* GET /api/v1/users?q=<prefix>&cursor=&limit=                               */
/* ------------------------------------------------------------------------ */

/* Usernames are [a-z0-9_.] and the column is in the "C" collation, so every
 * name starting with $1 lies in [$1, $1 || '~'). */
static const char SQL_SEARCH[] =
    "SELECT " USER_COLS " FROM users u"
    " WHERE u.username >= $1 AND u.username < $1 || '~' AND u.username > $2"
    "   AND u.banned_at IS NULL"
    " ORDER BY u.username LIMIT $3::int";

typedef struct search_ctx {
    sb_req *req;
    int limit;
} search_ctx;

/* Search results: one row past the limit means there is a next page. */
static void search_done(const PGresult *res, const char *err, void *arg)
{
    search_ctx *s = arg;
    sb_req *req = s->req;
    int limit = s->limit;
    free(s);
    if (!res || err) {
        rest_db_error(req, res, err);
        return;
    }
    int n = PQntuples(res);
    json_t *items = json_array();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(items, user_json(res, i));
    char next[64];
    bool more = n > limit;
    if (more) snprintf(next, sizeof next, "u:%s", PQgetvalue(res, limit - 1, UC_USERNAME));
    sb_respond_json(req, 200, page_body(items, more ? next : NULL));
}

/* GET /users?q=: prefix search over usernames (banned users hidden). */
static void h_users_search(sb_req *req)
{
    if (!rest_auth(req)) return;
    verr v = {0};
    rest_page pg;
    rest_page_parse(req, &pg, &v);
    char *q = sb_req_query(req, "q", true);
    const char *after = "";
    if (pg.cursor) {
        if (strncmp(pg.cursor, "u:", 2) != 0)
            verr_add(&v, "cursor", "is not a valid cursor");
        else
            after = pg.cursor + 2;
    }
    if (!q || !*q) verr_add(&v, "q", "is required");
    if (verr_any(&v)) {
        free(q);
        rest_page_free(&pg);
        rest_verr_respond(req, &v);
        return;
    }
    /* Lower-case; an '@' in front is ignored. A prefix with characters no
     * username has matches nothing. */
    const char *src = q[0] == '@' ? q + 1 : q;
    char prefix[40];
    size_t n = strlen(src);
    bool possible = n >= 1 && n <= 32;
    for (size_t i = 0; possible && i < n; i++) {
        char ch = src[i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.'))
            possible = false;
        prefix[i] = ch;
    }
    if (possible) prefix[n] = 0;
    free(q);
    if (!possible) {
        rest_page_free(&pg);
        sb_respond_json(req, 200, page_body(json_array(), NULL));
        return;
    }
    search_ctx *s = malloc(sizeof *s);
    if (!s) {
        rest_page_free(&pg);
        sb_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    s->req = req;
    s->limit = pg.limit;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", pg.limit + 1);
    const char *p[3] = {prefix, after, lim};
    db_query(req->r ? req->r->db : NULL, SQL_SEARCH, 3, p, search_done, s);
    rest_page_free(&pg);
}

/* ------------------------------------------------------------------------ */
/* GET /api/v1/users/:id                                                     */
/* ------------------------------------------------------------------------ */

static const char SQL_USER[] = "SELECT " USER_COLS " FROM users u WHERE u.id = $1::int8";

/* GET /users/:id result, with presence from the hook when there is one. */
static void user_done(const PGresult *res, const char *err, void *arg)
{
    sb_req *req = arg;
    if (!res || err) {
        rest_db_error(req, res, err);
        return;
    }
    if (PQntuples(res) != 1) {
        sb_respond_error(req, 404, "not_found", "no such user", NULL);
        return;
    }
    json_t *u = user_json(res, 0);
    int64_t seen =
        PQgetisnull(res, 0, UC_SEEN) ? -1 : strtoll(PQgetvalue(res, 0, UC_SEEN), NULL, 10);
    bool online = false;
    if (accounts_presence_hook) {
        int64_t hs = seen;
        online = accounts_presence_hook(PQgetvalue(res, 0, UC_ID), &hs);
        if (hs > seen) seen = hs;
    }
    json_object_set_new(u, "online", json_boolean(online));
    if (seen >= 0) {
        char ts[40];
        format_rfc3339_ms(seen, ts, sizeof ts);
        json_object_set_new(u, "last_seen_at", json_string(ts));
    } else {
        json_object_set_new(u, "last_seen_at", json_null());
    }
    sb_respond_json(req, 200, json_pack("{s:o}", "user", u));
}

/* GET /users/:id: any signed-in user may look up any account. */
static void h_user(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (req->nparams < 1 || !id_parse(req->params[0])) {
        sb_respond_error(req, 404, "not_found", "no such user", NULL);
        return;
    }
    const char *p[1] = {req->params[0]};
    db_query(req->r ? req->r->db : NULL, SQL_USER, 1, p, user_done, req);
}

/* ------------------------------------------------------------------------ */
/* POST /api/v1/devices {platform, push_token}; DELETE /api/v1/devices/:id   */
/* ------------------------------------------------------------------------ */

/* A push token identifies one app install: registering it again (after a
 * reinstall, or another account signing in on the phone) moves it. */
static const char SQL_DEVICE_ADD[] =
    "INSERT INTO devices (user_id, session_id, platform, push_token)"
    " VALUES ($1::int8, (SELECT id FROM sessions WHERE id = $2::int8), $3, $4)"
    " ON CONFLICT (push_token) DO UPDATE SET user_id = EXCLUDED.user_id,"
    "   session_id = EXCLUDED.session_id, platform = EXCLUDED.platform, updated_at = now()"
    " RETURNING id, platform, push_token, floor(extract(epoch from created_at) * 1000)::int8";

static const char SQL_DEVICE_DEL[] =
    "DELETE FROM devices WHERE id = $1::int8 AND user_id = $2::int8 RETURNING id";

/* POST /devices result -> 201 {device} (401 if the account is gone). */
static void device_added(const PGresult *res, const char *err, void *arg)
{
    sb_req *req = arg;
    if (res && err && PQresultErrorField(res, PG_DIAG_SQLSTATE) &&
        !strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23503")) {
        /* the user row is gone (foreign key) */
        sb_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    if (!res || err || PQntuples(res) != 1) {
        rest_db_error(req, res, err);
        return;
    }
    json_t *d = json_object();
    json_object_set_new(d, "id", pgval_str(res, 0, 0));
    json_object_set_new(d, "platform", pgval_str(res, 0, 1));
    json_object_set_new(d, "push_token", pgval_str(res, 0, 2));
    json_object_set_new(d, "created_at", pgval_time(res, 0, 3));
    sb_respond_json(req, 201, json_pack("{s:o}", "device", d));
}

/* POST /devices: registers (or moves) a push token to the caller's session. */
static void h_device_add(sb_req *req)
{
    if (!rest_auth(req)) return;
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *platform, *tok;
    if (verr_get_string(b, "platform", VERR_REQUIRED, 1, 16, &v, &platform) == 1 &&
        strcmp(platform, "android") && strcmp(platform, "ios") && strcmp(platform, "web"))
        verr_add(&v, "platform", "must be one of android, ios, web");
    if (verr_get_string(b, "push_token", VERR_REQUIRED | VERR_NO_CTRL, 1, PUSH_TOKEN_MAX_CHARS, &v,
                        &tok) == 1 &&
        strlen(tok) > PUSH_TOKEN_MAX_BYTES)
        verr_add(&v, "push_token", "is too long");
    if (!verr_any(&v) && !id_parse(req->auth.user_id)) {
        json_decref(b);
        sb_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    const char *p[4] = {req->auth.user_id, sid_param(req), platform, tok};
    db_query(req->r ? req->r->db : NULL, SQL_DEVICE_ADD, 4, p, device_added, req);
    json_decref(b);
}

/* DELETE /devices/:id result: 204, or 404 when not the caller's. */
static void device_deleted(const PGresult *res, const char *err, void *arg)
{
    sb_req *req = arg;
    if (!res || err) {
        rest_db_error(req, res, err);
        return;
    }
    if (PQntuples(res) != 1) {
        sb_respond_error(req, 404, "not_found", "no such device", NULL);
        return;
    }
    sb_respond(req, 204, NULL, NULL, 0, NULL);
}

/* DELETE /devices/:id: only the caller's own devices. */
static void h_device_del(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (req->nparams < 1 || !id_parse(req->params[0]) || !id_parse(req->auth.user_id)) {
        sb_respond_error(req, 404, "not_found", "no such device", NULL);
        return;
    }
    const char *p[2] = {req->params[0], req->auth.user_id};
    db_query(req->r ? req->r->db : NULL, SQL_DEVICE_DEL, 2, p, device_deleted, req);
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
    if (now - prev < 3600 || !r || !r->db || !db_pool_ready(r->db)) return;
    if (!atomic_compare_exchange_strong(&last, &prev, now)) return;
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)g_cfg.refresh_ttl_s);
    const char *p[1] = {ttl};
    db_query(r->db, SQL_PRUNE_TOKENS, 0, NULL, ignore_result, NULL);
    db_query(r->db, SQL_PRUNE_SESSIONS, 1, p, ignore_result, NULL);
}

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
    snprintf(ttl, sizeof ttl, "%lld", (long long)g_cfg.access_ttl_s + 5);
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
                                strtoll(PQgetvalue(res, i, 1), NULL, 10) + g_cfg.access_ttl_s + 5);
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
    if (ratelimit_configure(g_cfg.ratelimit_login_ip, g_cfg.ratelimit_login_account,
                            g_cfg.ratelimit_signup_ip, g_cfg.ratelimit_connect_ip) != 0) {
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
    router_add(HTTP_GET, "/api/v1/me", h_me);
    router_add(HTTP_PATCH, "/api/v1/me", h_me_patch);
    router_add(HTTP_GET, "/api/v1/users", h_users_search);
    router_add(HTTP_GET, "/api/v1/users/:id", h_user);
    router_add(HTTP_POST, "/api/v1/devices", h_device_add);
    router_add(HTTP_DELETE, "/api/v1/devices/:id", h_device_del);
    return 0;
}
