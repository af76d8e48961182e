/* keys_rest.c — the REST edge of the key directory (api.md "End-to-end
 * encryption key directory"): PUT /api/v1/keys, GET /api/v1/keys/count,
 * GET /api/v1/keys/:user_id. The work is keys.c's. */
#include <stdio.h>
#include <string.h>
#include <llhttp.h>
#include "keys/keys.h"
#include "http/rest.h"
#include "http/router.h"
#include "net/reactor.h"
#include "store/db.h"

static void rest_ok(void *to, json_t *body) { http_respond_json(to, 200, body); }

static void rest_fail(void *to, const char *code, const char *message, json_t *details,
                      int retry_after_s)
{
    char h[48];
    if (retry_after_s > 0) snprintf(h, sizeof h, "Retry-After: %d\r\n", retry_after_s);
    http_respond_error_h(to, rest_code_status(code), code, message, details, retry_after_s > 0 ? h : NULL);
}

static const keys_sink_ops REST_OPS = {.ok = rest_ok, .fail = rest_fail};

static struct db_pool *req_db(sb_req *req) { return req->r ? db_of(req->r) : NULL; }

/* PUT /keys */
static void h_put(sb_req *req)
{
    if (!rest_auth(req)) return;
    json_t *b = rest_body(req, true);
    if (!b) return;
    keys_put(&REST_OPS, req, req_db(req), req->auth.user_id, b);
    json_decref(b);
}

/* GET /keys/count */
static void h_count(sb_req *req)
{
    if (!rest_auth(req)) return;
    keys_count(&REST_OPS, req, req_db(req), req->auth.user_id);
}

/* GET /keys/:user_id */
static void h_fetch(sb_req *req)
{
    if (!rest_auth(req)) return;
    keys_fetch(&REST_OPS, req, req_db(req), req->auth.user_id, req->nparams > 0 ? req->params[0] : NULL);
}

void keys_routes(void)
{
    keys_init();
    router_add(HTTP_PUT, "/api/v1/keys", h_put);
    router_add(HTTP_GET, "/api/v1/keys/count", h_count);
    router_add(HTTP_GET, "/api/v1/keys/:user_id", h_fetch);
}
