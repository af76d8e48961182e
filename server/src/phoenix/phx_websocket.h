/* phx_websocket.h — Phoenix over WebSocket: the /socket/websocket route
 * (connect, then the RFC 6455 upgrade by ws/) and the consumer that hands
 * each WebSocket message to the connection's Phoenix socket. main.c
 * registers both. */
#ifndef SB_PHX_WEBSOCKET_H
#define SB_PHX_WEBSOCKET_H

#include "http/http.h"
#include "ws/ws.h"

/* The route handler for /socket/websocket (any method): the connect limit
 * (429), Phoenix's connect (403 when refused), the upgrade checks (400),
 * then 101 with a Phoenix socket attached. Answers (and frees) req. */
void phx_websocket_handle(sb_req *req);
/* The consumer to give ws_set_consumer: decodes each message with the
 * socket's serializer (1011 when it does not decode) and hands it to the
 * socket; a closed connection closes the socket. */
extern const ws_consumer phx_websocket_consumer;

#endif
