/* phx_fanout.h — Phoenix's encode-once fan-out (the fastlane). A broadcast
 * is encoded once per serializer when the message is made (V2 text, V1 text
 * only while V1 sockets exist, or the V2 binary kind 2 frame), and the same
 * buffer is queued to every subscribed socket of that serializer: no
 * per-subscriber allocation or encode, one delivery call per run of channel
 * subscribers of a topic. */
#ifndef SB_PHX_FANOUT_H
#define SB_PHX_FANOUT_H

#include "bus/pubsub.h"
#include "phoenix/phx_socket.h"

/* Registers the encoder and the channels' delivery class with pubsub
 * (before the reactors start). Returns 0, or -1 when pubsub is full. */
int phx_fanout_init(void);
/* Subscribes ch (joined, on its socket's reactor) to its topic. Returns 0,
 * or -1 when out of memory. */
int phx_fanout_subscribe(phx_channel *ch);
/* Unsubscribes ch from its topic (nothing if it is not subscribed). */
void phx_fanout_unsubscribe(phx_channel *ch);
/* A socket using serializer vsn opened / closed (V1 encodings are made
 * only while V1 sockets exist). Thread-safe. */
void phx_fanout_socket_added(phx_vsn vsn);
void phx_fanout_socket_removed(phx_vsn vsn);
/* The buffer the fan-out sends a socket of serializer vsn for m, or NULL
 * (such sockets get nothing). Index vsn - 1 of m->enc, by construction. */
static inline sb_buf *phx_fanout_buf(phx_vsn vsn, const pubsub_msg *m)
{
    return m->enc[vsn - 1];
}

#endif
