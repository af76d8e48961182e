/* json_depth.h — the nesting pre-scan run on untrusted JSON text before a
 * parser sees it, so that hostile nesting is refused before the parser
 * recurses (REST bodies, Phoenix messages). */
#ifndef SB_JSON_DEPTH_H
#define SB_JSON_DEPTH_H

#include <stdbool.h>
#include <stddef.h>

/* Deepest nesting of arrays/objects in the JSON text s[0..n) (the outermost
 * array or object is level 1; strings are skipped, escapes honoured); stops
 * counting past `limit` and returns limit + 1 then. A closer with nothing
 * open is not counted (the JSON is not valid: the parser refuses it). Does
 * not validate the JSON. */
int json_depth_max(const char *s, size_t n, int limit);

/* True when s[0..n) nests no deeper than limit (json_depth_max <= limit). */
bool json_depth_ok(const char *s, size_t n, int limit);

#endif
