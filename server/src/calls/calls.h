/* calls.h — the calls domain (api.md "Calls", the call:<call_id> topic,
 * docs/calls.md): registration of its REST routes and channel. */
#ifndef SB_CALLS_H
#define SB_CALLS_H

/* Registers POST /api/v1/calls, GET /api/v1/calls/active, GET /api/v1/calls
 * and the call:<id> channel; reads the call rate limit from g_config. Call
 * once, before the reactors start; call_store_timers_start after. */
void calls_routes(void);

/* Registers the call:<id> channel (ch_call.c). */
void ch_call_register(void);

#endif
