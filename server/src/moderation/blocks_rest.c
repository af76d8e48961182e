/* blocks_rest.c — the REST edge of blocks (api.md "Safety"):
 *   GET /api/v1/blocks?cursor=&limit=  the users the caller blocks
 *   POST /api/v1/blocks {user_id}      block a user (201; 200 if already)
 *   DELETE /api/v1/blocks/:user_id     unblock (204; 404 if not blocked)
 * A block is one row of `blocks` (migrations/080_moderation.sql); chat,
 * calls and presence check it in their own statements (081), so it holds
 * on every node as soon as the row commits. Here, in addition:
 *   - a block tells the blocked user's sockets at once that the blocker is
 *     offline, closes their conversation:<direct> channels, and ends a call
 *     under way between the two (the blocker's hangup: `declined` while the
 *     blocker's phone rings, else `hangup`) before answering;
 *   - an unblock tells each of the two the other's state as the cluster
 *     knows it (online on any node, else the stored last seen; still hidden
 *     where the other also blocks them), so an open chat screen updates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "moderation/moderation.h"
#include "base/id.h"
#include "base/page.h"
#include "base/util.h"
#include "base/log.h"
#include "base/verr.h"
#include "bus/pubsub.h"
#include "calls/call_store.h"
#include "chat/chat.h"
#include "http/http.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "presence/presence.h"
#include "store/db.h"
#include "store/pgval.h"

/* The users the caller blocks, by blocked id, limit+1 rows. */
static const char SQL_LIST[] =
    "SELECT b.blocked_id::text, u.username, u.display_name, u.avatar_media_id, sb_ts(b.created_at)"
    " FROM blocks b JOIN users u ON u.id = b.blocked_id"
    " WHERE b.blocker_id = $1::int8 AND ($2::int8 IS NULL OR b.blocked_id > $2::int8)"
    " ORDER BY b.blocked_id LIMIT $3::int";

/* Inserts the block; answers (user row, created, the two users' direct
 * conversation or NULL, their live direct call or NULL: at most one,
 * calls_pair_live_idx). No row: no such user. */
static const char SQL_BLOCK[] =
    "WITH t AS (SELECT id FROM users WHERE id = $2::int8 AND deleted_at IS NULL),"
    " ins AS (INSERT INTO blocks (blocker_id, blocked_id) SELECT $1::int8, id FROM t"
    "         ON CONFLICT DO NOTHING RETURNING created_at)"
    " SELECT u.id::text, u.username, u.display_name, u.avatar_media_id,"
    "        sb_ts(COALESCE((SELECT created_at FROM ins), b.created_at)),"
    "        EXISTS (SELECT 1 FROM ins),"
    "        (SELECT c.id::text FROM conversations c WHERE c.kind = 'direct'"
    "           AND c.direct_key = LEAST($1::int8, t.id)::text || ':' || GREATEST($1::int8, t.id)::text),"
    "        (SELECT k.id::text FROM calls k"
    "           WHERE k.pair_key = LEAST($1::int8, t.id)::text || ':' || GREATEST($1::int8, t.id)::text)"
    " FROM t JOIN users u ON u.id = t.id"
    " LEFT JOIN blocks b ON b.blocker_id = $1::int8 AND b.blocked_id = t.id";

/* Deletes the block; answers (blocker's stored last seen, blocked user's,
 * whether the blocked user's state stays hidden from the blocker: deleted,
 * or blocking them too). No row: there was no block. */
static const char SQL_UNBLOCK[] =
    "WITH d AS (DELETE FROM blocks WHERE blocker_id = $1::int8 AND blocked_id = $2::int8"
    "           RETURNING blocker_id, blocked_id)"
    " SELECT sb_ts(ua.last_seen_at), sb_ts(ub.last_seen_at),"
    "        ub.deleted_at IS NOT NULL OR sb_presence_hidden(ub.id, ua.id)"
    " FROM d JOIN users ua ON ua.id = d.blocker_id JOIN users ub ON ub.id = d.blocked_id";

/* {"user": {id, username, display_name, avatar_media_id}, "created_at"} of
 * the SQL_LIST / SQL_BLOCK columns 0..4 at row. */
static json_t *block_json(const PGresult *res, int row)
{
    return json_pack("{s:{s:o,s:o,s:o,s:o},s:o}", "user", "id", pgval_str(res, row, 0), "username",
                     pgval_str(res, row, 1), "display_name", pgval_str(res, row, 2),
                     "avatar_media_id", pgval_str(res, row, 3), "created_at",
                     pgval_str(res, row, 4));
}

/* Tells user:<to> (every node, through the bus) the presence of `who`:
 * offline with no last seen when hidden, else the state the cluster knows
 * (presence_user_online: a user: channel on this node or, through the
 * nodes' uon/uoff/usync, on another; last seen now), or offline with the
 * stored last seen `stored` (sb_ts text or NULL) when online nowhere. */
static void presence_push(const char *to, const char *who, bool hidden, const char *stored)
{
    char topic[40];
    snprintf(topic, sizeof topic, "user:%s", to);
    bool online = false;
    json_t *seen = json_null();
    if (!hidden) {
        int64_t ms = -1;
        online = presence_user_online(who, &ms);
        if (online && ms >= 0) {
            char ts[40];
            util_format_rfc3339_ms(ms, ts, sizeof ts);
            json_decref(seen);
            seen = json_string(ts);
        } else if (!online && stored) {
            json_decref(seen);
            seen = json_string(stored);
        }
    }
    json_t *p = json_pack("{s:s,s:b,s:o}", "user_id", who, "online", online, "last_seen_at", seen);
    pubsub_broadcast(topic, "presence", p, NULL);
    json_decref(p);
}

/* ------------------------------------------------------------------------ */

typedef struct bctx {
    sb_req *req;
    int limit;
    char other[24];
    json_t *answer; /* the block's answer, sent once its call has ended */
    int status;
} bctx;

static void list_done(const PGresult *res, const char *err, void *arg)
{
    bctx *c = arg;
    if (!res || err) {
        rest_db_error(c->req, res, err);
        free(c);
        return;
    }
    int n = PQntuples(res);
    json_t *items = json_array();
    char next[32] = "";
    for (int i = 0; i < n && i < c->limit; i++) json_array_append_new(items, block_json(res, i));
    if (n > c->limit) snprintf(next, sizeof next, "b:%s", PQgetvalue(res, c->limit - 1, 0));
    http_respond_json(c->req, 200, page_body(items, next[0] ? next : NULL));
    free(c);
}

/* GET /blocks?cursor=&limit= */
static void h_list(sb_req *req)
{
    if (!rest_auth(req)) return;
    verr v = {0};
    rest_page pg;
    rest_page_parse(req, &pg, &v);
    const char *after = NULL;
    if (pg.cursor) {
        if (strncmp(pg.cursor, "b:", 2) || !id_parse(pg.cursor + 2) || strlen(pg.cursor + 2) > 20)
            verr_add(&v, "cursor", "is not a valid cursor");
        else after = pg.cursor + 2;
    }
    if (verr_any(&v)) {
        rest_page_free(&pg);
        rest_verr_respond(req, &v);
        return;
    }
    bctx *c = calloc(1, sizeof *c);
    if (!c) {
        rest_page_free(&pg);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    c->req = req;
    c->limit = pg.limit;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", pg.limit + 1);
    const char *p[3] = {req->auth.user_id, after, lim};
    db_query(req->r ? db_of(req->r) : NULL, SQL_LIST, 3, p, list_done, c);
    rest_page_free(&pg);
}

/* The call ended by a block (or it had ended meanwhile: conflict): the
 * block's answer goes out either way; a failure is logged (the call then
 * ends by its timers). */
static void call_ended(void *arg, json_t *body, const char *code, const char *message, int created)
{
    (void)created;
    bctx *c = arg;
    if (body) json_decref(body);
    else if (code && strcmp(code, "conflict") != 0 && strcmp(code, "not_found") != 0)
        log_msg(LOG_WARN, "block: ending the call failed", "code", json_string(code), "message",
                json_string(message ? message : ""), NULL);
    http_respond_json(c->req, c->status, c->answer);
    free(c);
}

static void block_done(const PGresult *res, const char *err, void *arg)
{
    bctx *c = arg;
    if (!res || err) {
        rest_db_error(c->req, res, err);
        free(c);
        return;
    }
    if (PQntuples(res) != 1) {
        http_respond_error(c->req, 404, "not_found", "no such user", NULL);
        free(c);
        return;
    }
    bool created = PQgetvalue(res, 0, 5)[0] == 't';
    if (created) presence_push(c->other, c->req->auth.user_id, true, NULL);
    if (created && !PQgetisnull(res, 0, 6)) {
        /* the blocked user's conversation:<direct> channels, joined before
         * the block, close on every node (a new join is refused) */
        char topic[64];
        snprintf(topic, sizeof topic, "conversation:%s", PQgetvalue(res, 0, 6));
        json_t *k = json_pack("{s:s}", "user_id", c->other);
        pubsub_broadcast(topic, CHAT_KICK_EVENT, k, NULL);
        json_decref(k);
    }
    json_t *answer = json_pack("{s:o}", "block", block_json(res, 0));
    if (!PQgetisnull(res, 0, 7) && c->req->r && db_of(c->req->r)) {
        /* a call under way between the two ends now, as the blocker's
         * hangup (call_fsm: `declined` while the blocker is a pending
         * callee, else `hangup`); the block answers once it has ended */
        c->answer = answer;
        c->status = created ? 201 : 200;
        call_store_event(db_of(c->req->r), PQgetvalue(res, 0, 7), c->req->auth.user_id, NULL,
                         CALL_EV_HANGUP, NULL, call_ended, c);
        return;
    }
    http_respond_json(c->req, created ? 201 : 200, answer);
    free(c);
}

/* POST /blocks {user_id} */
static void h_block(sb_req *req)
{
    if (!rest_auth(req)) return;
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *uid = NULL;
    if (verr_get_string(b, "user_id", VERR_REQUIRED, 1, 20, &v, &uid) == 1) {
        if (!id_parse(uid)) verr_add(&v, "user_id", "is not a user id");
        else if (!strcmp(uid, req->auth.user_id)) verr_add(&v, "user_id", "is yourself");
    }
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    bctx *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(b);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    c->req = req;
    snprintf(c->other, sizeof c->other, "%s", uid);
    json_decref(b);
    const char *p[2] = {req->auth.user_id, c->other};
    db_query(req->r ? db_of(req->r) : NULL, SQL_BLOCK, 2, p, block_done, c);
}

static void unblock_done(const PGresult *res, const char *err, void *arg)
{
    bctx *c = arg;
    if (!res || err) {
        rest_db_error(c->req, res, err);
    } else if (PQntuples(res) == 0) {
        http_respond_error(c->req, 404, "not_found", "you do not block this user", NULL);
    } else {
        /* what the block hid from the unblocked user comes back; the
         * blocker is told the unblocked user's state too (hidden still if
         * that user blocks the blocker), whichever node each is on */
        const char *me = c->req->auth.user_id;
        presence_push(c->other, me, false, PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0));
        presence_push(me, c->other, PQgetvalue(res, 0, 2)[0] == 't',
                      PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1));
        http_respond(c->req, 204, NULL, NULL, 0, NULL);
    }
    free(c);
}

/* DELETE /blocks/:user_id */
static void h_unblock(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (req->nparams < 1 || !id_parse(req->params[0]) || strlen(req->params[0]) > 20) {
        http_respond_error(req, 404, "not_found", "you do not block this user", NULL);
        return;
    }
    bctx *c = calloc(1, sizeof *c);
    if (!c) {
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    c->req = req;
    snprintf(c->other, sizeof c->other, "%s", req->params[0]);
    const char *p[2] = {req->auth.user_id, c->other};
    db_query(req->r ? db_of(req->r) : NULL, SQL_UNBLOCK, 2, p, unblock_done, c);
}

/* Registers the block routes. */
void blocks_rest_routes(void)
{
    router_add(HTTP_GET, "/api/v1/blocks", h_list);
    router_add(HTTP_POST, "/api/v1/blocks", h_block);
    router_add(HTTP_DELETE, "/api/v1/blocks/:user_id", h_unblock);
}
