/* sync_view.c — the per-device view slot (sync_view.h). */
#include "sync/sync_view.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static sync_view_fn g_view;
static const char *g_prefix = "";
static const char *g_marker = "";

void sync_view_set(const char *type_prefix, const char *marker, sync_view_fn fn)
{
    g_prefix = type_prefix ? type_prefix : "";
    g_marker = marker ? marker : "";
    g_view = fn;
}

bool sync_view_wants(const char *type)
{
    return g_view && type && strncmp(type, g_prefix, strlen(g_prefix)) == 0;
}

char *sync_view_apply(const char *type, const char *payload, size_t len, const char *session_id,
                      size_t *out_len)
{
    if (!sync_view_wants(type) || !payload || !memmem(payload, len, g_marker, strlen(g_marker)))
        return NULL;
    return g_view(type, payload, len, session_id ? session_id : "", out_len);
}

char *sync_view_page(const char *body, size_t len, const char *session_id, size_t *out_len)
{
    if (!g_view || !body || !memmem(body, len, g_marker, strlen(g_marker))) return NULL;
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *evs = json_object_get(root, "events");
    bool changed = false;
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev) {
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (!sync_view_wants(type)) continue;
        json_t *pl = json_copy(ev);
        json_object_del(pl, "type");
        char *text = json_dumps(pl, JSON_COMPACT);
        json_decref(pl);
        size_t vl = 0;
        char *view = text ? sync_view_apply(type, text, strlen(text), session_id, &vl) : NULL;
        free(text);
        json_t *v = view ? json_loadb(view, vl, 0, NULL) : NULL;
        free(view);
        if (!json_is_object(v)) {
            json_decref(v);
            continue;
        }
        json_t *out = json_pack("{s:s}", "type", type);
        json_object_update(out, v);
        json_decref(v);
        json_array_set_new(evs, i, out);
        changed = true;
    }
    char *res = changed ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (res && out_len) *out_len = strlen(res);
    return res;
}
