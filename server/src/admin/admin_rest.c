/* admin_rest.c — the admin listener's edge (admin.h): bearer admin token on
 * every /admin/ endpoint and /metrics, the audit log of every action. */
#include "admin/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <llhttp.h>
#include "admin/admin_audit.h"
#include "admin/admin_auth.h"
#include "admin/admin_ops.h"
#include "base/config.h"
#include "base/metrics.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "base/verr.h"
#include "bus/bus.h"
#include "bus/bus_control.h"
#include "http/http.h"
#include "http/rest.h"
#include "http/router.h"
#include "http/static_files.h"
#include "moderation/reports.h"
#include "net/reactor.h"
#include "store/db.h"

#define BROADCAST_TITLE_MAX 200
#define BROADCAST_BODY_MAX 2000

static time_t g_started;

/* Answers 401 / 403 unless the request carries the admin token. */
static bool admin_auth(sb_req *req)
{
    switch (admin_auth_check(http_req_header(req, "authorization"), g_config.admin_token)) {
    case ADMIN_AUTH_OK:
        return true;
    case ADMIN_AUTH_MISSING:
        http_respond_error_h(req, 401, "unauthorized", "the admin token is required (Authorization: Bearer)",
                             NULL, "WWW-Authenticate: Bearer realm=\"admin\"\r\n");
        return false;
    case ADMIN_AUTH_DISABLED:
        http_respond_error(req, 403, "forbidden", "admin actions are disabled: SB_ADMIN_TOKEN is not set", NULL);
        return false;
    default:
        http_respond_error(req, 403, "forbidden", "not the admin token", NULL);
        return false;
    }
}

static int status_of(const char *code)
{
    if (!strcmp(code, "not_found")) return 404;
    if (!strcmp(code, "validation_failed")) return 422;
    if (!strcmp(code, "conflict")) return 409;
    if (!strcmp(code, "unavailable")) return 503;
    if (!strcmp(code, "forbidden")) return 403;
    return 500;
}

/* An action's answer: audit it, then respond. */
typedef struct act {
    sb_req *req;
    char what[24];
    char target[32];
    char ip[48];
} act;

static act *act_new(sb_req *req, const char *what, const char *target)
{
    act *a = calloc(1, sizeof *a);
    if (!a) {
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    a->req = req;
    snprintf(a->what, sizeof a->what, "%s", what);
    snprintf(a->target, sizeof a->target, "%s", target ? target : "");
    snprintf(a->ip, sizeof a->ip, "%s", req->client_ip);
    return a;
}

static void act_done(void *arg, json_t *body, const char *code, const char *message)
{
    act *a = arg;
    admin_audit("admin", a->ip, a->what, a->target[0] ? a->target : NULL, body != NULL,
                body ? NULL : json_pack("{s:s}", "error", code));
    if (body) http_respond_json(a->req, 200, body);
    else http_respond_error(a->req, status_of(code), code, message, NULL);
    free(a);
}

static db_pool *db_or_503(sb_req *req)
{
    db_pool *db = db_of(req->r);
    if (!db) rest_unavailable(req);
    return db;
}

/* ---- GET /metrics ---- */

static void h_metrics(sb_req *req)
{
    if (!g_config.metrics_open && !admin_auth(req)) return;
    strbuf out = {0};
    if (metrics_text(&out) != 0) {
        strbuf_free(&out);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.p ? out.p : "", out.len, NULL);
    strbuf_free(&out);
}

/* ---- GET /admin/stats ---- */

static json_t *hist_json(const char *name)
{
    double bounds[METRICS_MAX_BUCKETS];
    uint64_t counts[METRICS_MAX_BUCKETS + 1];
    int nb = metrics_hist_value(name, bounds, counts, METRICS_MAX_BUCKETS);
    if (nb < 0) return json_null();
    json_t *b = json_array(), *c = json_array();
    for (int i = 0; i < nb; i++) json_array_append_new(b, json_real(bounds[i]));
    for (int i = 0; i <= nb; i++) json_array_append_new(c, json_integer((json_int_t)counts[i]));
    return json_pack("{s:o,s:o}", "bounds", b, "counts", c);
}

static void stats_counts(void *arg, json_t *body, const char *code, const char *message)
{
    sb_req *req = arg;
    (void)message;
    bool db_ok = true;
    if (g_config.database_url[0])
        for (int i = 0; i < reactor_count; i++)
            if (!db_of(&reactor_all[i]) || !db_pool_ready(db_of(&reactor_all[i]))) db_ok = false;
    json_t *o = json_pack(
        "{s:s,s:I,s:b,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:o,s:o,s:s,s:s,s:f,s:f}", "node", g_config.node_id,
        "uptime_s", (json_int_t)(time(NULL) - g_started), "cluster", bus_is_cluster(), "ts_ms",
        (json_int_t)((int64_t)time(NULL) * 1000), "connections_open", metrics_value("sb_connections_open"),
        "connections_accepted_total", metrics_value("sb_connections_accepted_total"), "channels_joined",
        metrics_value("sb_channels_joined"), "messages_sent_total", metrics_value("sb_messages_sent_total"),
        "fanout_deliveries_total", metrics_value("sb_fanout_deliveries_total"), "slow_consumer_closes_total",
        metrics_value("sb_slow_consumer_closes_total"), "outbound_queue_bytes", metrics_value("sb_outbound_queue_bytes"),
        "rate_limited_total", metrics_value("sb_rate_limited_total"), "send_latency_seconds",
        hist_json("sb_message_send_seconds"), "db_query_seconds", hist_json("sb_db_query_seconds"), "postgres",
        !g_config.database_url[0] ? "not_configured" : db_ok ? "ok" : "down", "redis", bus_status(),
        "rss_bytes", metrics_value("process_resident_memory_bytes"), "open_fds", metrics_value("process_open_fds"));
    if (!o) {
        json_decref(body);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    if (body) json_object_update(o, body);
    else {
        json_object_set_new(o, "open_reports", json_null());
        json_object_set_new(o, "counts_error", json_string(code));
    }
    json_decref(body);
    http_respond_json(req, 200, o);
}

static void h_stats(sb_req *req)
{
    if (!admin_auth(req)) return;
    db_pool *db = db_of(req->r);
    if (!db) {
        stats_counts(req, NULL, "unavailable", "no database");
        return;
    }
    admin_ops_counts(db, stats_counts, req);
}

/* ---- POST /admin/users/:id/{disconnect,ban,unban} ---- */

static void user_action(sb_req *req, const char *what,
                        void (*fn)(struct db_pool *, const char *, admin_ops_done_fn, void *))
{
    if (!admin_auth(req)) return;
    db_pool *db = db_or_503(req);
    if (!db) return;
    act *a = act_new(req, what, req->params[0]);
    if (a) fn(db, req->params[0], act_done, a);
}

static void h_disconnect(sb_req *req) { user_action(req, "disconnect", admin_ops_disconnect); }
static void h_ban(sb_req *req) { user_action(req, "ban", admin_ops_ban); }
static void h_unban(sb_req *req) { user_action(req, "unban", admin_ops_unban); }

/* ---- reports ---- */

static void report_answer(void *arg, json_t *body, const char *code, const char *message)
{
    sb_req *req = arg;
    if (body) http_respond_json(req, 200, body);
    else http_respond_error(req, status_of(code), code, message, NULL);
}

static void h_reports(sb_req *req)
{
    if (!admin_auth(req)) return;
    char *state = http_req_query(req, "state", true);
    char *cursor = http_req_query(req, "cursor", true);
    char *limit_s = http_req_query(req, "limit", true);
    int limit = 0;
    verr v = {0};
    if (limit_s) {
        char *end;
        long l = strtol(limit_s, &end, 10);
        if (!*limit_s || *end || l < 1 || l > REPORT_LIMIT_MAX) verr_add(&v, "limit", "must be an integer in 1..200");
        else limit = (int)l;
    }
    free(limit_s);
    if (verr_any(&v)) {
        free(state);
        free(cursor);
        rest_verr_respond(req, &v);
        return;
    }
    db_pool *db = db_or_503(req);
    if (db) report_list(db, state && *state ? state : NULL, cursor && *cursor ? cursor : NULL, limit, report_answer, req);
    free(state);
    free(cursor);
}

static void h_report_resolve(sb_req *req)
{
    if (!admin_auth(req)) return;
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *state = NULL, *note = NULL;
    verr_get_string(b, "state", VERR_REQUIRED, 1, 16, &v, &state);
    verr_get_string(b, "note", VERR_NULLABLE, 0, 2000, &v, &note);
    if (state && strcmp(state, "actioned") != 0 && strcmp(state, "dismissed") != 0)
        verr_add(&v, "state", "must be actioned or dismissed");
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    db_pool *db = db_or_503(req);
    if (!db) {
        json_decref(b);
        return;
    }
    act *a = act_new(req, "report_resolve", req->params[0]);
    if (a) report_resolve(db, req->params[0], state, note, "admin", act_done, a);
    json_decref(b);
}

/* ---- POST /admin/broadcast ---- */

static void h_broadcast(sb_req *req)
{
    if (!admin_auth(req)) return;
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *title = NULL, *body = NULL;
    verr_get_string(b, "title", VERR_REQUIRED, 1, BROADCAST_TITLE_MAX, &v, &title);
    verr_get_string(b, "body", VERR_REQUIRED, 1, BROADCAST_BODY_MAX, &v, &body);
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    char ts[32];
    util_format_rfc3339_ms(util_now_unix_ms(), ts, sizeof ts);
    json_t *p = json_pack("{s:s,s:s,s:s}", "title", title, "body", body, "sent_at", ts);
    char *pj = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!pj) {
        json_decref(b);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    bus_control_publish(&(bus_ctl){BUS_CTL_BROADCAST, pj, 0});
    admin_audit("admin", req->client_ip, "broadcast", NULL, true, json_pack("{s:s}", "title", title));
    json_decref(b);
    free(pj);
    http_respond_json(req, 202, json_pack("{s:b,s:s}", "sent", 1, "sent_at", ts));
}

/* ---- the dashboard (no token: the page holds no data; every call it
 * makes carries the token the operator types in) ---- */

static void h_page(sb_req *req)
{
    const char *p = strcmp(req->path, "/admin") == 0 || strcmp(req->path, "/admin/") == 0 ? "/index.html"
                                                                                          : req->path + strlen("/admin");
    if (!static_files_serve_root(req, g_config.admin_web_root, p))
        http_respond_error(req, 404, "not_found", "no such file", NULL);
}

void admin_routes(void)
{
    g_started = time(NULL);
    metrics_register_process();
    router_add_admin(HTTP_GET, "/metrics", h_metrics);
    router_add_admin(HTTP_GET, "/admin/stats", h_stats);
    router_add_admin(HTTP_POST, "/admin/users/:id/disconnect", h_disconnect);
    router_add_admin(HTTP_POST, "/admin/users/:id/ban", h_ban);
    router_add_admin(HTTP_POST, "/admin/users/:id/unban", h_unban);
    router_add_admin(HTTP_GET, "/admin/reports", h_reports);
    router_add_admin(HTTP_POST, "/admin/reports/:id", h_report_resolve);
    router_add_admin(HTTP_POST, "/admin/broadcast", h_broadcast);
    router_add_admin(HTTP_GET, "/admin", h_page);
    router_add_admin(HTTP_GET, "/admin/", h_page);
    router_add_admin(HTTP_GET, "/admin/admin.js", h_page);
    router_add_admin(HTTP_GET, "/admin/admin.css", h_page);
}
