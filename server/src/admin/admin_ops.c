/* admin_ops.c — see admin_ops.h. */
#include "admin/admin_ops.h"

#include <stdlib.h>
#include <string.h>
#include "base/id.h"
#include "bus/bus_control.h"
#include "store/db.h"

typedef struct op {
    admin_ops_done_fn done;
    void *arg;
    char user_id[24];
} op;

static op *op_new(const char *user_id, admin_ops_done_fn done, void *arg)
{
    op *o = calloc(1, sizeof *o);
    if (!o) {
        done(arg, NULL, "internal", "out of memory");
        return NULL;
    }
    o->done = done;
    o->arg = arg;
    if (user_id) {
        if (strlen(user_id) >= sizeof o->user_id || !id_parse(user_id)) {
            done(arg, NULL, "not_found", "no such user");
            free(o);
            return NULL;
        }
        strcpy(o->user_id, user_id);
    }
    return o;
}

static void finish(op *o, json_t *body, const char *code, const char *message)
{
    admin_ops_done_fn done = o->done;
    void *arg = o->arg;
    free(o);
    done(arg, body, code, message);
}

/* true when the query failed (answered) */
static bool failed(op *o, const PGresult *res, const char *err)
{
    if (res && !err) return false;
    finish(o, NULL, !res || !strcmp(err, "unavailable") ? "unavailable" : "internal",
           !res ? "the database is unavailable" : "query failed");
    return true;
}

/* ---- ban ---- */

static const char SQL_BAN[] =
    "WITH u AS (UPDATE users SET banned_at = coalesce(banned_at, now()) WHERE id = $1::int8 RETURNING id),"
    " s AS (UPDATE sessions SET revoked_at = now(), revoke_reason = 'banned'"
    "  WHERE user_id IN (SELECT id FROM u) AND revoked_at IS NULL RETURNING id),"
    " d AS (DELETE FROM devices WHERE session_id IN (SELECT id FROM s))"
    "SELECT (SELECT count(*) FROM u), s.id::text FROM (SELECT 1) one LEFT JOIN s ON true";

static void ban_done(const PGresult *res, const char *err, void *arg)
{
    op *o = arg;
    if (failed(o, res, err)) return;
    int n = PQntuples(res);
    if (n == 0 || strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
        finish(o, NULL, "not_found", "no such user");
        return;
    }
    int revoked = 0;
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(res, i, 1)) continue;
        /* revoked first (tokens refused), then closed, on every node */
        bus_control_publish(&(bus_ctl){BUS_CTL_SESSION_REVOKED, PQgetvalue(res, i, 1), 1008});
        revoked++;
    }
    bus_control_publish(&(bus_ctl){BUS_CTL_USER_DISCONNECT, o->user_id, 1008});
    finish(o, json_pack("{s:s,s:b,s:i}", "user_id", o->user_id, "banned", 1, "sessions_revoked", revoked), NULL,
           NULL);
}

void admin_ops_ban(struct db_pool *db, const char *user_id, admin_ops_done_fn done, void *arg)
{
    op *o = op_new(user_id, done, arg);
    if (!o) return;
    const char *p[1] = {o->user_id};
    db_query(db, SQL_BAN, 1, p, ban_done, o);
}

/* ---- unban ---- */

static void unban_done(const PGresult *res, const char *err, void *arg)
{
    op *o = arg;
    if (failed(o, res, err)) return;
    if (PQntuples(res) != 1) {
        finish(o, NULL, "not_found", "no such user");
        return;
    }
    finish(o, json_pack("{s:s,s:b}", "user_id", o->user_id, "banned", 0), NULL, NULL);
}

void admin_ops_unban(struct db_pool *db, const char *user_id, admin_ops_done_fn done, void *arg)
{
    op *o = op_new(user_id, done, arg);
    if (!o) return;
    const char *p[1] = {o->user_id};
    db_query(db, "UPDATE users SET banned_at = NULL WHERE id = $1::int8 RETURNING id", 1, p, unban_done, o);
}

/* ---- disconnect ---- */

static void disconnect_done(const PGresult *res, const char *err, void *arg)
{
    op *o = arg;
    if (failed(o, res, err)) return;
    if (PQntuples(res) != 1) {
        finish(o, NULL, "not_found", "no such user");
        return;
    }
    bus_control_publish(&(bus_ctl){BUS_CTL_USER_DISCONNECT, o->user_id, 1008});
    finish(o, json_pack("{s:s,s:b}", "user_id", o->user_id, "disconnected", 1), NULL, NULL);
}

void admin_ops_disconnect(struct db_pool *db, const char *user_id, admin_ops_done_fn done, void *arg)
{
    op *o = op_new(user_id, done, arg);
    if (!o) return;
    const char *p[1] = {o->user_id};
    db_query(db, "SELECT 1 FROM users WHERE id = $1::int8", 1, p, disconnect_done, o);
}

/* ---- counts ---- */

static void counts_done(const PGresult *res, const char *err, void *arg)
{
    op *o = arg;
    if (failed(o, res, err)) return;
    finish(o,
           json_pack("{s:I,s:I,s:I}", "open_reports", (json_int_t)atoll(PQgetvalue(res, 0, 0)), "users",
                     (json_int_t)atoll(PQgetvalue(res, 0, 1)), "banned_users",
                     (json_int_t)atoll(PQgetvalue(res, 0, 2))),
           NULL, NULL);
}

void admin_ops_counts(struct db_pool *db, admin_ops_done_fn done, void *arg)
{
    op *o = op_new(NULL, done, arg);
    if (!o) return;
    db_query(db,
             "SELECT (SELECT count(*) FROM reports WHERE state = 'open'),"
             " (SELECT count(*) FROM users), (SELECT count(*) FROM users WHERE banned_at IS NOT NULL)",
             0, NULL, counts_done, o);
}
