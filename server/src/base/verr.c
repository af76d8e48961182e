/* verr.c — validation errors and typed JSON member reads (see verr.h). */
#include "base/verr.h"

#include <stdio.h>
#include <string.h>

void verr_add(verr *v, const char *field, const char *message)
{
    if (!v->details) v->details = json_object();
    if (v->details && !json_object_get(v->details, field))
        json_object_set_new(v->details, field, json_string(message));
}

bool verr_any(const verr *v)
{
    return v->details && json_object_size(v->details) > 0;
}

void verr_clear(verr *v)
{
    json_decref(v->details);
    v->details = NULL;
}

size_t verr_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) n++;
    return n;
}

int verr_get_string(json_t *obj, const char *field, int flags, size_t min_chars, size_t max_chars,
                    verr *v, const char **out)
{
    *out = NULL;
    json_t *x = obj ? json_object_get(obj, field) : NULL;
    if (!x) {
        if (flags & VERR_REQUIRED) {
            verr_add(v, field, "is required");
            return -1;
        }
        return 0;
    }
    if (json_is_null(x)) {
        if (flags & VERR_NULLABLE) return 1;
        verr_add(v, field, (flags & VERR_REQUIRED) ? "is required" : "must be a string");
        return -1;
    }
    if (!json_is_string(x)) {
        verr_add(v, field, "must be a string");
        return -1;
    }
    const char *s = json_string_value(x);
    if (strlen(s) != json_string_length(x)) {
        verr_add(v, field, "must not contain NUL characters");
        return -1;
    }
    size_t n = verr_utf8_len(s);
    char msg[64];
    if (n < min_chars) {
        if (min_chars == 1)
            snprintf(msg, sizeof msg, "must not be empty");
        else
            snprintf(msg, sizeof msg, "must be at least %zu characters", min_chars);
        verr_add(v, field, msg);
        return -1;
    }
    if (n > max_chars) {
        snprintf(msg, sizeof msg, "must be at most %zu characters", max_chars);
        verr_add(v, field, msg);
        return -1;
    }
    if (flags & VERR_NO_CTRL) {
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
            if (*p < 0x20 || *p == 0x7f) {
                verr_add(v, field, "must not contain control characters");
                return -1;
            }
    }
    *out = s;
    return 1;
}
