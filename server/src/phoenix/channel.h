/* channel.h — the channel handler interface, like Phoenix's
 * `channel "user:*", UserChannel`: a small table of callbacks registered by
 * topic prefix. Handlers run on the reactor that owns the socket. */
#ifndef SB_CHANNEL_H
#define SB_CHANNEL_H

#include <jansson.h>
#include <stdbool.h>
#include "phoenix/phx_serial.h"

struct phx_channel;
struct pubsub_msg;

enum {
    PHX_OK = 0,      /* reply {"status":"ok","response":*reply} */
    PHX_ERROR = 1,   /* reply {"status":"error","response":*reply} */
    PHX_NOREPLY = 2, /* no reply (or the handler replied itself) */
    PHX_ASYNC = 3,   /* the handler will answer later (phx_join_done / phx_deferred_reply) */
    PHX_CRASH = 4,   /* the channel fails: phx_error, channel removed */
};

typedef struct channel_handler {
    const char *prefix; /* topics starting with this are routed here */
    /* Decides a join. Returns PHX_OK (joined; *reply the response or NULL for
     * {}), PHX_ERROR (refused; *reply {"reason":..}) or PHX_ASYNC (call
     * phx_join_done later). */
    int (*join)(struct phx_channel *ch, json_t *payload, json_t **reply);
    /* Optional: runs right after the ok join reply is sent (and after the
     * phx_close of a replaced channel), e.g. to push presence_state. */
    void (*after_join)(struct phx_channel *ch);
    /* Handles a client event. Returns PHX_OK / PHX_ERROR with *reply,
     * PHX_NOREPLY, PHX_ASYNC (answer with a phx_deferred) or PHX_CRASH.
     * NULL handle_in: every event crashes the channel. */
    int (*handle_in)(struct phx_channel *ch, phx_msg *m, json_t **reply);
    /* Optional: the channel is going away (leave, rejoin, crash, disconnect);
     * free ch->state here. */
    void (*terminate)(struct phx_channel *ch);
    /* Optional: may a broadcast reach this subscriber? (Phoenix intercept) */
    bool (*handle_out)(struct phx_channel *ch, const struct pubsub_msg *m);
} channel_handler;

/* Registers a handler (at start, before the reactors run). */
void channel_register(const channel_handler *h);
/* The handler whose prefix matches topic, or NULL. */
const channel_handler *channel_find(const char *topic);

#endif
