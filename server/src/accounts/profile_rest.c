/* profile_rest.c — the REST edge of profiles, user search and push devices
 * (api.md §2 "Auth and account"): GET/PATCH /me, GET /users?q=,
 * GET /users/:id, POST /devices, DELETE /devices/:id. */
#include "accounts/accounts.h"
#include "accounts/accounts_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "base/id.h"
#include "base/page.h"
#include "base/util.h"
#include "base/verr.h"
#include "http/http.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"
#include "store/pgval.h"

#define DISPLAY_NAME_MAX 64
#define ABOUT_MAX 500
#define MEDIA_ID_MAX 64
#define PUSH_TOKEN_MAX_CHARS 1024
#define PUSH_TOKEN_MAX_BYTES 2048

/* The session id of the request's access token as a bigint parameter, or
 * NULL when it is not one of ours (e.g. minted by `switchboard token`). */
static const char *sid_param(const sb_req *req)
{
    return id_parse(req->auth.session_id) ? req->auth.session_id : NULL;
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
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    if (accounts_row_banned(res, 0)) {
        http_respond_error(req, 403, "forbidden", "this account is banned", NULL);
        return;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "user", accounts_user_json(res, 0)));
}

/* GET /me: the caller's own account. */
static void h_me(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (!id_parse(req->auth.user_id)) {
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    const char *p[1] = {req->auth.user_id};
    db_query(req->r ? db_of(req->r) : NULL, SQL_ME, 1, p, me_done, req);
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
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    const char *p[7] = {
        req->auth.user_id,  has_display == 1 ? "t" : "f", display, has_about == 1 ? "t" : "f",
        about ? about : "", has_avatar == 1 ? "t" : "f",  avatar};
    /* the strings point into b: db_query copies or sends them before returning */
    db_query(req->r ? db_of(req->r) : NULL, SQL_ME_PATCH, 7, p, me_done, req);
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
        json_array_append_new(items, accounts_user_json(res, i));
    char next[64];
    bool more = n > limit;
    if (more) snprintf(next, sizeof next, "u:%s", PQgetvalue(res, limit - 1, UC_USERNAME));
    http_respond_json(req, 200, page_body(items, more ? next : NULL));
}

/* GET /users?q=: prefix search over usernames (banned users hidden). */
static void h_users_search(sb_req *req)
{
    if (!rest_auth(req)) return;
    verr v = {0};
    rest_page pg;
    rest_page_parse(req, &pg, &v);
    char *q = http_req_query(req, "q", true);
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
        http_respond_json(req, 200, page_body(json_array(), NULL));
        return;
    }
    search_ctx *s = malloc(sizeof *s);
    if (!s) {
        rest_page_free(&pg);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    s->req = req;
    s->limit = pg.limit;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", pg.limit + 1);
    const char *p[3] = {prefix, after, lim};
    db_query(req->r ? db_of(req->r) : NULL, SQL_SEARCH, 3, p, search_done, s);
    rest_page_free(&pg);
}

/* ------------------------------------------------------------------------ */
/* GET /api/v1/users/:id                                                     */
/* ------------------------------------------------------------------------ */

/* The user, whether they block the caller (their online state and last
 * seen are then hidden from the caller; the blocks table of
 * migrations/080_moderation.sql, queried here so that accounts/ never calls
 * the moderation domain above it) and whether the account is deleted. */
static const char SQL_USER[] =
    "SELECT " USER_COLS ","
    " EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $2::int8),"
    " u.deleted_at IS NOT NULL"
    " FROM users u WHERE u.id = $1::int8";

/* GET /users/:id result, with presence from the hook when there is one. */
static void user_done(const PGresult *res, const char *err, void *arg)
{
    sb_req *req = arg;
    if (!res || err) {
        rest_db_error(req, res, err);
        return;
    }
    if (PQntuples(res) != 1) {
        http_respond_error(req, 404, "not_found", "no such user", NULL);
        return;
    }
    json_t *u = accounts_user_json(res, 0);
    bool hidden = PQgetvalue(res, 0, UC_N)[0] == 't' || PQgetvalue(res, 0, UC_N + 1)[0] == 't';
    json_object_set_new(u, "deleted", json_boolean(PQgetvalue(res, 0, UC_N + 1)[0] == 't'));
    int64_t seen = hidden || PQgetisnull(res, 0, UC_SEEN)
                       ? -1
                       : strtoll(PQgetvalue(res, 0, UC_SEEN), NULL, 10);
    bool online = false;
    if (accounts_presence_hook && !hidden) {
        int64_t hs = seen;
        online = accounts_presence_hook(PQgetvalue(res, 0, UC_ID), &hs);
        if (hs > seen) seen = hs;
    }
    json_object_set_new(u, "online", json_boolean(online));
    if (seen >= 0) {
        char ts[40];
        util_format_rfc3339_ms(seen, ts, sizeof ts);
        json_object_set_new(u, "last_seen_at", json_string(ts));
    } else {
        json_object_set_new(u, "last_seen_at", json_null());
    }
    http_respond_json(req, 200, json_pack("{s:o}", "user", u));
}

/* GET /users/:id: any signed-in user may look up any account. */
static void h_user(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (req->nparams < 1 || !id_parse(req->params[0])) {
        http_respond_error(req, 404, "not_found", "no such user", NULL);
        return;
    }
    const char *p[2] = {req->params[0], id_parse(req->auth.user_id) ? req->auth.user_id : NULL};
    db_query(req->r ? db_of(req->r) : NULL, SQL_USER, 2, p, user_done, req);
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
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
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
    http_respond_json(req, 201, json_pack("{s:o}", "device", d));
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
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    const char *p[4] = {req->auth.user_id, sid_param(req), platform, tok};
    db_query(req->r ? db_of(req->r) : NULL, SQL_DEVICE_ADD, 4, p, device_added, req);
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
        http_respond_error(req, 404, "not_found", "no such device", NULL);
        return;
    }
    http_respond(req, 204, NULL, NULL, 0, NULL);
}

/* DELETE /devices/:id: only the caller's own devices. */
static void h_device_del(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (req->nparams < 1 || !id_parse(req->params[0]) || !id_parse(req->auth.user_id)) {
        http_respond_error(req, 404, "not_found", "no such device", NULL);
        return;
    }
    const char *p[2] = {req->params[0], req->auth.user_id};
    db_query(req->r ? db_of(req->r) : NULL, SQL_DEVICE_DEL, 2, p, device_deleted, req);
}

void accounts_profile_routes(void)
{
    router_add(HTTP_GET, "/api/v1/me", h_me);
    router_add(HTTP_PATCH, "/api/v1/me", h_me_patch);
    router_add(HTTP_GET, "/api/v1/users", h_users_search);
    router_add(HTTP_GET, "/api/v1/users/:id", h_user);
    router_add(HTTP_POST, "/api/v1/devices", h_device_add);
    router_add(HTTP_DELETE, "/api/v1/devices/:id", h_device_del);
}
