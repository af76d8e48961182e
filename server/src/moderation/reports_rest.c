/* reports_rest.c — POST /api/v1/reports {message_id? | user_id?, reason,
 * note?} (api.md "Safety"): a user reports a message (its snapshot is kept
 * as evidence) or a user; 201 {"report"}. 422 without a target; rate
 * limited per user (SB_RATELIMIT_REPORT). Admins list and resolve reports
 * through reports.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "moderation/moderation.h"
#include "moderation/report_create.h"
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/ratelimit.h"
#include "base/util.h"
#include "base/verr.h"
#include "http/http.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"

#define REASON_MAX 64
#define NOTE_MAX 2000

static ratelimit_table *g_report_rl;
static ratelimit_limit g_report_lim;
static bool g_report_rl_on;

/* HTTP status of an api.md error code. */
static int code_status(const char *code)
{
    if (!strcmp(code, "not_found")) return 404;
    if (!strcmp(code, "validation_failed")) return 422;
    if (!strcmp(code, "forbidden")) return 403;
    if (!strcmp(code, "conflict")) return 409;
    if (!strcmp(code, "unavailable")) return 503;
    return 500;
}

static void created(void *arg, json_t *body, const char *code, const char *message)
{
    sb_req *req = arg;
    if (body) http_respond_json(req, 201, body);
    else http_respond_error(req, code_status(code), code, message, NULL);
}

/* An optional id member: absent/null -> *out NULL; else a decimal id. */
static void get_id(json_t *b, const char *field, verr *v, const char **out)
{
    *out = NULL;
    if (verr_get_string(b, field, VERR_NULLABLE, 1, 20, v, out) == 1 && *out && !id_parse(*out))
        verr_add(v, field, "is not an id");
}

/* POST /reports */
static void h_report(sb_req *req)
{
    if (!rest_auth(req)) return;
    json_t *b = rest_body(req, true);
    if (!b) return;
    verr v = {0};
    const char *msg, *user, *reason = NULL, *note = NULL;
    get_id(b, "message_id", &v, &msg);
    get_id(b, "user_id", &v, &user);
    if (!msg && !user && !json_object_get(v.details, "message_id") &&
        !json_object_get(v.details, "user_id"))
        verr_add(&v, "message_id", "a report needs a message_id or a user_id");
    if (user && !strcmp(user, req->auth.user_id)) verr_add(&v, "user_id", "is yourself");
    if (verr_get_string(b, "reason", VERR_REQUIRED | VERR_NO_CTRL, 1, REASON_MAX, &v, &reason) == 1 &&
        strspn(reason, " ") == strlen(reason))
        verr_add(&v, "reason", "must not be blank");
    verr_get_string(b, "note", VERR_NULLABLE, 0, NOTE_MAX, &v, &note);
    if (verr_any(&v)) {
        json_decref(b);
        rest_verr_respond(req, &v);
        return;
    }
    if (g_report_rl_on) {
        int64_t wait = ratelimit_table_take(g_report_rl, req->auth.user_id, &g_report_lim,
                                            util_now_unix_ms(), 1);
        if (wait > 0) {
            json_decref(b);
            rest_rate_limited(req, (int)((wait + 999) / 1000));
            return;
        }
    }
    report_create(req->r ? db_of(req->r) : NULL, req->auth.user_id, msg, user, reason, note,
                  created, req);
    json_decref(b);
}

/* Registers POST /api/v1/reports and reads SB_RATELIMIT_REPORT. */
void reports_rest_routes(void)
{
    g_report_rl_on = strcmp(g_config.ratelimit_report, "off") != 0;
    if (g_report_rl_on && ratelimit_limit_parse(g_config.ratelimit_report, &g_report_lim) != 0) {
        log_msg(LOG_WARN, "bad SB_RATELIMIT_REPORT, using 20/3600", "value",
                json_string(g_config.ratelimit_report), NULL);
        ratelimit_limit_parse("20/3600", &g_report_lim);
    }
    if (g_report_rl_on && !g_report_rl) g_report_rl = ratelimit_table_new(RL_TABLE_MAX);
    router_add(HTTP_POST, "/api/v1/reports", h_report);
}
