/* call_push.c — the push hook slot (call_push.h). */
#include "calls/call_push.h"

#include <string.h>

call_push_fn g_call_push_hook;

void call_push_notify(call_push_kind kind, const json_t *call, const char *user_id)
{
    if (!g_call_push_hook || !call) return;
    if (kind == CALL_PUSH_ANSWER) {
        if (user_id) g_call_push_hook(kind, user_id, call);
        return;
    }
    const char *caller = json_string_value(json_object_get(call, "caller_id"));
    json_t *ps = json_object_get(call, "participants");
    size_t i;
    json_t *p;
    json_array_foreach(ps, i, p) {
        const char *uid = json_string_value(json_object_get(p, "user_id"));
        const char *st = json_string_value(json_object_get(p, "state"));
        if (!uid || (caller && !strcmp(uid, caller))) continue;
        if (kind == CALL_PUSH_INVITE && st && strcmp(st, "invited") != 0) continue;
        g_call_push_hook(kind, uid, call);
    }
}
