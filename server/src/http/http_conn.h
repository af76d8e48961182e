/* http_conn.h — the HTTP/1.1 side of a connection (used by conn.c and ws.c). */
#ifndef SB_HTTP_CONN_H
#define SB_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>
#include "http/http.h"

struct sb_conn;

/* Allocates the connection's parser state. Returns 0 or -1. */
int http_conn_init(struct sb_conn *c);
/* Parses received bytes; dispatches each complete request. */
void http_on_data(struct sb_conn *c, const char *data, size_t len);
/* The connection is closing: detaches a request still being handled and
 * frees the parser state. */
void http_conn_gone(struct sb_conn *c);
/* Closes the connection if idle past the keep-alive limit or if a request
 * has been arriving for too long (slow-loris). */
void http_sweep(struct sb_conn *c, uint64_t now);
/* Server shutdown: closes idle keep-alive connections; busy ones close after
 * their response. */
void http_shutdown(struct sb_conn *c);
/* Hands the connection over to WebSocket mode after a 101 response: frees
 * the parser and returns bytes received after the request (malloc'd, may be
 * NULL with *len 0) for the WebSocket layer. */
char *http_detach_for_upgrade(struct sb_conn *c, size_t *len);
/* Frees a request without answering it (after an upgrade). */
void http_req_free(sb_req *req);
/* Builds a response head; exposed for the WebSocket handshake. */
void http_send_raw(struct sb_conn *c, const char *data, size_t len);

#endif
