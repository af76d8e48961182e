/* sync_rest.c — GET /api/v1/sync (the REST edge of sync/, docs/sync.md):
 * a page of the caller's events after a cursor, from this node's window of
 * recent events (sync_window.h) or from Postgres (sync_fetch), or the
 * bootstrap snapshot when no cursor is given. */
#include "sync/sync.h"

#include <jansson.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/metrics.h"
#include "base/sb_buf.h"
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/util.h"
#include "base/verr.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "sync/sync_window.h"
#include "sync/tailer.h"
#include "sync/sync_view.h"
#include "base/strbuf.h"

/* ------------------------------------------------------------------------ */
/* GET /api/v1/sync                                                          */
/* ------------------------------------------------------------------------ */

/* Appends the JSON text of one event: {"type":..., payload fields,
 * "cursor":...}; cur: its CURSOR_LEN characters. Returns 0 or -1. */
static int add_event(strbuf *b, const sync_event *e, const char *cur)
{
    /* event names are plain ("message:new"): copied as they are; anything
     * else goes through the JSON encoder */
    bool plain = true;
    for (const char *c = e->type; *c && plain; c++)
        plain = (*c >= 'a' && *c <= 'z') || *c == ':' || *c == '_' || *c == '.' || *c == '-';
    int rc;
    if (plain) {
        rc = strbuf_add(b, "{\"type\":\"", 9, 0);
        if (rc == 0) rc = strbuf_add(b, e->type, strlen(e->type), 0);
        if (rc == 0) rc = strbuf_add(b, "\",", 2, 0);
    } else {
        json_t *t = json_string(e->type);
        char *ts = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
        json_decref(t);
        if (!ts) return -1;
        rc = strbuf_addf(b, "{\"type\":%s,", ts);
        free(ts);
    }
    if (rc != 0) return -1;
    if (strbuf_add(b, e->prefix + 1, e->prefix_len - 1, 0) != 0) return -1;
    if (strbuf_add(b, cur, CURSOR_LEN, 0) != 0) return -1;
    return strbuf_add(b, "\"}", 2, 0);
}

/* Answers a page read from Postgres (sync_fetch): the cursors of the page
 * (each event's, then the next) in one cursor_encode_many. */
static void page_answer(const sync_page *pg, const char *err, void *arg)
{
    sb_req *req = arg;
    if (!pg) {
        if (strcmp(err, "unavailable") == 0) rest_unavailable(req);
        else {
            log_msg(LOG_ERROR, "sync_query_failed", "error", json_string(err), NULL);
            http_respond_error(req, 500, "internal", "sync failed", NULL);
        }
        return;
    }
    if (pg->expired) {
        http_respond_error(req, 410, "cursor_expired",
                         "events after this cursor were pruned: bootstrap again", NULL);
        return;
    }
    const char *uid = req->auth.user_id;
    size_t n = (size_t)pg->n + 1;
    sync_pos *pos = malloc(n * sizeof *pos);
    char *cur = malloc(n * CURSOR_LEN);
    int rc = pos && cur ? 0 : -1;
    for (int i = 0; rc == 0 && i < pg->n; i++) pos[i] = pg->ev[i].pos;
    if (rc == 0) {
        pos[pg->n] = pg->next;
        rc = cursor_encode_many((const uint8_t *)g_config.secret, g_config.secret_len, uid, pos, n,
                                util_now_unix_ms() / 1000, cur);
    }
    strbuf b = {0};
    size_t want = 128; /* the whole body in one allocation */
    for (int i = 0; i < pg->n; i++) want += pg->ev[i].prefix_len + strlen(pg->ev[i].type) + CURSOR_LEN + 16;
    if (rc == 0 && (b.p = malloc(want))) b.cap = want;
    if (rc == 0) rc = strbuf_add(&b, "{\"events\":[", 11, 0);
    for (int i = 0; rc == 0 && i < pg->n; i++) {
        if (i) rc = strbuf_add(&b, ",", 1, 0);
        if (rc == 0) rc = add_event(&b, &pg->ev[i], cur + (size_t)i * CURSOR_LEN);
    }
    if (rc == 0) rc = strbuf_add(&b, "],\"cursor\":\"", 12, 0);
    if (rc == 0) rc = strbuf_add(&b, cur + (size_t)pg->n * CURSOR_LEN, CURSOR_LEN, 0);
    if (rc == 0) rc = strbuf_addf(&b, "\",\"has_more\":%s}", pg->has_more ? "true" : "false");
    free(pos);
    free(cur);
    if (rc != 0) {
        strbuf_free(&b);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    size_t vl = 0;
    char *view = sync_view_page(b.p, b.len, req->auth.session_id, &vl); /* this device's view */
    if (view) http_respond(req, 200, "application/json", view, vl, NULL);
    else http_respond(req, 200, "application/json", b.p, b.len, NULL);
    free(view);
    strbuf_free(&b);
}

static void bootstrap(sb_req *req, int limit);

/* A page request going through the window of events (sync_window.h). */
typedef struct window_req {
    sb_req *req;
    sync_pos from;
    int limit;
    uint64_t ticket; /* the fetch that must reach the horizon for a last page */
    int tries;
    struct sb_buf *buf; /* the response being encoded (window_body) */
    const char *body;   /* its text */
} window_req;

static void window_try(window_req *w);

/* The tailer caught up with w's ticket (or w must read Postgres). */
static void window_woke(void *arg, bool fallback)
{
    window_req *w = arg;
    if (!fallback) {
        window_try(w);
        return;
    }
    sync_fetch(db_of(w->req->r), w->req->auth.user_id, w->from, w->limit, page_answer, w->req);
    free(w);
}

/* The response buffer of a window page (sync_body_fns). */
static char *window_body(size_t len, void *arg)
{
    window_req *w = arg;
    char *body = NULL;
    w->buf = http_respond_body_new(len, &body);
    w->body = body;
    return body;
}

/* The cursors of a window page (sync_body_fns): one AES key per page. */
static int window_cursors(const sync_pos *pos, size_t n, char *out, void *arg)
{
    window_req *w = arg;
    return cursor_encode_many((const uint8_t *)g_config.secret, g_config.secret_len, w->req->auth.user_id,
                              pos, n, util_now_unix_ms() / 1000, out);
}

/* Answers w from this node's window of recent events when its cursor is
 * inside it; a last page ("nothing more") only once a tailer fetch sent
 * after the request reached the horizon, so it is as fresh as a Postgres
 * read (waits at most SYNC_WINDOW_WAIT_MS). Otherwise reads Postgres. The
 * page is encoded straight into the response buffer (one copy of each
 * event's text, one write). */
static void window_try(window_req *w)
{
    sb_req *req = w->req;
    sync_wpage pg;
    sync_body_fns fns = {window_cursors, window_body, w};
    int rc = sync_window_read(id_parse(req->auth.user_id), w->from, w->limit, &w->ticket,
                              &fns, &pg);
    if (rc == SW_HIT) {
        size_t vl = 0;
        char *view = sync_view_page(w->body, pg.len, req->auth.session_id, &vl); /* this device's view */
        if (view) {
            sb_buf_unref(w->buf);
            http_respond(req, 200, "application/json", view, vl, NULL);
            free(view);
        } else {
            http_respond_body(req, 200, "application/json", w->buf, pg.len);
        }
        free(w);
        return;
    }
    sb_buf_unref(w->buf); /* a miss after the buffer was made */
    w->buf = NULL;
    if (rc == SW_WAIT && w->tries++ < 2) {
        int k = sync_window_wait(w->ticket, req->r, window_woke, w);
        if (k == 0) {
            tailer_kick(); /* the fetch it waits for, now */
            return;
        }
        if (k == 1) {
            window_try(w); /* satisfied meanwhile */
            return;
        }
    }
    sync_fetch(db_of(req->r), req->auth.user_id, w->from, w->limit, page_answer, req);
    free(w);
}

/* GET /api/v1/sync?cursor=&limit= */
static metrics_id m_sync;
__attribute__((constructor)) static void sync_rest_metrics(void)
{
    m_sync = metrics_counter("sb_sync_requests_total", "Catch-up requests: GET /sync (rest) and user: channel joins, which catch up (join).",
                             "via=\"rest\"");
}

static void sync_get(sb_req *req)
{
    metrics_inc(m_sync);
    if (!rest_auth(req)) return;
    const char *uid = req->auth.user_id;
    if (id_parse(uid) == 0) {
        http_respond_error(req, 400, "bad_request", "this user has no event stream", NULL);
        return;
    }
    int limit = SYNC_LIMIT_DEFAULT;
    char *ls = http_req_query(req, "limit", true);
    if (ls) {
        char *end = NULL;
        long v = strtol(ls, &end, 10);
        bool ok = *ls && end && !*end && v >= 1 && v <= SYNC_LIMIT_MAX;
        free(ls);
        if (!ok) {
            verr v2 = {0};
            verr_add(&v2, "limit", "must be an integer from 1 to 1000");
            rest_verr_respond(req, &v2);
            return;
        }
        limit = (int)v;
    }
    char *cs = http_req_query(req, "cursor", true);
    if (!cs && http_req_query_count(req, "cursor") > 0) { /* present but not decodable */
        http_respond_error(req, 400, "bad_request", "invalid cursor",
                         json_pack("{s:s}", "cursor", "not a cursor this server issued to you"));
        return;
    }
    if (!cs || !*cs) {
        free(cs);
        bootstrap(req, limit);
        return;
    }
    sync_pos pos;
    int rc = sync_cursor_check(uid, cs, strlen(cs), &pos);
    free(cs);
    if (rc == SYNC_CUR_BAD) {
        http_respond_error(req, 400, "bad_request", "invalid cursor",
                         json_pack("{s:s}", "cursor", "not a cursor this server issued to you"));
        return;
    }
    if (rc == SYNC_CUR_EXPIRED) {
        http_respond_error(req, 410, "cursor_expired",
                         "this cursor is older than the retention window: bootstrap again", NULL);
        return;
    }
    window_req *w = malloc(sizeof *w);
    if (!w) {
        sync_fetch(db_of(req->r), uid, pos, limit, page_answer, req);
        return;
    }
    *w = (window_req){req, pos, limit, 0, 0, NULL, NULL};
    window_try(w);
}

/* ------------------------------------------------------------------------ */
/* Bootstrap                                                                 */
/* ------------------------------------------------------------------------ */

/* The bootstrap snapshot of user $1, read in one statement (one snapshot):
 * the horizon; whether more than $2 conversations exist; the user's
 * conversations (most recent activity first, at most $2, hidden direct chats
 * left out) as GET /conversations shows them; and each one's latest
 * SYNC_BOOTSTRAP_MESSAGES messages, oldest first, up to about
 * SYNC_BOOTSTRAP_BYTES in all (truncated says something was left out: more
 * conversations, or messages past the size; history has the rest). Only what the stable order
 * already holds is included: conversations whose membership period began
 * below the horizon, messages whose message:new event is below it, so that
 * the events after the returned cursor are exactly what the snapshot lacks. */
static const char SQL_BOOTSTRAP[] =
    "WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),"
    " c AS MATERIALIZED ("
    "  SELECT mb.conversation_id AS id, mb.from_seq, cv.last_activity_at"
    "  FROM members mb JOIN conversations cv ON cv.id = mb.conversation_id CROSS JOIN h"
    "  WHERE mb.user_id = $1::int8 AND NOT mb.hidden"
    "   AND EXISTS (SELECT 1 FROM events e WHERE e.stream = mb.conversation_id"
    "               AND e.seq = mb.from_seq AND e.tx < h.x)"
    "  ORDER BY cv.last_activity_at DESC, cv.id DESC LIMIT $2::int + 1),"
    " cl AS (SELECT * FROM c ORDER BY last_activity_at DESC, id DESC LIMIT $2::int),"
    /* each conversation's latest messages, with a running size (newest
     * conversations and messages first) to stop at SYNC_BOOTSTRAP_BYTES */
    " mm AS MATERIALIZED (SELECT cl.id AS cid, cl.last_activity_at, lm.r, lm.seq,"
    "   sum(lm.sz) OVER (ORDER BY cl.last_activity_at DESC, cl.id DESC, lm.seq DESC) - lm.sz AS before"
    "   FROM cl CROSS JOIN h CROSS JOIN LATERAL ("
    "     SELECT msg AS r, msg.seq, 256 + octet_length(COALESCE(msg.body, ''))"
    "            + octet_length(COALESCE(msg.location::text, ''))"
    "            + octet_length(COALESCE(msg.contact::text, '')) AS sz"
    "     FROM messages msg"
    "     JOIN events e ON e.stream = msg.conversation_id AND e.seq = msg.event_seq"
    "     WHERE msg.conversation_id = cl.id AND msg.event_seq >= cl.from_seq AND e.tx < h.x"
    "      AND NOT EXISTS (SELECT 1 FROM message_hidden hd"
    "                      WHERE hd.user_id = $1::int8 AND hd.message_id = msg.id)"
    "     ORDER BY msg.seq DESC LIMIT " SYNC_BOOTSTRAP_MESSAGES_S ") lm) "
    "SELECT h.x::text,"
    " (SELECT count(*) FROM c) > $2::int"
    "  OR EXISTS (SELECT 1 FROM mm WHERE mm.before >= " SYNC_BOOTSTRAP_BYTES_S "),"
    " COALESCE((SELECT jsonb_agg(sb_conversation_view(cl.id, $1::int8)"
    "   ORDER BY cl.last_activity_at DESC, cl.id DESC) FROM cl), '[]')::text,"
    " COALESCE((SELECT jsonb_agg(sb_message_json(mm.r) ORDER BY mm.last_activity_at DESC, mm.cid DESC, mm.seq)"
    "   FROM mm WHERE mm.before < " SYNC_BOOTSTRAP_BYTES_S "), '[]')::text "
    "FROM h";

static void bootstrap_read(const PGresult *res, const char *err, void *arg)
{
    sb_req *req = arg;
    if (err || !res) {
        rest_db_error(req, res, err);
        return;
    }
    uint64_t h = 0;
    if (PQntuples(res) != 1 || cursor_parse_u64(PQgetvalue(res, 0, 0), &h) != 0) {
        http_respond_error(req, 500, "internal", "bad horizon", NULL);
        return;
    }
    char cur[CURSOR_LEN + 1];
    cursor_encode((const uint8_t *)g_config.secret, g_config.secret_len, req->auth.user_id,
                  (sync_pos){h, 0}, util_now_unix_ms() / 1000, cur);
    bool truncated = PQgetvalue(res, 0, 1)[0] == 't';
    /* the JSON arrays come from Postgres already encoded: spliced, not parsed */
    strbuf b = {0};
    int rc = strbuf_addf(&b, "{\"bootstrap\":{\"conversations\":");
    if (rc == 0) rc = strbuf_add(&b, PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2), 0);
    if (rc == 0) rc = strbuf_addf(&b, ",\"messages\":");
    if (rc == 0) rc = strbuf_add(&b, PQgetvalue(res, 0, 3), (size_t)PQgetlength(res, 0, 3), 0);
    if (rc == 0)
        rc = strbuf_addf(&b, ",\"truncated\":%s},\"events\":[],\"cursor\":\"%s\",\"has_more\":false}",
                         truncated ? "true" : "false", cur);
    if (rc != 0) {
        strbuf_free(&b);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    http_respond(req, 200, "application/json", b.p, b.len, NULL);
    strbuf_free(&b);
}

/* Answers the bootstrap snapshot with at most `limit` conversations. */
static void bootstrap(sb_req *req, int limit)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[2] = {req->auth.user_id, lim};
    db_query(db_of(req->r), SQL_BOOTSTRAP, 2, p, bootstrap_read, req);
}

void sync_routes(void) { router_add(HTTP_GET, "/api/v1/sync", sync_get); }
