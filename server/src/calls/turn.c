/* turn.c — ICE servers for call participants (turn.h). Minimal placeholder:
 * the URIs of SB_TURN_URIS (comma-separated) without credentials, or an
 * empty array when unset; the coturn REST-API credentials replace this body. */
#include "calls/turn.h"

#include <stdlib.h>
#include <string.h>

/* Returns a new array: one {"urls":[...]} entry listing SB_TURN_URIS, or []
 * when it is unset or empty. */
json_t *turn_ice_servers(const char *user_id)
{
    (void)user_id;
    json_t *arr = json_array();
    const char *uris = getenv("SB_TURN_URIS");
    if (!uris || !*uris)
        return arr;
    json_t *urls = json_array();
    const char *p = uris;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) { p++; n--; }
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n)
            json_array_append_new(urls, json_stringn(p, n));
        if (!e)
            break;
        p = e + 1;
    }
    if (json_array_size(urls))
        json_array_append_new(arr, json_pack("{s:o}", "urls", urls));
    else
        json_decref(urls);
    return arr;
}
