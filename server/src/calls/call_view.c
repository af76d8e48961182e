/* call_view.c — the callee's per-device view of call events (call_view.h). */
#include "calls/call_view.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ANSWERED_ON_KEY "\"answered_on\""

char *call_view_event(const char *type, const char *payload, size_t len, const char *session_id,
                      size_t *out_len)
{
    if (strncmp(type, "call:", 5) != 0 || !memmem(payload, len, ANSWERED_ON_KEY, sizeof ANSWERED_ON_KEY - 1))
        return NULL;
    json_t *p = json_loadb(payload, len, 0, NULL);
    json_t *call = json_object_get(p, "call");
    const char *on = json_string_value(json_object_get(p, "answered_on"));
    if (!on || !json_is_object(call)) {
        json_decref(p);
        return NULL;
    }
    bool elsewhere = strcmp(on, session_id) != 0;
    json_object_del(p, "answered_on");
    if (elsewhere) {
        json_object_set_new(call, "state", json_string("ended"));
        json_object_set_new(call, "end_reason", json_string("answered_elsewhere"));
    }
    char *text = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    if (text && out_len) *out_len = strlen(text);
    return text;
}
