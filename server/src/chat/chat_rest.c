/* chat_rest.c — the REST endpoints of conversations, members and messages
 * (api.md §2 "Conversations", "Messages"). Writes go through the same
 * operations as the channel events (chat_ops.c); reads are sb_* functions
 * of migrations/004_chat.sql returning one jsonb value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "accounts/accounts.h"
#include "chat/chat.h"
#include "presence/presence.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"
#include "base/id.h"
#include "base/verr.h"

#define TITLE_MAX 128
#define DESCRIPTION_MAX 1000
#define GROUP_MEMBERS_MAX 1000

/* ------------------------------------------------------------------------ */
/* The REST sink: chat answers as HTTP responses                             */
/* ------------------------------------------------------------------------ */

static void rest_sink_ok(void *to, chat_reply kind, json_t *body)
{
    sb_req *req = to;
    if (kind == CHAT_REPLY_NONE) {
        json_decref(body);
        http_respond(req, 204, NULL, NULL, 0, NULL);
    } else {
        http_respond_json(req, kind == CHAT_REPLY_CREATED ? 201 : 200, body);
    }
}

static void rest_sink_fail(void *to, const char *code, const char *message, json_t *details,
                           int retry_after_s)
{
    char h[48];
    if (retry_after_s > 0) snprintf(h, sizeof h, "Retry-After: %d\r\n", retry_after_s);
    http_respond_error_h(to, rest_code_status(code), code, message, details, retry_after_s > 0 ? h : NULL);
}

static const chat_sink_ops REST_SINK = {.ok = rest_sink_ok, .fail = rest_sink_fail};

/* A sink answering req; NULL after answering 500 when out of memory. */
static chat_sink *rest_sink(sb_req *req)
{
    chat_sink *s = chat_sink_new(&REST_SINK, req, req->r ? db_of(req->r) : NULL);
    if (!s) http_respond_error(req, 500, "internal", "out of memory", NULL);
    return s;
}

/* Authenticates and makes a sink; NULL when already answered. */
static chat_sink *begin(sb_req *req)
{
    if (!rest_auth(req)) return NULL;
    return rest_sink(req);
}

/* The path id at index i, or NULL (answered 404 with `what`) when it cannot
 * name anything. */
static const char *path_id(chat_sink *s, sb_req *req, int i, const char *what)
{
    if (req->nparams > i && id_parse(req->params[i]) && strlen(req->params[i]) <= 20)
        return req->params[i];
    char msg[64];
    snprintf(msg, sizeof msg, "no such %s", what);
    chat_fail(s, "not_found", msg, NULL);
    return NULL;
}

/* Authenticates, parses the JSON body and, when `what` is set, checks the
 * path id at index 0 (404 "no such <what>"). Returns the body (the caller
 * frees it) with *sink and *id set, or NULL when already answered. */
static json_t *begin_body(sb_req *req, chat_sink **sink, const char **id, const char *what)
{
    if (!rest_auth(req)) return NULL;
    json_t *b = rest_body(req, true);
    if (!b) return NULL;
    chat_sink *s = rest_sink(req);
    const char *pid = s && what ? path_id(s, req, 0, what) : NULL;
    if (!s || (what && !pid)) {
        json_decref(b);
        return NULL;
    }
    *sink = s;
    *id = pid;
    return b;
}

/* Authenticates and checks the path id at index 0 (404 "no such <what>").
 * Returns the id with *sink set, or NULL when already answered. */
static const char *begin_id(sb_req *req, chat_sink **sink, const char *what)
{
    chat_sink *s = begin(req);
    *sink = s;
    return s ? path_id(s, req, 0, what) : NULL;
}

/* The caller's id, checked (tokens minted outside sign-up may carry any
 * text): false after answering 401. */
static bool caller_known(chat_sink *s, const sb_req *req)
{
    if (id_parse(req->auth.user_id)) return true;
    chat_fail(s, "unauthorized", "this account no longer exists", NULL);
    return false;
}

/* A listing's end of validation: true after answering validation_failed
 * (and freeing pg) when v holds errors. */
static bool page_refused(chat_sink *s, rest_page *pg, verr *v)
{
    if (!verr_any(v)) return false;
    rest_page_free(pg);
    chat_fail_verr(s, v);
    return true;
}

/* `limit` + 1 as a query parameter: one row more than a page tells
 * whether there is a next one. */
static void page_lim(const rest_page *pg, char lim[16])
{
    snprintf(lim, 16, "%d", pg->limit + 1);
}

/* The end of PATCH /conversations/:id and PUT /conversations/:id/me:
 * validation_failed when v holds errors, else runs sql with (caller, id,
 * patch as jsonb). Consumes patch. */
static void run_patch(chat_sink *s, const sb_req *req, const char *id, json_t *patch, verr *v,
                      const char *sql)
{
    if (verr_any(v)) {
        json_decref(patch);
        chat_fail_verr(s, v);
        return;
    }
    char *pj = json_dumps(patch, JSON_COMPACT);
    json_decref(patch);
    const char *p[3] = {req->auth.user_id, id, pj};
    chat_run(s, CHAT_PLAIN, 0, sql, 3, p);
    free(pj);
}

/* An operation of chat_ops.c on the record named by the path, with the
 * JSON body. */
typedef void body_op(chat_sink *s, const char *user_id, const char *id, json_t *body);

/* Authenticates, parses the body, checks the path id (404 "no such
 * <what>") and runs op. */
static void with_body(sb_req *req, const char *what, body_op *op)
{
    chat_sink *s;
    const char *id;
    json_t *b = begin_body(req, &s, &id, what);
    if (!b) return;
    op(s, req->auth.user_id, id, b);
    json_decref(b);
}

/* Parses a non-negative integer query parameter. Returns 1 when present and
 * valid (into out), 0 when absent, -1 (error recorded) when malformed. */
static int query_seq(sb_req *req, const char *name, verr *v, char out[24])
{
    char *q = http_req_query(req, name, true);
    if (!q) return 0;
    size_t n = strlen(q);
    bool ok = n >= 1 && n <= 18;
    for (size_t i = 0; ok && i < n; i++)
        if (q[i] < '0' || q[i] > '9') ok = false;
    if (ok) snprintf(out, 24, "%lld", strtoll(q, NULL, 10));
    else verr_add(v, name, "must be a non-negative integer");
    free(q);
    return ok ? 1 : -1;
}

/* Builds a Postgres bigint[] literal "{1,2,3}" from a JSON array of ids
 * (strings or integers), at most `max`. Returns NULL after recording an
 * error for `field`. */
static char *id_array(json_t *arr, const char *field, size_t max, bool allow_empty, verr *v)
{
    if (!json_is_array(arr)) {
        verr_add(v, field, arr ? "must be an array of user ids" : "is required");
        return NULL;
    }
    size_t n = json_array_size(arr);
    if (n > max || (!allow_empty && n == 0)) {
        char msg[64];
        snprintf(msg, sizeof msg, "must hold 1 to %zu user ids", max);
        verr_add(v, field, msg);
        return NULL;
    }
    char *out = malloc(n * 22 + 3);
    if (!out) return NULL;
    size_t o = 0;
    out[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        char id[24];
        if (chat_json_id(json_array_get(arr, i), id) != 1) {
            free(out);
            verr_add(v, field, "must be an array of user ids");
            return NULL;
        }
        o += (size_t)sprintf(out + o, "%s%s", i ? "," : "", id);
    }
    out[o++] = '}';
    out[o] = 0;
    return out;
}

/* ------------------------------------------------------------------------ */
/* Conversations                                                             */
/* ------------------------------------------------------------------------ */

static const char SQL_CHATS[] =
    "SELECT sb_chat_list($1::int8, $2::bool, $3::bool, $4::timestamptz, $5::int8, $6::int)::text";

/* GET /conversations?archived=&cursor=&limit= */
static void h_chats(sb_req *req)
{
    chat_sink *s = begin(req);
    if (!s) return;
    verr v = {0};
    rest_page pg;
    rest_page_parse(req, &pg, &v);
    char *arch = http_req_query(req, "archived", true);
    bool archived = false;
    if (arch && !strcmp(arch, "true")) archived = true;
    else if (arch && strcmp(arch, "false")) verr_add(&v, "archived", "must be true or false");
    free(arch);
    char pinned[2] = "", at[40] = "", id[24] = "";
    if (pg.cursor) {
        /* c:<0|1>:<timestamp>:<id> */
        const char *c = pg.cursor;
        const char *p2 = strrchr(c, ':');
        if (strncmp(c, "c:", 2) || (c[2] != '0' && c[2] != '1') || c[3] != ':' || !p2 ||
            p2 - (c + 4) <= 0 || p2 - (c + 4) >= (long)sizeof at || !id_parse(p2 + 1) ||
            strlen(p2 + 1) > 20) {
            verr_add(&v, "cursor", "is not a valid cursor");
        } else {
            pinned[0] = c[2] == '1' ? 't' : 'f';
            memcpy(at, c + 4, (size_t)(p2 - (c + 4)));
            snprintf(id, sizeof id, "%s", p2 + 1);
        }
    }
    if (page_refused(s, &pg, &v)) return;
    char lim[16];
    page_lim(&pg, lim);
    const char *p[6] = {req->auth.user_id, archived ? "t" : "f", id[0] ? pinned : NULL,
                        id[0] ? at : NULL, id[0] ? id : NULL, lim};
    int limit = pg.limit;
    rest_page_free(&pg);
    if (!caller_known(s, req)) return;
    chat_run(s, CHAT_CHATS, limit, SQL_CHATS, 6, p);
}

/* POST /conversations {kind:"direct", user_id} | {kind:"group", title, member_ids} */
static void h_create(sb_req *req)
{
    chat_sink *s;
    const char *unused;
    json_t *b = begin_body(req, &s, &unused, NULL);
    if (!b) return;
    if (!caller_known(s, req)) {
        json_decref(b);
        return;
    }
    verr v = {0};
    const char *kind = NULL;
    verr_get_string(b, "kind", VERR_REQUIRED, 1, 16, &v, &kind);
    if (kind && !strcmp(kind, "direct")) {
        char other[24];
        int rc = chat_json_id(json_object_get(b, "user_id"), other);
        if (rc != 1) verr_add(&v, "user_id", rc == 0 ? "is required" : "must be a user id");
        if (!verr_any(&v)) {
            const char *p[2] = {req->auth.user_id, other};
            json_decref(b);
            chat_run(s, CHAT_CREATED, 0,
                     "SELECT sb_conversation_direct($1::int8, $2::int8)::text", 2, p);
            return;
        }
    } else if (kind && !strcmp(kind, "group")) {
        const char *title = NULL;
        if (verr_get_string(b, "title", VERR_REQUIRED | VERR_NO_CTRL, 1, TITLE_MAX, &v, &title) == 1 &&
            strspn(title, " ") == strlen(title))
            verr_add(&v, "title", "must not be blank");
        char *ids = id_array(json_object_get(b, "member_ids"), "member_ids", GROUP_MEMBERS_MAX, true, &v);
        if (!verr_any(&v) && ids) {
            const char *p[3] = {req->auth.user_id, title, ids};
            chat_run(s, CHAT_CREATED, 0,
                     "SELECT sb_conversation_group($1::int8, $2, $3::int8[])::text", 3, p);
            free(ids);
            json_decref(b);
            return;
        }
        free(ids);
    } else if (kind) {
        verr_add(&v, "kind", "must be direct or group");
    }
    json_decref(b);
    if (!verr_any(&v)) verr_add(&v, "kind", "is required");
    chat_fail_verr(s, &v);
}

/* GET /conversations/:id */
static void h_get(sb_req *req)
{
    chat_sink *s;
    const char *id = begin_id(req, &s, "conversation");
    if (!id) return;
    const char *p[2] = {req->auth.user_id, id};
    /* online_count is added in C (chat_ops.c) from the live table; "_hidden"
     * lists the members whose online state sb_presence_hidden hides from
     * the caller */
    chat_run(s, CHAT_CONV, 0,
             "SELECT CASE WHEN v IS NULL THEN sb_err('not_found', 'no such conversation')"
             " ELSE jsonb_build_object('conversation', v, '_hidden',"
             "   (SELECT COALESCE(jsonb_agg(m.user_id::text), '[]') FROM members m"
             "    WHERE m.conversation_id = $2::int8 AND m.user_id <> $1::int8"
             "      AND sb_presence_hidden(m.user_id, $1::int8))) END::text"
             " FROM (SELECT sb_conversation_view($2::int8, $1::int8) AS v) x",
             2, p);
}

/* PATCH /conversations/:id {title?, description?, avatar_media_id?, settings?} */
static void h_patch(sb_req *req)
{
    chat_sink *s;
    const char *id;
    json_t *b = begin_body(req, &s, &id, "conversation");
    if (!b) return;
    verr v = {0};
    json_t *patch = json_object();
    const char *str;
    if (verr_get_string(b, "title", VERR_NO_CTRL, 1, TITLE_MAX, &v, &str) == 1) {
        if (strspn(str, " ") == strlen(str)) verr_add(&v, "title", "must not be blank");
        json_object_set_new(patch, "title", json_string(str));
    }
    if (verr_get_string(b, "description", VERR_NULLABLE, 0, DESCRIPTION_MAX, &v, &str) == 1)
        json_object_set_new(patch, "description", str ? json_string(str) : json_null());
    if (verr_get_string(b, "avatar_media_id", VERR_NULLABLE, 1, 64, &v, &str) == 1) {
        bool ok = true;
        for (const char *q = str; q && *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                  *q == '_' || *q == '-'))
                ok = false;
        if (!ok) verr_add(&v, "avatar_media_id", "is not a media id");
        json_object_set_new(patch, "avatar_media_id", str ? json_string(str) : json_null());
    }
    json_t *st = json_object_get(b, "settings");
    if (st) {
        static const char *const keys[] = {"who_can_send", "who_can_edit_info", "who_can_add_members"};
        json_t *ns = json_object();
        if (!json_is_object(st)) verr_add(&v, "settings", "must be an object");
        for (size_t i = 0; json_is_object(st) && i < 3; i++) {
            json_t *x = json_object_get(st, keys[i]);
            if (!x) continue;
            const char *val = json_string_value(x);
            if (!val || (strcmp(val, "all") && strcmp(val, "admins")))
                verr_add(&v, "settings", "each setting must be all or admins");
            else json_object_set_new(ns, keys[i], json_string(val));
        }
        json_object_set_new(patch, "settings", ns);
    }
    json_decref(b);
    run_patch(s, req, id, patch, &v, "SELECT sb_conversation_update($1::int8, $2::int8, $3::jsonb)::text");
}

/* True if s looks like an RFC 3339 time ("2026-11-24T09:15:02.123Z" or
 * with an offset); Postgres does the full parse. */
static bool looks_like_time(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || n > 35) return false;
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9')) return false;
    return s[10] == 'T' || s[10] == 't';
}

/* PUT /conversations/:id/me {pinned?, archived?, muted_until?} */
static void h_me_put(sb_req *req)
{
    chat_sink *s;
    const char *id;
    json_t *b = begin_body(req, &s, &id, "conversation");
    if (!b) return;
    verr v = {0};
    json_t *patch = json_object();
    static const char *const flags[] = {"pinned", "archived"};
    for (int i = 0; i < 2; i++) {
        json_t *x = json_object_get(b, flags[i]);
        if (!x) continue;
        if (!json_is_boolean(x)) verr_add(&v, flags[i], "must be true or false");
        else json_object_set(patch, flags[i], x);
    }
    json_t *mu = json_object_get(b, "muted_until");
    if (mu) {
        if (json_is_null(mu)) json_object_set_new(patch, "muted_until", json_null());
        else if (json_is_string(mu) && looks_like_time(json_string_value(mu)))
            json_object_set(patch, "muted_until", mu);
        else verr_add(&v, "muted_until", "must be an RFC 3339 time or null");
    }
    json_decref(b);
    run_patch(s, req, id, patch, &v, "SELECT sb_conversation_settings($1::int8, $2::int8, $3::jsonb)::text");
}

/* DELETE /conversations/:id/me: leave a group, hide a direct chat. */
static void h_me_delete(sb_req *req)
{
    chat_sink *s;
    const char *id = begin_id(req, &s, "conversation");
    if (!id) return;
    const char *p[2] = {req->auth.user_id, id};
    chat_sink_set_kick(s, id, req->auth.user_id);
    chat_run(s, CHAT_EMPTY, 0,
             "SELECT (CASE WHEN (SELECT kind FROM conversations WHERE id = $2::int8) = 'direct'"
             " THEN sb_conversation_hide($1::int8, $2::int8)"
             " ELSE sb_member_remove($1::int8, $2::int8, $1::int8) || '{\"kick\":true}' END)::text",
             2, p);
}

/* ------------------------------------------------------------------------ */
/* Members                                                                   */
/* ------------------------------------------------------------------------ */

/* GET /conversations/:id/members?cursor=&limit= */
static void h_members(sb_req *req)
{
    chat_sink *s;
    const char *id = begin_id(req, &s, "conversation");
    if (!id) return;
    verr v = {0};
    rest_page pg;
    rest_page_parse(req, &pg, &v);
    const char *after = NULL;
    if (pg.cursor) {
        if (strncmp(pg.cursor, "m:", 2) || !id_parse(pg.cursor + 2) || strlen(pg.cursor) > 22)
            verr_add(&v, "cursor", "is not a valid cursor");
        else after = pg.cursor + 2;
    }
    if (page_refused(s, &pg, &v)) return;
    char lim[16];
    page_lim(&pg, lim);
    const char *p[4] = {req->auth.user_id, id, after, lim};
    chat_run(s, CHAT_MEMBERS, pg.limit,
             "SELECT sb_members_list($1::int8, $2::int8, $3::int8, $4::int)::text", 4, p);
    rest_page_free(&pg);
}

/* POST /conversations/:id/members {user_ids} */
static void h_members_add(sb_req *req)
{
    chat_sink *s;
    const char *id;
    json_t *b = begin_body(req, &s, &id, "conversation");
    if (!b) return;
    verr v = {0};
    char *ids = id_array(json_object_get(b, "user_ids"), "user_ids", GROUP_MEMBERS_MAX, false, &v);
    json_decref(b);
    if (!ids) {
        if (!verr_any(&v)) {
            chat_fail(s, "internal", "out of memory", NULL);
            return;
        }
        chat_fail_verr(s, &v);
        return;
    }
    const char *p[3] = {req->auth.user_id, id, ids};
    chat_run(s, CHAT_PLAIN, 0, "SELECT sb_members_add($1::int8, $2::int8, $3::int8[])::text", 3, p);
    free(ids);
}

/* PATCH /conversations/:id/members/:user_id {role} */
static void h_member_patch(sb_req *req)
{
    chat_sink *s;
    const char *id;
    json_t *b = begin_body(req, &s, &id, "conversation");
    if (!b) return;
    const char *uid = path_id(s, req, 1, "member");
    if (!uid) {
        json_decref(b);
        return;
    }
    verr v = {0};
    const char *role = NULL;
    if (verr_get_string(b, "role", VERR_REQUIRED, 1, 16, &v, &role) == 1 && strcmp(role, "admin") &&
        strcmp(role, "member"))
        verr_add(&v, "role", "must be admin or member");
    if (verr_any(&v)) {
        json_decref(b);
        chat_fail_verr(s, &v);
        return;
    }
    const char *p[4] = {req->auth.user_id, id, uid, role};
    chat_run(s, CHAT_PLAIN, 0, "SELECT sb_member_role($1::int8, $2::int8, $3::int8, $4)::text", 4, p);
    json_decref(b);
}

/* DELETE /conversations/:id/members/:user_id */
static void h_member_delete(sb_req *req)
{
    chat_sink *s;
    const char *id = begin_id(req, &s, "conversation");
    const char *uid = id ? path_id(s, req, 1, "member") : NULL;
    if (!uid) return;
    const char *p[3] = {req->auth.user_id, id, uid};
    chat_sink_set_kick(s, id, uid);
    chat_run(s, CHAT_EMPTY, 0,
             "SELECT (sb_member_remove($1::int8, $2::int8, $3::int8) || '{\"kick\":true}')::text", 3, p);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

/* GET /conversations/:id/messages?before_seq=&after_seq=&limit=&cursor= */
static void h_history(sb_req *req)
{
    chat_sink *s;
    const char *id = begin_id(req, &s, "conversation");
    if (!id) return;
    verr v = {0};
    rest_page pg;
    rest_page_parse(req, &pg, &v);
    char before[24] = "", after[24] = "";
    int hb = query_seq(req, "before_seq", &v, before);
    int ha = query_seq(req, "after_seq", &v, after);
    if (pg.cursor) {
        /* b:<seq> or a:<seq>: continues in that direction */
        char *end = NULL;
        long long x = (pg.cursor[0] == 'a' || pg.cursor[0] == 'b') && pg.cursor[1] == ':'
                          ? strtoll(pg.cursor + 2, &end, 10)
                          : -1;
        if (x < 0 || !end || *end || end == pg.cursor + 2) {
            verr_add(&v, "cursor", "is not a valid cursor");
        } else if (pg.cursor[0] == 'b') {
            snprintf(before, sizeof before, "%lld", x);
            hb = 1;
        } else {
            snprintf(after, sizeof after, "%lld", x);
            ha = 1;
        }
    }
    if (page_refused(s, &pg, &v)) return;
    char lim[16];
    page_lim(&pg, lim);
    const char *p[5] = {req->auth.user_id, id, hb == 1 ? before : NULL, ha == 1 ? after : NULL, lim};
    chat_sink_set_mode(s, ha == 1 ? 'a' : 'b');
    chat_run(s, CHAT_HISTORY, pg.limit,
             "SELECT sb_history($1::int8, $2::int8, $3::int8, $4::int8, $5::int)::text", 5, p);
    rest_page_free(&pg);
}

/* POST /conversations/:id/messages: as message:send. */
static void h_send(sb_req *req) { with_body(req, "conversation", chat_op_send); }

/* PATCH /messages/:id {body} */
static void h_edit(sb_req *req) { with_body(req, "message", chat_op_edit); }

/* DELETE /messages/:id?for=me|everyone */
static void h_delete(sb_req *req)
{
    chat_sink *s;
    const char *id = begin_id(req, &s, "message");
    if (!id) return;
    char *f = http_req_query(req, "for", true);
    json_t *b = json_object();
    if (f) json_object_set_new(b, "for", json_string(f));
    free(f);
    chat_op_delete(s, req->auth.user_id, id, NULL, b);
    json_decref(b);
}

/* POST /messages/:id/reactions {emoji} */
static void react_add(chat_sink *s, const char *user_id, const char *id, json_t *body)
{
    chat_op_react(s, user_id, id, NULL, "add", body);
}
static void h_react(sb_req *req) { with_body(req, "message", react_add); }

/* DELETE /messages/:id/reactions/:emoji */
static void h_unreact(sb_req *req)
{
    chat_sink *s;
    const char *id = begin_id(req, &s, "message");
    if (!id) return;
    json_t *b = json_object();
    chat_op_react(s, req->auth.user_id, id, req->nparams > 1 ? req->params[1] : "", "remove", b);
    json_decref(b);
}

/* POST /conversations/:id/read|delivered {up_to_seq} */
static void receipt_read(chat_sink *s, const char *user_id, const char *id, json_t *body)
{
    chat_op_receipt(s, user_id, id, "read", body);
}
static void receipt_delivered(chat_sink *s, const char *user_id, const char *id, json_t *body)
{
    chat_op_receipt(s, user_id, id, "delivered", body);
}
static void h_read(sb_req *req) { with_body(req, "conversation", receipt_read); }
static void h_delivered(sb_req *req) { with_body(req, "conversation", receipt_delivered); }

void chat_routes(void)
{
    chat_ops_init();
    ch_conversation_register();
    accounts_presence_hook = presence_user_online;
    router_add(HTTP_GET, "/api/v1/conversations", h_chats);
    router_add(HTTP_POST, "/api/v1/conversations", h_create);
    router_add(HTTP_GET, "/api/v1/conversations/:id", h_get);
    router_add(HTTP_PATCH, "/api/v1/conversations/:id", h_patch);
    router_add(HTTP_PUT, "/api/v1/conversations/:id/me", h_me_put);
    router_add(HTTP_DELETE, "/api/v1/conversations/:id/me", h_me_delete);
    router_add(HTTP_GET, "/api/v1/conversations/:id/members", h_members);
    router_add(HTTP_POST, "/api/v1/conversations/:id/members", h_members_add);
    router_add(HTTP_PATCH, "/api/v1/conversations/:id/members/:user_id", h_member_patch);
    router_add(HTTP_DELETE, "/api/v1/conversations/:id/members/:user_id", h_member_delete);
    router_add(HTTP_GET, "/api/v1/conversations/:id/messages", h_history);
    router_add(HTTP_POST, "/api/v1/conversations/:id/messages", h_send);
    router_add(HTTP_POST, "/api/v1/conversations/:id/read", h_read);
    router_add(HTTP_POST, "/api/v1/conversations/:id/delivered", h_delivered);
    router_add(HTTP_PATCH, "/api/v1/messages/:id", h_edit);
    router_add(HTTP_DELETE, "/api/v1/messages/:id", h_delete);
    router_add(HTTP_POST, "/api/v1/messages/:id/reactions", h_react);
    router_add(HTTP_DELETE, "/api/v1/messages/:id/reactions/:emoji", h_unreact);
}
