/* ws.h — WebSocket (RFC 6455) connections carrying a Phoenix socket.
 *
 * Inbound frames are parsed by wslay (masking, fragmentation, control
 * frames, size limit); a wslay context exists only while a connection has a
 * partial message pending, so idle sockets hold no parser memory. Outbound
 * frames are built by the Phoenix layer once per message (sb_buf_frame) and
 * queued as shared buffers. */
#ifndef SB_WS_H
#define SB_WS_H

#include <stddef.h>
#include <stdint.h>
#include "base/buf.h"
#include "http/http.h"

struct sb_conn;
struct phx_socket;

/* Handles GET /socket/websocket: Phoenix connect (vsn, token: 403 when
 * refused), then the upgrade checks (400), then 101 and the switch to
 * WebSocket mode. Answers (and frees) req in every case. */
void ws_handle_upgrade(sb_req *req);
/* Counts one socket connect (WebSocket upgrade or long-poll session) from
 * the request's client address against SB_RATELIMIT_CONNECT_IP. Returns 0
 * when allowed, else the seconds to wait (answered 429 with Retry-After). */
int ws_connect_rate_limited(const sb_req *req);
/* Feeds received bytes to the connection's WebSocket parser. */
void ws_on_data(struct sb_conn *c, const char *data, size_t len);
/* Sends a close frame with `code` and closes after it is written. */
void ws_close(struct sb_conn *c, int code);
/* Queues a frame; closes the connection with 1013 when its outbound queue
 * is over the cap. Returns 0, or -1 if the connection is (now) closing. */
int ws_send(struct sb_conn *c, sb_buf *b);
/* The connection is closing: detaches the Phoenix socket, frees the parser. */
void ws_conn_gone(struct sb_conn *c);
/* Runs before the connection is flushed: performs a pending 1013 close. */
void ws_before_flush(struct sb_conn *c);
/* Idle timeout check (1000 after the configured idle time). */
void ws_sweep(struct sb_conn *c, uint64_t now);

#endif
