/* http.h — HTTP/1.1 requests and responses (llhttp), keep-alive and pipelining.
 *
 * A request is parsed whole (headers and a body bounded by the configured
 * maximum) and handed to the router. Handlers may answer at once or later
 * (after a database round trip): every request must be answered exactly once
 * with one of the http_respond* functions, which also frees it. While a request
 * is being handled the connection reads no further request (pipelined
 * requests wait, so responses leave in order). If the client goes away first,
 * req->conn becomes NULL; answering then just frees the request. */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/token.h"

struct sb_conn;
struct reactor;

typedef struct sb_header {
    char *name; /* lower-cased */
    char *value;
} sb_header;

#define SB_MAX_ROUTE_PARAMS 4

typedef struct sb_req {
    struct sb_conn *conn;    /* NULL once the client has gone */
    struct reactor *r;       /* the reactor this request runs on */
    int method;              /* llhttp method: HTTP_GET, HTTP_POST, ... */
    char *target;            /* raw request target */
    char *path;              /* percent-decoded path, without the query */
    char *query;             /* raw query string, "" if none */
    sb_header *headers;
    int nheaders;
    char *body;              /* NUL-terminated copy of the body ("" if none) */
    size_t body_len;
    const char *params[SB_MAX_ROUTE_PARAMS]; /* route captures, in order */
    int nparams;
    bool keep_alive;
    bool body_streamed;      /* a router_add_stream route: the body comes through http_body_read */
    bool authed;             /* set by rest_auth() */
    token_claims auth;       /* valid when authed */
    char client_ip[48];      /* peer address, text */
    void *user;              /* free for the handler */
    const uint32_t *metric_codes; /* router: the route's request counters by status class (1xx..5xx) */
} sb_req;

/* The value of header `name` (lower-case), or NULL. */
const char *http_req_header(const sb_req *req, const char *name);
/* The percent-decoded value of query parameter `name`: the last occurrence
 * when `last`, else the first. Returns a malloc'd string or NULL if absent. */
char *http_req_query(const sb_req *req, const char *name, bool last);
/* Counts occurrences of query parameter `name`. */
int http_req_query_count(const sb_req *req, const char *name);

/* Sends a complete response and frees the request. `extra_headers` is either
 * NULL or CRLF-terminated header lines ("Retry-After: 3\r\n"). */
void http_respond(sb_req *req, int status, const char *content_type, const void *body, size_t len,
                const char *extra_headers);
/* A response whose body the handler encodes in place (no copy of the
 * body): http_respond_body_new returns a buffer with room for `body_cap`
 * bytes at *body (NULL when out of memory); http_respond_body sends the
 * first `len` bytes of them with the status line and headers in front, and
 * frees the request and (its reference to) the buffer. */
struct sb_buf *http_respond_body_new(size_t body_cap, char **body);
void http_respond_body(sb_req *req, int status, const char *content_type, struct sb_buf *b,
                     size_t len);
/* Sends `body` as JSON (compact) and frees the request; steals `body`. */
void http_respond_json(sb_req *req, int status, json_t *body);
/* Sends the error shape {"error":{"code","message","details"}}; steals details
 * (may be NULL, then {}); frees the request. */
void http_respond_error(sb_req *req, int status, const char *code, const char *message,
                      json_t *details);
/* Like http_respond_error, with extra header lines (e.g. Retry-After). */
void http_respond_error_h(sb_req *req, int status, const char *code, const char *message,
                        json_t *details, const char *extra_headers);
/* ---- streamed responses (chunked transfer encoding, back-pressure) ----
 * http_stream_begin sends the status line and headers; then the handler
 * writes chunks with http_stream_write and, before producing more, waits
 * with http_stream_wait until the client has taken what is queued; it ends
 * with http_stream_end (the last chunk; frees the request) or http_stream_abort
 * (closes the connection: the client sees a truncated body; frees the
 * request). If the client goes away, a pending wait's callback runs with
 * req->conn NULL (the handler then ends or aborts, which only frees), and
 * http_stream_write returns -1. A stream that makes no progress for
 * SB_HTTP_IDLE_MS is closed the same way. */
typedef void (*http_stream_fn)(sb_req *req, void *arg);
/* Sends the head (Transfer-Encoding: chunked; extra_headers as for
 * sb_respond). Returns 0, or -1 when the client is gone. */
int http_stream_begin(sb_req *req, int status, const char *content_type, const char *extra_headers);
/* Queues data (len > 0) as one chunk; takes no reference to data. Returns
 * 0, or -1 when the client is gone or out of memory. */
int http_stream_write(sb_req *req, const void *data, size_t len);
/* Bytes queued to the client and not yet written (0 when gone). */
size_t http_stream_queued(const sb_req *req);
/* Calls fn(req, arg) once, when at most `below` bytes are left unwritten,
 * or when the client goes away (req->conn NULL then). */
void http_stream_wait(sb_req *req, size_t below, http_stream_fn fn, void *arg);
/* The last chunk; frees the request. */
void http_stream_end(sb_req *req);
/* Closes the connection without the last chunk; frees the request. */
void http_stream_abort(sb_req *req);

/* A streamed response with a known length (no chunked framing): the head
 * carries Content-Length: `length`; http_stream_write / http_stream_send
 * then queue raw body bytes (exactly `length` in all), http_stream_wait and
 * http_stream_abort work as above, and http_stream_end sends nothing more.
 * For a HEAD request only the head is sent (the handler ends at once).
 * Returns 0, or -1 when the client is gone. */
int http_stream_begin_len(sb_req *req, int status, const char *content_type, const char *extra_headers,
                          unsigned long long length);
/* Queues the bytes of b (takes its own reference, no copy) on a stream.
 * Returns 0, or -1 when the client is gone. */
int http_stream_send(sb_req *req, struct sb_buf *b);

/* ---- streamed request bodies (routes added with router_add_stream) ----
 * Such a route's handler runs as soon as the request's headers are in, with
 * req->body_streamed set and req->body empty. It either answers at once
 * (the body is then never read and the connection closes after the
 * response) or calls http_body_read; fn then receives the body as it
 * arrives: HTTP_BODY_DATA (data valid only during the call; chunked
 * framing removed), then HTTP_BODY_END once the body is complete, or
 * HTTP_BODY_ABORT (the client went away, sent a malformed body, or sent
 * nothing for SB_HTTP_IDLE_MS: req->conn is NULL then and answering only
 * frees the request). fn may run before http_body_read returns. The
 * request must be answered exactly once, at any time (answering before
 * HTTP_BODY_END stops the body and closes the connection after the
 * response). Back-pressure: after http_body_pause, at most
 * HTTP_BODY_SLICE more bytes are delivered, then reading from the socket
 * stops until http_body_resume. */
#define HTTP_BODY_SLICE (64 * 1024)
enum { HTTP_BODY_DATA, HTTP_BODY_END, HTTP_BODY_ABORT };
typedef void (*http_body_fn)(sb_req *req, int ev, const char *data, size_t len, void *arg);
/* Starts delivering the body of req to fn (see above). */
void http_body_read(sb_req *req, http_body_fn fn, void *arg);
/* The consumer is busy: stop delivering (after at most HTTP_BODY_SLICE). */
void http_body_pause(sb_req *req);
/* The consumer is ready again: delivery resumes (fn may run at once). */
void http_body_resume(sb_req *req);

/* Status line reason phrase. */
const char *http_reason(int status);

#endif
