/* fuzz_origin.c — libFuzzer target: the socket transports' Origin check
 * (phoenix/phx_origin.c). Input: Origin, Host and the allowed list,
 * separated by NUL bytes (missing parts: no Origin header / no Host / the
 * default list). Invariants: no Origin always passes; "*" allows every
 * Origin; "same" means the default; a list the start-up check accepts is
 * one whose every entry parses (so adding "*" to it allows everything). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "phoenix/phx_origin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *parts[3] = {NULL, NULL, NULL};
    char *p = buf;
    for (int i = 0; i < 3 && p <= buf + size; i++) {
        parts[i] = p;
        p += strlen(p) + 1;
    }
    const char *origin = parts[0], *host = parts[1], *list = parts[2];
    if (!phx_origin_allowed(NULL, host, list)) abort();
    if (!phx_origin_allowed(origin, host, "*")) abort();
    bool dflt = phx_origin_allowed(origin, host, NULL);
    if (dflt != phx_origin_allowed(origin, host, "same")) abort();
    if (dflt && (!host || !*host)) abort(); /* the same site needs a Host */
    bool listed = phx_origin_allowed(origin, host, list);
    char err[256];
    if (list && phx_origin_list_check(list, err, sizeof err) == 0 && (!listed || strlen(list) < 4000)) {
        char *with_any = malloc(strlen(list) + 3);
        if (with_any) {
            strcpy(with_any, list);
            strcat(with_any, ",*");
            if (!phx_origin_allowed(origin, host, with_any)) abort();
            free(with_any);
        }
    }
    free(buf);
    return 0;
}
