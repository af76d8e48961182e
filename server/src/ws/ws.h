/* ws.h — WebSocket (RFC 6455) connections: the upgrade handshake, frames
 * in and out, and their limits. What the messages mean is the consumer's
 * (phoenix/phx_websocket.c): ws.c knows nothing of what runs on it.
 *
 * Inbound frames are parsed by wslay (masking, fragmentation, control
 * frames, size limit); a wslay context exists only while a connection has a
 * partial message pending, so idle sockets hold no parser memory. Outbound
 * frames are built by the consumer once per message (sb_buf_frame) and
 * queued as shared buffers. */
#ifndef SB_WS_H
#define SB_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/sb_buf.h"
#include "http/http.h"

struct sb_conn;

/* The consumer of WebSocket messages: one per process, set once before
 * the reactors run (ws_set_consumer). `ud` is what ws_upgrade attached. */
typedef struct ws_consumer {
    /* A complete data message (text: valid UTF-8). May close c. */
    void (*on_message)(void *ud, struct sb_conn *c, bool binary, const char *msg, size_t len);
    /* The connection is closing: ud is detached and no longer used. */
    void (*on_gone)(void *ud);
} ws_consumer;

/* Sets the consumer of every upgraded connection's messages. */
void ws_set_consumer(const ws_consumer *cons);
/* Checks that req is a valid upgrade request (Connection: upgrade, GET,
 * Upgrade: websocket, version 13, a key). Returns 0; else answers 400
 * (and frees req) and returns -1. */
int ws_upgrade_check(sb_req *req);
/* Answers a checked upgrade request with 101 (plus `extra_headers`: NULL
 * or CRLF-terminated lines), switches the connection to WebSocket and
 * attaches ud for the consumer; bytes that followed the request are fed on.
 * Frees req. Returns 0, or -1 (out of memory: answered 503 or the
 * connection closed; ud not attached: the caller frees it). */
int ws_upgrade(sb_req *req, const char *extra_headers, void *ud);
/* True while c speaks WebSocket (and has not closed). */
bool ws_active(const struct sb_conn *c);
/* Sends a close frame with `code` and closes after it is written. */
void ws_close(struct sb_conn *c, int code);
/* Queues a frame; closes the connection with 1013 when its outbound queue
 * is over the cap. Returns 0, or -1 if the connection is (now) closing. */
int ws_send(struct sb_conn *c, sb_buf *b);
/* Queues one frame made of n buffers: v[0] framed for the whole message
 * (sb_buf_frame_total), then its cont pieces (shared with other
 * connections). All or nothing: the cap applies to their sum. Returns as
 * ws_send. */
int ws_send_parts(struct sb_conn *c, sb_buf *const *v, size_t n);

#endif
