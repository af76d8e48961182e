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

static void rest_ok(void *to, const char *json, size_t len)
{
    http_respond(to, 200, "application/json; charset=utf-8", json, len, NULL);
}

static void rest_fail(void *to, const char *code, const char *message, json_t *details,
                      int retry_after_s)
{
    http_respond_error_h(to, code_status(code), code, message, details,
                       retry_after_s > 0 ? "Retry-After: 1\r\n" : NULL);
}

static const search_sink_ops REST_OPS = {.ok = rest_ok, .fail = rest_fail};

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
    const char *after = pg.cursor ? search_cursor_id(pg.cursor) : NULL;
    if (pg.cursor && !after) verr_add(&v, "cursor", "is not a valid cursor");
    if (verr_any(&v)) {
        free(conv);
        rest_page_free(&pg);
        rest_verr_respond(req, &v);
        return;
    }
    search_run(&REST_OPS, req, req->r ? db_of(req->r) : NULL, req->auth.user_id, tsq, conv, after,
               pg.limit);
    free(conv);
    rest_page_free(&pg);
}

void search_routes(void) { router_add(HTTP_GET, "/api/v1/search/messages", h_search); }
