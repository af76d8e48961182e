/* search_rest.c — GET /api/v1/search/messages?q=&conversation_id=&cursor=&limit=
 * (api.md "Messages"): reads and checks the query, then search.c's page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "search/search.h"
#include "base/id.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"

static int code_status(const char *code)
{
    if (!strcmp(code, "unauthorized")) return 401;
    if (!strcmp(code, "unavailable")) return 503;
    if (!strcmp(code, "validation_failed")) return 422;
    return 500;
}

static void rest_ok(void *to, json_t *body) { http_respond_json(to, 200, body); }

static void rest_fail(void *to, const char *code, const char *message, json_t *details,
                      int retry_after_s)
{
    http_respond_error_h(to, code_status(code), code, message, details,
                       retry_after_s > 0 ? "Retry-After: 1\r\n" : NULL);
}

static const search_sink_ops REST_OPS = {.ok = rest_ok, .fail = rest_fail};

/* True if s is a finite decimal real as Postgres prints float4 ("0.0607927",
 * "1e-20", "6.07927e-05"). */
static bool real_text(const char *s, size_t n)
{
    if (n == 0 || n > 24) return false;
    char buf[32];
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    strtod(buf, &end);
    if (*end) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789.e-+", buf[i])) return false;
    return true;
}

static void h_search(sb_req *req)
{
    if (!rest_auth(req)) return;
    verr v = {0};
    rest_page pg;
    rest_page_parse(req, &pg, &v);
    char *q = http_req_query(req, "q", true);
    char tsq[SEARCH_TSQUERY_MAX];
    const char *err = NULL;
    if (!q || !*q) verr_add(&v, "q", "is required");
    else if (search_parse_query(q, tsq, &err) != 0) verr_add(&v, "q", err);
    free(q);
    char *conv = http_req_query(req, "conversation_id", true);
    if (conv && (!id_parse(conv) || strlen(conv) > 20)) verr_add(&v, "conversation_id", "must be an id");
    char rank[32] = "", after[24] = "";
    if (pg.cursor) {
        /* s:<rank>:<id> */
        const char *c = pg.cursor, *colon = strrchr(c, ':');
        if (strncmp(c, "s:", 2) || !colon || colon <= c + 2 || !real_text(c + 2, (size_t)(colon - c - 2)) ||
            !id_parse(colon + 1) || strlen(colon + 1) > 20) {
            verr_add(&v, "cursor", "is not a valid cursor");
        } else {
            snprintf(rank, sizeof rank, "%.*s", (int)(colon - c - 2), c + 2);
            snprintf(after, sizeof after, "%s", colon + 1);
        }
    }
    if (verr_any(&v)) {
        free(conv);
        rest_page_free(&pg);
        rest_verr_respond(req, &v);
        return;
    }
    search_run(&REST_OPS, req, req->r ? db_of(req->r) : NULL, req->auth.user_id, tsq, conv,
               rank[0] ? rank : NULL, after[0] ? after : NULL, pg.limit);
    free(conv);
    rest_page_free(&pg);
}

void search_routes(void) { router_add(HTTP_GET, "/api/v1/search/messages", h_search); }
