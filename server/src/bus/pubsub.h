/* pubsub.h — topic subscriptions and broadcasts within the node.
 *
 * Each reactor keeps its own topic -> subscribers table, touched only by its
 * own thread. A broadcast is encoded once per wire format, held in a
 * reference-counted pubsub_msg, delivered to the local reactor's
 * subscribers first and posted to every other reactor's queue (and, in a
 * cluster, to the bus). */
#ifndef SB_PUBSUB_H
#define SB_PUBSUB_H

#include <jansson.h>
#include <stdatomic.h>
#include "base/buf.h"
#include "phoenix/phx_socket.h"

typedef struct pubsub_msg {
    atomic_uint refs;
    char *topic;
    char *event;
    char *payload_json;  /* text form of the payload (NULL for binary) */
    sb_buf *v1, *v2;     /* V1 / V2 text encodings (v1 made only if V1 sockets exist) */
    sb_buf *bin;         /* V2 binary encoding (binary broadcasts) */
    const void *from;    /* socket not to deliver to (broadcast_from), or NULL */
} pubsub_msg;

/* Creates reactor r's table. */
struct pubsub_local *pubsub_local_new(void);
/* Adds / removes ch (on its own reactor) as a subscriber of ch->topic. */
int pubsub_subscribe(phx_channel *ch);
void pubsub_unsubscribe(phx_channel *ch);
/* Number of local subscribers of topic on the calling reactor. */
size_t pubsub_local_count(const char *topic);
/* Broadcasts event/payload on topic to every subscriber of the node,
 * except the socket `from` (NULL: everyone). Thread-safe; payload is not
 * stolen. Returns 0 or -1 when out of memory. */
int pubsub_broadcast(const char *topic, const char *event, json_t *payload, const void *from);
/* Binary broadcast (V2 binary subscribers get kind 2 frames; text-only
 * subscribers get nothing). */
int pubsub_broadcast_binary(const char *topic, const char *event, const void *data, size_t len,
                            const void *from);
/* Counts sockets using the V1 serializer (so V1 encodings are made only
 * when needed). */
extern atomic_int g_v1_sockets;



/* Builds a text broadcast from serialized payload JSON (used by the bus for
 * messages from other nodes). Returns NULL when out of memory. */
pubsub_msg *pubsub_msg_text(const char *topic, const char *event, const char *payload_json,
                            size_t len, const void *from);
/* Binary counterpart of pubsub_msg_text. Returns NULL when out of memory. */
pubsub_msg *pubsub_msg_binary(const char *topic, const char *event, const void *data,
                              size_t len, const void *from);
/* Like pubsub_broadcast, but to this node's subscribers only, never the bus:
 * for what every node produces by itself (the event tailer's durable events,
 * cluster presence diffs made from the bus). Returns 0 or -1. */
int pubsub_broadcast_local(const char *topic, const char *event, json_t *payload,
                           const void *from);
/* Delivers m to every reactor of this node and drops the caller's reference. */
void pubsub_deliver_node(pubsub_msg *m);
#endif
