/* export_rest.c — GET /api/v1/conversations/:id/export (api.md "Messages",
 * docs/export.md): the whole history the caller may see as one JSON
 * document, {"conversation", "members", "exported_at", "exported_by",
 * "messages": [Message...]} (oldest first, with reactions and media
 * references), as an attachment, streamed.
 *
 * Memory and database use stay constant whatever the history's length:
 * the messages are read by keyset pages (seq > last, SB_EXPORT_PAGE rows,
 * migrations/052_export.sql), each one short statement on the reactor's
 * pool (no connection or transaction is held between pages), each page
 * written as one chunk, and the next page is read only once the client has
 * taken all but EXPORT_LOW bytes of what is queued (back-pressure from the
 * socket). A client that goes away ends the export at its next step; one
 * that takes nothing for SB_HTTP_IDLE_MS is closed. A database failure
 * after the head was sent closes the connection (the client sees a
 * truncated body, never a complete-looking document). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "export/export.h"
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/util.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"

#define EXPORT_LOW (64 * 1024) /* read the next page when the queue is below this */

typedef struct export_job {
    sb_req *req;
    db_pool *db;
    char user[72], conv[24];
    long long after; /* last seq written */
    int limit;       /* rows per page */
    bool any;        /* a message was written (the next needs a comma) */
} export_job;

static void job_free(export_job *e) { free(e); }

static void next_page(export_job *e);

static void on_drained(sb_req *req, void *arg)
{
    export_job *e = arg;
    if (!req->conn) { /* the client went away */
        http_stream_abort(req);
        job_free(e);
        return;
    }
    next_page(e);
}

static void page_done(const PGresult *res, const char *err, void *arg)
{
    export_job *e = arg;
    sb_req *req = e->req;
    if (!req->conn || !res || err) {
        if (req->conn)
            log_msg(LOG_WARN, "export aborted", "error", json_string(err ? err : "unavailable"),
                    "conversation", json_string(e->conv), NULL);
        http_stream_abort(req);
        job_free(e);
        return;
    }
    int n = PQntuples(res);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)PQgetlength(res, i, 1) + 1;
    char *chunk = malloc(total + 3);
    if (!chunk) {
        http_stream_abort(req);
        job_free(e);
        return;
    }
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (e->any) chunk[o++] = ',';
        e->any = true;
        size_t l = (size_t)PQgetlength(res, i, 1);
        memcpy(chunk + o, PQgetvalue(res, i, 1), l);
        o += l;
    }
    if (n > 0) e->after = strtoll(PQgetvalue(res, n - 1, 0), NULL, 10);
    bool last = n < e->limit;
    if (last) {
        memcpy(chunk + o, "]}", 2);
        o += 2;
    }
    int rc = o ? http_stream_write(req, chunk, o) : 0;
    free(chunk);
    if (rc != 0) {
        http_stream_abort(req);
        job_free(e);
    } else if (last) {
        http_stream_end(req);
        job_free(e);
    } else {
        http_stream_wait(req, EXPORT_LOW, on_drained, e);
    }
}

static void next_page(export_job *e)
{
    char after[24], lim[16];
    snprintf(after, sizeof after, "%lld", e->after);
    snprintf(lim, sizeof lim, "%d", e->limit);
    const char *p[4] = {e->user, e->conv, after, lim};
    db_query(e->db, "SELECT seq, message FROM sb_export_page($1::int8, $2::int8, $3::int8, $4::int)", 4,
             p, page_done, e);
}

static void head_done(const PGresult *res, const char *err, void *arg)
{
    export_job *e = arg;
    sb_req *req = e->req;
    if (!res || err) {
        job_free(e);
        rest_db_error(req, res, err);
        return;
    }
    const char *text = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL;
    json_t *h = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(h)) {
        json_decref(h);
        job_free(e);
        http_respond_error(req, 500, "internal", "bad result", NULL);
        return;
    }
    const char *code = json_string_value(json_object_get(h, "error"));
    if (code) {
        json_decref(h);
        job_free(e);
        http_respond_error(req, 404, "not_found", "no such conversation", NULL);
        return;
    }
    json_decref(h);
    /* the head object without its closing brace, then the messages array */
    size_t tl = strlen(text);
    char extra[160];
    snprintf(extra, sizeof extra,
             "content-disposition: attachment; filename=\"conversation-%s.json\"\r\n"
             "cache-control: no-store\r\n",
             e->conv);
    if (tl < 2 || text[tl - 1] != '}' ||
        http_stream_begin(req, 200, "application/json; charset=utf-8", extra) != 0 ||
        http_stream_write(req, text, tl - 1) != 0 || http_stream_write(req, ",\"messages\":[", 13) != 0) {
        http_stream_abort(req);
        job_free(e);
        return;
    }
    next_page(e);
}

/* GET /conversations/:id/export */
static void h_export(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (req->nparams < 1 || !id_parse(req->params[0]) || strlen(req->params[0]) > 20) {
        http_respond_error(req, 404, "not_found", "no such conversation", NULL);
        return;
    }
    if (!id_parse(req->auth.user_id)) {
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    db_pool *db = req->r ? db_of(req->r) : NULL;
    if (!db) {
        rest_unavailable(req);
        return;
    }
    export_job *e = calloc(1, sizeof *e);
    if (!e) {
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    e->req = req;
    e->db = db;
    snprintf(e->user, sizeof e->user, "%s", req->auth.user_id);
    snprintf(e->conv, sizeof e->conv, "%s", req->params[0]);
    size_t lim = g_config.export_page;
    e->limit = lim < 1 ? 1 : lim > 5000 ? 5000 : (int)lim;
    const char *p[2] = {e->user, e->conv};
    db_query(db, "SELECT sb_export_head($1::int8, $2::int8)::text", 2, p, head_done, e);
}

void export_routes(void) { router_add(HTTP_GET, "/api/v1/conversations/:id/export", h_export); }
