/* phx_connect.h — Phoenix's socket connect, shared by both transports
 * (phx_websocket.c, longpoll.c): the connect params (vsn, the token from
 * the params or, on a WebSocket, from the Sec-WebSocket-Protocol bearer
 * offer), the per-address connect limit, and the application's connect
 * callback (what Phoenix's UserSocket.connect/3 is), set by main.c. */
#ifndef SB_PHX_CONNECT_H
#define SB_PHX_CONNECT_H

#include <stdbool.h>
#include "base/token.h"
#include "http/http.h"
#include "phoenix/phx_serial.h"

/* The application's connect: given the token the client connected with
 * (NUL-terminated, maybe empty), accepts by filling *claims (the user and
 * session the socket runs as) and returning 0, or refuses with -1. Runs on
 * a reactor thread and must not block. */
typedef int (*phx_connect_fn)(const char *token, token_claims *claims);

/* What an accepted connect gives the transport. */
typedef struct phx_connect_result {
    phx_vsn vsn;           /* the serializer the client asked for */
    bool via_subprotocol;  /* the token came in Sec-WebSocket-Protocol */
    token_claims claims;   /* from the application's connect */
} phx_connect_result;

/* Sets the application's connect. Call once, before the reactors run;
 * without one every connect is refused. */
void phx_connect_set_handler(phx_connect_fn fn);
/* Counts one socket connect (WebSocket upgrade or long-poll session) from
 * the request's client address against SB_RATELIMIT_CONNECT_IP. Returns 0
 * when allowed, else the seconds to wait (the transport answers 429). */
int phx_connect_rate_limited(const sb_req *req);
/* The Origin check (phx_origin.h) of a socket connect under
 * SB_ALLOWED_ORIGINS: the request's Origin against its Host, or against the
 * first X-Forwarded-Host when the TCP peer is a trusted proxy
 * (SB_TRUSTED_PROXIES) and sent one. Returns true when allowed (also when
 * there is no Origin); a refusal is logged at info level. */
bool phx_connect_origin_ok(const sb_req *req);
/* Runs the connect for req: the vsn param (absent or "1.0.0": V1, "2.0.0":
 * V2, else refused), the token (`token`, the transport's token param, or
 * when it is NULL and `subprotocol` is set, the "base64url.bearer.phx.<t>"
 * offer of Sec-WebSocket-Protocol), then the application's connect.
 * Returns 0 (accepted: *out filled) or -1 (refused). */
int phx_connect_run(const sb_req *req, const char *token, bool subprotocol, phx_connect_result *out);

#endif
