/* rest.h — helpers shared by REST handlers: JSON bodies, answering validation
 * errors, bearer authentication, ?limit=&cursor= paging, database error
 * mapping. The layer-neutral pieces live below: base/verr.h (validation
 * errors), base/page.h (cursors, page bodies), base/id.h, store/pgval.h.
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
#include "base/verr.h"
#include "http/http.h"

#define REST_MAX_DEPTH 32 /* deepest JSON nesting accepted in a body */
#define REST_PAGE_DEFAULT 50
#define REST_PAGE_MAX 200

/* ------------------------------------------------------------------------ */
/* JSON bodies                                                               */
/* ------------------------------------------------------------------------ */

/* Parses req->body as a JSON object. An empty body is {} when !required.
 * On failure answers 413 payload_too_large (over g_config.http_max_body) or 400
 * bad_request (empty when required, not JSON, duplicate keys, nested deeper
 * than REST_MAX_DEPTH, not an object) and returns NULL. The caller owns
 * (json_decref) what is returned. */
json_t *rest_body(sb_req *req, bool required);

/* ------------------------------------------------------------------------ */
/* Validation errors (422 validation_failed; collected with base/verr.h)     */
/* ------------------------------------------------------------------------ */

/* Answers 422 validation_failed with the collected details (consumed). */
void rest_verr_respond(sb_req *req, verr *v);

/* ------------------------------------------------------------------------ */
/* Authentication                                                            */
/* ------------------------------------------------------------------------ */

/* Checks "Authorization: Bearer <access token>" with token_verify under
 * g_config.secret and the local list of revoked sessions. On success fills
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
int rest_page_parse(const sb_req *req, rest_page *pg, verr *v);
void rest_page_free(rest_page *pg);
/* ------------------------------------------------------------------------ */
/* Error responses                                                           */
/* ------------------------------------------------------------------------ */

/* 503 unavailable (a dependency is down; nothing was done), Retry-After: 1. */
void rest_unavailable(sb_req *req);
/* Answers for a failed db_query callback: "unavailable" or a connection-class
 * SQLSTATE -> 503; 23505 unique_violation -> 409 conflict; SBVAL (raised
 * by a check in SQL: message = the field, detail = why) -> 422
 * validation_failed with details {field: why}; 57014 timeout ->
 * 503; anything else -> 500 internal (logged). */
void rest_db_error(sb_req *req, const PGresult *res, const char *err);
/* 429 rate_limited with Retry-After: retry_after_s. */
void rest_rate_limited(sb_req *req, int retry_after_s);
/* The HTTP status of an api.md error code (what the sb_* SQL functions and
 * the domain cores answer): bad_request 400, unauthorized 401, forbidden
 * 403, not_found 404, conflict 409, payload_too_large 413,
 * validation_failed 422, rate_limited 429, unavailable 503; any other 500. */
int rest_code_status(const char *code);

#endif
