/* phx_websocket.c — Phoenix sockets over WebSocket (see phx_websocket.h). */
#include "phoenix/phx_websocket.h"

#include <stdlib.h>
#include "http/rest.h"
#include "net/conn.h"
#include "phoenix/phx_connect.h"
#include "phoenix/phx_socket.h"

/* The socket's transport: the WebSocket connection itself. */
static int transport_send(void *t, sb_buf *b) { return ws_send(t, b); }
static void transport_close(void *t, int code) { ws_close(t, code); }
static size_t transport_queued(void *t) { return ((sb_conn *)t)->qbytes; }
static int transport_send_parts(void *t, sb_buf *const *v, size_t n) { return ws_send_parts(t, v, n); }
static const phx_transport_ops g_ops = {transport_send, transport_close, transport_queued,
                                        transport_send_parts};

static void on_message(void *ud, sb_conn *c, bool binary, const char *msg, size_t len)
{
    phx_socket *s = ud;
    phx_msg m;
    if (phx_decode(s->vsn, binary, msg, len, &m) != 0) {
        ws_close(c, 1011);
        return;
    }
    phx_socket_handle(s, &m);
}

static void on_gone(void *ud) { phx_socket_closed(ud); }

const ws_consumer phx_websocket_consumer = {on_message, on_gone};

void phx_websocket_handle(sb_req *req)
{
    if (!phx_connect_origin_ok(req)) {
        http_respond_error(req, 403, "origin_not_allowed", "this page's origin may not open a socket (SB_ALLOWED_ORIGINS)", NULL);
        return;
    }
    int wait = phx_connect_rate_limited(req);
    if (wait) {
        rest_rate_limited(req, wait);
        return;
    }
    char *tok = http_req_query(req, "token", false);
    phx_connect_result cr;
    int rc = phx_connect_run(req, tok, true, &cr);
    free(tok);
    if (rc != 0) {
        http_respond(req, 403, NULL, NULL, 0, "cache-control: max-age=0, private, must-revalidate\r\n");
        return;
    }
    if (ws_upgrade_check(req) != 0) return;
    sb_conn *c = req->conn;
    phx_socket *s = phx_socket_new(c->r, cr.vsn, &cr.claims, &g_ops, c);
    if (!s) {
        http_respond_error(req, 503, "unavailable", "out of memory", NULL);
        return;
    }
    if (ws_upgrade(req, cr.via_subprotocol ? "sec-websocket-protocol: phoenix\r\n" : NULL, s) != 0)
        phx_socket_closed(s);
}
