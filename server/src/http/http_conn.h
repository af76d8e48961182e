/* http_conn.h — the HTTP/1.1 side of a connection: the opener that installs
 * HTTP on an accepted connection (main.c hands it to conn_set_opener), and
 * what a protocol upgrade (ws.c) needs to take the connection over. */
#ifndef SB_HTTP_CONN_H
#define SB_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>
#include "http/http.h"

struct sb_conn;

/* A conn_open_fn (net/conn.h): installs HTTP's handler table on c and
 * allocates its parser state. Returns 0 or -1 (out of memory). */
int http_conn_open(struct sb_conn *c);
/* Hands the connection over to another protocol after a 101 response: frees
 * the parser state (c->proto becomes NULL; the caller installs its own
 * handler table and state) and returns bytes received after the request
 * (malloc'd, may be NULL with *len 0) for the new protocol. */
char *http_detach_for_upgrade(struct sb_conn *c, size_t *len);
/* Frees a request without answering it (after an upgrade). */
void http_req_free(sb_req *req);
/* Queues raw bytes on the connection (e.g. a 101 response head). */
void http_send_raw(struct sb_conn *c, const char *data, size_t len);

#endif
