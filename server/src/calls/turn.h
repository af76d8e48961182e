/* turn.h — the ICE servers (STUN/TURN) a call participant is handed
 * (api.md "Calls": POST /calls, GET /calls/active, GET /turn). The contract
 * between the call signaling (calls_rest.c) and the TURN credentials
 * (turn.c): only this header is shared. */
#ifndef SB_TURN_H
#define SB_TURN_H

#include <jansson.h>

/* Returns a new JSON array (the caller owns the reference, never NULL) of
 * ICE servers for the user with decimal id user_id, each
 * {"urls":[...], "username":..., "credential":...} as in api.md's
 * GET /api/v1/turn (STUN-only entries may omit username/credential). An
 * empty array when no TURN/STUN URIs are configured. Pure: no I/O, callable
 * from any reactor thread. */
json_t *turn_ice_servers(const char *user_id);

#endif
