/* report.c — the reports core (reports.h): creation with the message
 * snapshot (sb_report_create, migrations/083_report_fns.sql), the admin's
 * list and resolution. Knows neither HTTP nor Phoenix. */
#include "moderation/reports.h"
#include "moderation/report_create.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/id.h"
#include "base/page.h"
#include "store/db.h"

#define NOTE_MAX 2000

/* Characters of UTF-8 text s (bytes that do not continue a sequence). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

typedef struct rctx {
    report_done_fn done;
    void *arg;
    int limit;
} rctx;

static rctx *rctx_new(report_done_fn done, void *arg)
{
    rctx *c = calloc(1, sizeof *c);
    if (!c) done(arg, NULL, "unavailable", "out of memory");
    else {
        c->done = done;
        c->arg = arg;
    }
    return c;
}

/* Answers the db failure of c and frees it. */
static void fail_db(rctx *c, const char *err)
{
    c->done(c->arg, NULL, "unavailable",
            err && strcmp(err, "unavailable") ? "database error" : "the database is unavailable");
    free(c);
}

/* One jsonb text column: {"report"} or {"error","message","details"}. */
static void one_done(const PGresult *res, const char *err, void *arg)
{
    rctx *c = arg;
    if (!res || err || PQntuples(res) != 1) {
        fail_db(c, err);
        return;
    }
    json_t *o = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *e = json_object_get(o, "error");
    if (!o) c->done(c->arg, NULL, "unavailable", "bad database answer");
    else if (json_is_string(e)) {
        const char *m = json_string_value(json_object_get(o, "message"));
        c->done(c->arg, NULL, json_string_value(e), m ? m : json_string_value(e));
        json_decref(o);
    } else c->done(c->arg, o, NULL, NULL);
    free(c);
}

/* Makes report of reporter (see report_create.h). */
void report_create(struct db_pool *db, const char *reporter, const char *message_id,
                   const char *user_id, const char *reason, const char *note,
                   report_done_fn done, void *arg)
{
    rctx *c = rctx_new(done, arg);
    if (!c) return;
    const char *p[5] = {reporter, message_id, user_id, reason, note};
    db_query(db,
             "SELECT sb_report_create($1::int8, $2::int8, $3::int8, $4, $5)::text", 5, p,
             one_done, c);
}

static void list_done(const PGresult *res, const char *err, void *arg)
{
    rctx *c = arg;
    if (!res || err) {
        fail_db(c, err);
        return;
    }
    int n = PQntuples(res);
    json_t *items = json_array();
    char next[32] = "";
    for (int i = 0; i < n && i < c->limit; i++) {
        json_t *r = json_loads(PQgetvalue(res, i, 1), 0, NULL);
        if (r) json_array_append_new(items, r);
    }
    if (n > c->limit) snprintf(next, sizeof next, "r:%s", PQgetvalue(res, c->limit - 1, 0));
    c->done(c->arg, page_body(items, next[0] ? next : NULL), NULL, NULL);
    free(c);
}

/* GET /admin/reports (reports.h). */
void report_list(struct db_pool *db, const char *state, const char *cursor, int limit,
                 report_done_fn done, void *arg)
{
    if (state && strcmp(state, "open") && strcmp(state, "actioned") && strcmp(state, "dismissed")) {
        done(arg, NULL, "validation_failed", "state must be open, actioned or dismissed");
        return;
    }
    if (limit < 0 || limit > REPORT_LIMIT_MAX) {
        done(arg, NULL, "validation_failed", "limit must be 1 to 200");
        return;
    }
    char after[24] = "";
    if (cursor) {
        char *t = page_cursor_decode(cursor);
        bool ok = t && !strncmp(t, "r:", 2) && id_parse(t + 2) && strlen(t + 2) <= 20;
        if (ok) snprintf(after, sizeof after, "%s", t + 2);
        free(t);
        if (!ok) {
            done(arg, NULL, "validation_failed", "cursor is not a valid cursor");
            return;
        }
    }
    rctx *c = rctx_new(done, arg);
    if (!c) return;
    c->limit = limit ? limit : REPORT_LIMIT_DEFAULT;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", c->limit + 1);
    const char *p[3] = {state, after[0] ? after : NULL, lim};
    db_query(db,
             "SELECT r.id::text, sb_report_json(r)::text FROM reports r"
             " WHERE ($1::text IS NULL OR r.state = $1) AND ($2::int8 IS NULL OR r.id > $2::int8)"
             " ORDER BY r.id LIMIT $3::int",
             3, p, list_done, c);
}

static void resolve_done(const PGresult *res, const char *err, void *arg)
{
    rctx *c = arg;
    if (!res || err || PQntuples(res) != 1) {
        fail_db(c, err);
        return;
    }
    if (!PQgetisnull(res, 0, 0)) {
        json_t *r = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        if (r) c->done(c->arg, json_pack("{s:o}", "report", r), NULL, NULL);
        else c->done(c->arg, NULL, "unavailable", "bad database answer");
    } else if (PQgetvalue(res, 0, 1)[0] == 't') {
        c->done(c->arg, NULL, "conflict", "the report is no longer open");
    } else {
        c->done(c->arg, NULL, "not_found", "no such report");
    }
    free(c);
}

/* POST /admin/reports/:id (reports.h). */
void report_resolve(struct db_pool *db, const char *id, const char *state, const char *note,
                    const char *admin, report_done_fn done, void *arg)
{
    if (!id || !id_parse(id) || strlen(id) > 20) {
        done(arg, NULL, "not_found", "no such report");
        return;
    }
    if (!state || (strcmp(state, "actioned") && strcmp(state, "dismissed"))) {
        done(arg, NULL, "validation_failed", "state must be actioned or dismissed");
        return;
    }
    if (note && utf8_chars(note) > NOTE_MAX) {
        done(arg, NULL, "validation_failed", "note is longer than 2000 characters");
        return;
    }
    rctx *c = rctx_new(done, arg);
    if (!c) return;
    const char *p[4] = {id, state, note, admin ? admin : "admin"};
    db_query(db,
             "WITH u AS (UPDATE reports SET state = $2, resolution_note = $3, resolved_by = $4,"
             "                              resolved_at = now()"
             "           WHERE id = $1::int8 AND state = 'open' RETURNING *)"
             " SELECT (SELECT sb_report_json(u)::text FROM u),"
             "        EXISTS (SELECT 1 FROM reports WHERE id = $1::int8)",
             4, p, resolve_done, c);
}
