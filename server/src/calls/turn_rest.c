/* turn_rest.c — GET /api/v1/turn (api.md §2 "Calls"): fresh coturn
 * credentials for the signed-in user, computed by turn.c. Not cached by
 * anyone on the way (Cache-Control: no-store): the answer is a password. */
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "base/util.h"
#include "calls/turn.h"
#include "http/rest.h"
#include "http/router.h"

static void turn_get(sb_req *req)
{
    if (!rest_auth(req)) return;
    json_t *body = turn_answer(req->auth.user_id, util_now_unix_ms() / 1000);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    http_respond(req, 200, "application/json", text, strlen(text), "Cache-Control: no-store\r\n");
    free(text);
}

void turn_rest_routes(void) { router_add(HTTP_GET, "/api/v1/turn", turn_get); }
