/* fuzz_json.c — libFuzzer target: REST JSON bodies under the size and depth
 * limits (rest_body: 413 / 400 / an object), then the field validators
 * (verr_get_string with each flag combination) on every member of what
 * parsed, and the nesting pre-scan. Also the query-string readers and the
 * pagination parameters (?limit=, ?cursor=) on the same bytes as a query.
 * Input: the request body. */
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "base/json_depth.h"
#include "fuzz_env.h"
#include "http/http.h"
#include "http/http_conn.h"
#include "http/rest.h"
#include "base/page.h"
#include "base/verr.h"

static sb_req *new_req(const uint8_t *data, size_t size)
{
    sb_req *req = calloc(1, sizeof *req);
    char *body = malloc(size + 1);
    if (!req || !body) abort();
    memcpy(body, data, size);
    body[size] = 0;
    req->body = body;
    req->body_len = size;
    req->query = "";
    return req;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    int d = json_depth_max((const char *)data, size, REST_MAX_DEPTH);
    if (d < 0 || d > REST_MAX_DEPTH + 1) abort();

    /* conn == NULL: answering only frees the request */
    sb_req *req = new_req(data, size);
    json_t *o = rest_body(req, size & 1);
    if (o) {
        if (!json_is_object(o)) abort();
        http_req_free(req);
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
            for (int flags = 0; flags < 8; flags++) {
                verr ve = {0};
                const char *out;
                int rc = verr_get_string(o, k, flags, 1, 64, &ve, &out);
                if (rc == 1 && out && (verr_utf8_len(out) < 1 || verr_utf8_len(out) > 64)) abort();
                if ((rc == -1) != verr_any(&ve)) abort();
                verr_clear(&ve);
            }
        }
        json_decref(o);
    }

    /* the same bytes as a query string */
    req = new_req(data, size);
    req->query = req->body;
    if (!memchr(data, 0, size)) {
        rest_page pg;
        verr ve = {0};
        if (rest_page_parse(req, &pg, &ve) == 0) {
            if (pg.limit < 1 || pg.limit > REST_PAGE_MAX) abort();
            if (pg.cursor && strlen(pg.cursor) > PAGE_CURSOR_MAX) abort();
        }
        rest_page_free(&pg);
        verr_clear(&ve);
        free(http_req_query(req, "token", false));
        (void)http_req_query_count(req, "vsn");
    }
    http_req_free(req);
    return 0;
}
