/* calls_rest.c — the REST endpoints of calls (api.md §2 "Calls"):
 * POST /api/v1/calls (rate limited per user), GET /api/v1/calls/active (kill-
 * state recovery: the call, the offer waiting for the caller, the ring time
 * left and fresh ice_servers), GET /api/v1/calls (history, newest first). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "calls/calls.h"
#include "calls/call_store.h"
#include "calls/turn.h"
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/page.h"
#include "base/ratelimit.h"
#include "base/util.h"
#include "base/verr.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"

static ratelimit_table *g_call_rl;
static ratelimit_limit g_call_lim;
static bool g_call_rl_on;

static void fail(sb_req *req, const char *code, const char *message)
{
    if (!strcmp(code, "unavailable"))
        http_respond_error_h(req, 503, code, message, NULL, "Retry-After: 1\r\n");
    else { /* with the fields a validation error names (the reference is stolen) */
        json_t *d = call_store_err_details();
        http_respond_error(req, rest_code_status(code), code, message, d ? json_incref(d) : NULL);
    }
}

/* {call} + ice_servers of the requesting user. */
static void call_answered(void *arg, json_t *body, const char *code, const char *message,
                          int created)
{
    sb_req *req = arg;
    if (!body) {
        fail(req, code, message);
        return;
    }
    json_object_set_new(body, "ice_servers", turn_ice_servers(req->auth.user_id));
    http_respond_json(req, created ? 201 : 200, body);
}

static void h_create(sb_req *req)
{
    if (!rest_auth(req)) return;
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    char other[24] = "", conv[24] = "";
    json_t *u = json_object_get(b, "user_id"), *c = json_object_get(b, "conversation_id");
    int hu = 0, hc = 0;
    if (u && !json_is_null(u)) {
        hu = json_is_string(u) && json_string_length(u) < 21 && id_parse(json_string_value(u)) ? 1 : -1;
        if (hu > 0) snprintf(other, sizeof other, "%s", json_string_value(u));
        else verr_add(&v, "user_id", "must be a user id");
    }
    if (c && !json_is_null(c)) {
        hc = json_is_string(c) && json_string_length(c) < 21 && id_parse(json_string_value(c)) ? 1 : -1;
        if (hc > 0) snprintf(conv, sizeof conv, "%s", json_string_value(c));
        else verr_add(&v, "conversation_id", "must be a conversation id");
    }
    if (!hu && !hc) verr_add(&v, "user_id", "user_id or conversation_id is required");
    else if (hu && hc) verr_add(&v, "conversation_id", "give user_id or conversation_id, not both");
    json_t *mv = json_object_get(b, "media");
    const char *media = json_string_value(mv);
    if (!mv) verr_add(&v, "media", "is required");
    else if (!media || (strcmp(media, "audio") && strcmp(media, "video")))
        verr_add(&v, "media", "must be audio or video");
    char med[8];
    snprintf(med, sizeof med, "%s", media && !strcmp(media, "video") ? "video" : "audio");
    json_decref(b);
    if (verr_any(&v)) {
        rest_verr_respond(req, &v);
        return;
    }
    if (!id_parse(req->auth.user_id)) {
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    if (g_call_rl_on) {
        int64_t wait = ratelimit_table_take(g_call_rl, req->auth.user_id, &g_call_lim, util_now_unix_ms(), 1);
        if (wait > 0) {
            rest_rate_limited(req, (int)((wait + 999) / 1000));
            return;
        }
    }
    call_store_create(req->r ? db_of(req->r) : NULL, req->auth.user_id, req->auth.session_id,
                      hu > 0 ? other : NULL, hc > 0 ? conv : NULL, med, call_answered, req);
}

static void active_answered(void *arg, json_t *body, const char *code, const char *message,
                            int created)
{
    (void)created;
    sb_req *req = arg;
    if (!body) {
        fail(req, code, message);
        return;
    }
    json_object_set_new(body, "ice_servers", turn_ice_servers(req->auth.user_id));
    http_respond_json(req, 200, body);
}

static void h_active(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (!id_parse(req->auth.user_id)) {
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    call_store_active(req->r ? db_of(req->r) : NULL, req->auth.user_id, active_answered, req);
}

typedef struct hist_ctx {
    sb_req *req;
    int limit;
} hist_ctx;

static void history_answered(void *arg, json_t *body, const char *code, const char *message,
                             int created)
{
    (void)created;
    hist_ctx *h = arg;
    sb_req *req = h->req;
    int limit = h->limit;
    free(h);
    if (!body) {
        fail(req, code, message);
        return;
    }
    json_t *items = json_incref(json_object_get(body, "items"));
    json_decref(body);
    const char *next = NULL;
    char buf[32];
    if ((int)json_array_size(items) > limit) {
        while ((int)json_array_size(items) > limit) json_array_remove(items, json_array_size(items) - 1);
        const char *id = json_string_value(json_object_get(json_array_get(items, (size_t)limit - 1), "id"));
        if (id) {
            snprintf(buf, sizeof buf, "k:%s", id);
            next = buf;
        }
    }
    http_respond_json(req, 200, page_body(items, next));
}

static void h_history(sb_req *req)
{
    if (!rest_auth(req)) return;
    verr v = {0};
    rest_page pg;
    rest_page_parse(req, &pg, &v);
    char before[24] = "";
    if (pg.cursor) {
        if (strncmp(pg.cursor, "k:", 2) || !id_parse(pg.cursor + 2) || strlen(pg.cursor + 2) > 20)
            verr_add(&v, "cursor", "is not a valid cursor");
        else snprintf(before, sizeof before, "%s", pg.cursor + 2);
    }
    int limit = pg.limit;
    rest_page_free(&pg);
    if (verr_any(&v)) {
        rest_verr_respond(req, &v);
        return;
    }
    if (!id_parse(req->auth.user_id)) {
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    hist_ctx *h = calloc(1, sizeof *h);
    if (!h) {
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    h->req = req;
    h->limit = limit;
    call_store_history(req->r ? db_of(req->r) : NULL, req->auth.user_id, before[0] ? before : NULL,
                       limit, history_answered, h);
}

void calls_routes(void)
{
    g_call_rl_on = strcmp(g_config.ratelimit_call, "off") != 0;
    if (g_call_rl_on && ratelimit_limit_parse(g_config.ratelimit_call, &g_call_lim) != 0) {
        log_msg(LOG_WARN, "bad SB_RATELIMIT_CALL (want N/seconds); using 20/60", NULL);
        ratelimit_limit_parse("20/60", &g_call_lim);
    }
    if (!g_call_rl && (g_call_rl = ratelimit_table_new(RL_TABLE_MAX))) ratelimit_table_set_kind(g_call_rl, "call");
    ch_call_register();
    router_add(HTTP_POST, "/api/v1/calls", h_create);
    router_add(HTTP_GET, "/api/v1/calls/active", h_active);
    router_add(HTTP_GET, "/api/v1/calls", h_history);
}
