/* phx.h — the Phoenix Channels V2 JSON client layer: building frames and
 * picking received ones apart without a JSON tree.
 *
 * A received V2 frame `[join_ref, ref, topic, event, payload]` is split into
 * spans pointing into the receive buffer (no copy, no allocation): the
 * receive path only needs the refs, the event name and a few payload keys,
 * and must keep up with millions of frames per second. The scanner checks
 * the structure it walks (strings, nesting up to PHX_MAX_DEPTH) and refuses
 * what is not JSON-shaped, but it is not a full validator. */
#ifndef SBL_PHX_H
#define SBL_PHX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PHX_MAX_DEPTH 64

typedef struct span {
    const char *p;
    size_t n;
} span;

/* Returns the end of the JSON value starting at p (leading whitespace
 * allowed), or NULL if it is malformed or runs past e. */
const char *json_skip(const char *p, const char *e);
/* Finds top-level key `key` in the object `obj` (a span over `{...}`);
 * returns 1 and the value's span, or 0. */
int json_obj_get(span obj, const char *key, span *val);
/* Iterates the keys of object `obj`: *pos starts at 0; returns 1 with the
 * raw key (without quotes, escapes left as is) and value, or 0 at the end or
 * on malformed input. */
int json_obj_next(span obj, size_t *pos, span *key, span *val);
/* True when the span is a JSON string equal to s (no escapes compared). */
bool span_str_eq(span v, const char *s);
bool span_is_null(span v);
/* Parses an unsigned integer from a JSON number or a string holding one
 * ("12" or 12). Returns 1 and *out, or 0. */
int span_u64(span v, uint64_t *out);

typedef struct phx_frame {
    span join_ref, ref, topic, event, payload; /* raw JSON values */
} phx_frame;

/* Splits a V2 text frame. Returns 0 or -1 (not a 5-element array). */
int phx_parse(const char *buf, size_t len, phx_frame *f);

/* Builds `[join_ref, ref, topic, event, payload]` into out. A ref of 0 is
 * written as null, others as decimal strings ("12") like phoenix.js does.
 * topic and event are JSON-escaped; payload is copied verbatim (it must be
 * JSON). Returns the length, or -1 if out is too small. */
int phx_build(char *out, size_t cap, uint32_t join_ref, uint32_t ref, const char *topic,
              const char *event, const char *payload, size_t plen);

/* Writes s JSON-escaped (without the quotes) into out. Returns the length
 * or -1 if it does not fit. */
int json_escape(char *out, size_t cap, const char *s, size_t n);

/* Replaces every "{id}" in pattern by id (and "{peer}" by id ^ 1, the other
 * member of a pair) into out; with a user table loaded (--user-file),
 * "{user}" is line id of it and "{peeruser}" line id ^ 1 (modulo its
 * length). Returns the length or -1. */
extern const char *const *g_pattern_users;
extern size_t g_pattern_nusers;
int pattern_expand(char *out, size_t cap, const char *pattern, uint64_t id);
/* The inverse for patterns with exactly one "{id}": parses s back to id.
 * Returns 1 and *id, or 0 if s does not match. */
int pattern_match(const char *pattern, const char *s, size_t n, uint64_t *id);

#endif
