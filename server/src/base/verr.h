/* verr.h — validation errors, collected field by field, and the typed reads
 * of JSON members that record them. Layer-neutral: the REST edges answer the
 * collection as 422 validation_failed (rest_verr_respond), the channel edges
 * as an error reply, the domain cores hand it to their sink. */
#ifndef SB_VERR_H
#define SB_VERR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct verr {
    json_t *details; /* {field: message}, created on first error */
} verr;

/* Records `message` for `field` (the first message for a field wins). */
void verr_add(verr *v, const char *field, const char *message);
/* True once any error was recorded. */
bool verr_any(const verr *v);
/* Frees what was collected. */
void verr_clear(verr *v);

enum {
    VERR_REQUIRED = 1, /* absent is an error */
    VERR_NULLABLE = 2, /* JSON null is accepted (reported as present, *out NULL) */
    VERR_NO_CTRL = 4,  /* control characters (U+0000-U+001F, U+007F) are refused */
};

/* Reads string member `field` of obj, checking its length in Unicode code
 * points against [min_chars, max_chars]. Returns 1 when present (*out points
 * into obj, or is NULL for an accepted null), 0 when absent (*out NULL), or
 * -1 after recording an error in v. */
int verr_get_string(json_t *obj, const char *field, int flags, size_t min_chars, size_t max_chars,
                    verr *v, const char **out);
/* Number of UTF-8 code points in s (s is valid UTF-8). */
size_t verr_utf8_len(const char *s);

#endif
