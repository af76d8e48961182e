/* rest.h — helpers shared by REST handlers: JSON bodies, validation errors,
 * bearer authentication, pagination, database error mapping and times.
 *
 * The functions named rest_respond_* / rest_* that take an sb_req and return
 * false or NULL have already answered the request (and so freed it) when
 * they fail: the handler must return without touching req again. */
#ifndef SB_REST_H
#define SB_REST_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http/http.h"

#define REST_MAX_DEPTH 32 /* deepest JSON nesting accepted in a body */
#define REST_PAGE_DEFAULT 50
#define REST_PAGE_MAX 200
#define REST_CURSOR_MAX 256 /* longest decoded cursor, bytes */

/* ------------------------------------------------------------------------ */
/* JSON bodies                                                               */
/* ------------------------------------------------------------------------ */

/* Parses req->body as a JSON object. An empty body is {} when !required.
 * On failure answers 413 payload_too_large (over g_cfg.http_max_body) or 400
 * bad_request (empty when required, not JSON, duplicate keys, nested deeper
 * than REST_MAX_DEPTH, not an object) and returns NULL. The caller owns
 * (json_decref) what is returned. */
json_t *rest_body(sb_req *req, bool required);

/* ------------------------------------------------------------------------ */
/* Validation errors (422 validation_failed)                                 */
/* ------------------------------------------------------------------------ */

typedef struct rest_verr {
    json_t *details; /* {field: message}, created on first error */
} rest_verr;

/* Records `message` for `field` (the first message for a field wins). */
void rest_verr_add(rest_verr *v, const char *field, const char *message);
/* True once any error was recorded. */
bool rest_verr_any(const rest_verr *v);
/* Answers 422 validation_failed with the collected details (consumed). */
void rest_verr_respond(sb_req *req, rest_verr *v);
/* Frees what was collected without answering. */
void rest_verr_clear(rest_verr *v);

enum {
    REST_REQUIRED = 1, /* absent is an error */
    REST_NULLABLE = 2, /* JSON null is accepted (reported as present, *out NULL) */
    REST_NO_CTRL = 4,  /* control characters (U+0000-U+001F, U+007F) are refused */
};

/* Reads string member `field` of obj, checking its length in Unicode code
 * points against [min_chars, max_chars]. Returns 1 when present (*out points
 * into obj, or is NULL for an accepted null), 0 when absent (*out NULL), or
 * -1 after recording an error in v. */
int rest_get_string(json_t *obj, const char *field, int flags, size_t min_chars, size_t max_chars,
                    rest_verr *v, const char **out);
/* Number of UTF-8 code points in s (s is valid UTF-8). */
size_t rest_utf8_len(const char *s);

/* ------------------------------------------------------------------------ */
/* Authentication                                                            */
/* ------------------------------------------------------------------------ */

/* Checks "Authorization: Bearer <access token>" with token_verify under
 * g_cfg.secret and the local list of revoked sessions. On success fills
 * req->auth, sets req->authed and returns true; otherwise answers 401
 * unauthorized (with WWW-Authenticate) and returns false. */
bool rest_auth(sb_req *req);
/* Like rest_auth but never answers: returns TOKEN_OK (req->auth filled),
 * TOKEN_BAD, TOKEN_EXPIRED, REST_AUTH_MISSING (no header, or no token in it)
 * or REST_AUTH_REVOKED (valid token of a revoked session). */
enum { REST_AUTH_MISSING = 1, REST_AUTH_REVOKED = 2 };
int rest_auth_check(sb_req *req);

/* Remembers that session `sid` was revoked, until `until_unix` (the last
 * moment an access token of it can still be unexpired), so rest_auth refuses
 * its access tokens on this node. Bounded: past REST_REVOKED_MAX entries the
 * oldest is forgotten. Thread-safe. */
#define REST_REVOKED_MAX 65536
void rest_revoke_session(const char *sid, int64_t until_unix);
/* True if `sid` is on the revoked list (thread-safe). For the socket layer
 * too: a revoked session's access tokens must not connect. */
bool rest_session_revoked(const char *sid);

/* ------------------------------------------------------------------------ */
/* Pagination                                                                */
/* ------------------------------------------------------------------------ */

typedef struct rest_page {
    int limit;    /* 1..REST_PAGE_MAX, REST_PAGE_DEFAULT when absent */
    char *cursor; /* decoded cursor (malloc'd, NUL-terminated) or NULL */
} rest_page;

/* Reads ?limit= and ?cursor= (the last of each). Records errors in v for a
 * limit that is not an integer in 1..200 or a cursor that is not one this
 * server issued (base64url of printable text). Returns 0 or -1. */
int rest_page_parse(const sb_req *req, rest_page *pg, rest_verr *v);
void rest_page_free(rest_page *pg);
/* Encodes cursor text as an opaque string (malloc'd), or NULL. */
char *rest_cursor_encode(const char *text);
/* Decodes an opaque cursor; returns malloc'd text or NULL if invalid. */
char *rest_cursor_decode(const char *opaque);
/* {"items": items, "next_cursor": next or null}; steals items. */
json_t *rest_page_body(json_t *items, const char *next_cursor_text);

/* ------------------------------------------------------------------------ */
/* Error responses                                                           */
/* ------------------------------------------------------------------------ */

/* 503 unavailable (a dependency is down; nothing was done), Retry-After: 1. */
void rest_unavailable(sb_req *req);
/* Answers for a failed db_query callback: "unavailable" or a connection-class
 * SQLSTATE -> 503; 23505 unique_violation -> 409 conflict; 57014 timeout ->
 * 503; anything else -> 500 internal (logged). */
void rest_db_error(sb_req *req, const PGresult *res, const char *err);
/* 429 rate_limited with Retry-After: retry_after_s. */
void rest_rate_limited(sb_req *req, int retry_after_s);

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

/* RFC 3339 UTC with milliseconds ("2026-11-24T09:15:02.123Z") of ms since
 * the epoch, into out (>= 32 bytes). */
void rest_format_time(int64_t ms, char *out, size_t outlen);
/* The time column (row, col) of res, selected as epoch milliseconds (an
 * int8: `(extract(epoch from t) * 1000)::int8`), as a JSON string, or JSON
 * null when SQL NULL. */
json_t *rest_pg_time(const PGresult *res, int row, int col);
/* Column (row, col) as a JSON string, or null when SQL NULL. */
json_t *rest_pg_str(const PGresult *res, int row, int col);
/* Parses a decimal id (1..2^63-1, no sign, no leading zeros); returns it or
 * 0 when s is not one. */
int64_t rest_parse_id(const char *s);

#endif
