/* push_http.h — HTTP POSTs on libcurl's multi interface driven by one libuv
 * loop (curl_multi_socket_action with a uv_poll per socket and a uv_timer):
 * HTTP/2 with multiplexing, prior knowledge for http:// URLs (h2c), ALPN
 * for https://. Never blocks the loop. One instance per loop, used only on
 * that loop's thread. */
#ifndef SB_PUSH_HTTP_H
#define SB_PUSH_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct push_http push_http;

/* What became of a POST. libcurl's own replays are turned off (a replay
 * fails instead): every request is sent at most once per push_http_post. */
typedef enum {
    PUSH_HTTP_ANSWERED = 0,     /* an answer came (status > 0) */
    PUSH_HTTP_NOT_PROCESSED,    /* no answer, and the peer did not process it: REFUSED_STREAM,
                                   a stream id above a GOAWAY's last-stream-id, or no
                                   connection: safe to send again */
    PUSH_HTTP_MAYBE_PROCESSED,  /* no answer, its stream id is at or below the last-stream-id
                                   of a GOAWAY: the peer may have processed it */
    PUSH_HTTP_NO_ANSWER         /* no answer otherwise (timeout, connection lost): unknown */
} push_http_fate;

/* The answer of one POST: status (0 when no answer: err names why and
 * fate says whether the peer may have processed it), body[0..len) (at
 * most 64 KiB kept), the Retry-After header value or NULL. Runs on the
 * loop's thread, once per push_http_post that returned 0, unless
 * push_http_close came first. */
typedef void (*push_http_cb)(void *arg, long status, const char *body, size_t len,
                             const char *retry_after, const char *err, push_http_fate fate);

/* A client on loop, keeping at most max_conns connections per host and
 * max_streams streams on each, trusting the CA bundle ca_file (NULL or "":
 * the system's). NULL on failure (push_http_global_init must have run). */
push_http *push_http_new(uv_loop_t *loop, long max_conns, long max_streams, const char *ca_file);
/* Process-wide libcurl initialisation, before any thread uses curl.
 * Returns 0 or -1. */
int push_http_global_init(void);
/* Starts a POST of body[0..len) to url with headers (a NULL-terminated
 * list of "Name: value"), giving up after timeout_ms. Returns 0, or -1
 * when it could not start (cb not called). */
int push_http_post(push_http *h, const char *url, const char *const *headers, const char *body,
                   size_t len, long timeout_ms, push_http_cb cb, void *arg);
/* Requests in flight. */
size_t push_http_inflight(const push_http *h);
/* Aborts every request (no callbacks) and frees h once its handles closed. */
void push_http_close(push_http *h);

#endif
