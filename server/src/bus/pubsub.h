/* pubsub.h — topic subscriptions and broadcasts within the node.
 *
 * Each reactor keeps its own topic -> subscribers table, touched only by its
 * own thread. A subscriber is opaque: a pubsub_sub embedded in the
 * subscriber's own struct, tagged with a delivery class (pubsub_class_new)
 * whose function delivers a message to a run of subscribers of that class.
 * A broadcast is held in a reference-counted pubsub_msg, encoded once for
 * every wire format by the encoder (pubsub_set_encoder) when it is made,
 * delivered to the local reactor's subscribers first and posted to every
 * other reactor's queue (and, in a cluster, to the bus). */
#ifndef SB_PUBSUB_H
#define SB_PUBSUB_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/sb_buf.h"
#include "net/reactor.h"

/* Wire encodings a message can carry (what enc[i] means is the encoder's). */
#define PUBSUB_ENCODINGS 2

typedef struct pubsub_msg {
    atomic_uint refs;
    bool binary;         /* a binary broadcast (payload_json is NULL) */
    char *topic;
    char *event;
    char *payload_json;  /* text form of the payload (NULL for binary) */
    sb_buf *enc[PUBSUB_ENCODINGS]; /* the encoder's encodings (NULL: none) */
    const void *from;    /* subscriber owner not to deliver to (broadcast_from), or NULL */
} pubsub_msg;

/* A subscriber, embedded in the subscriber's struct (container_of gets it
 * back). `cls` is set by the subscriber before pubsub_subscribe; the other
 * fields are pubsub's. */
typedef struct pubsub_sub {
    uint32_t idx;        /* slot in the topic's subscriber array */
    uint8_t cls;         /* delivery class (pubsub_class_new) */
    bool subscribed;
} pubsub_sub;

/* Delivers m to subs[0] and to the subscribers after it while they have
 * subs[0]'s class (it may stop earlier), on the subscribers' reactor.
 * Returns how many it handled (1..n). Must not subscribe or unsubscribe on
 * this reactor. One call per run of same-class subscribers of a topic. */
typedef uint32_t (*pubsub_deliver_fn)(pubsub_sub *const *subs, uint32_t n, const pubsub_msg *m);

/* Fills m->enc for a new message (m->binary says which: payload is the
 * JSON text of m->payload_json, or the binary data). Runs on the
 * broadcasting thread, once per message. Returns 0, or -1 when out of
 * memory (the message is then dropped). */
typedef int (*pubsub_encode_fn)(pubsub_msg *m, const void *payload, size_t len);

/* Registers a delivery class (before the reactors start). Returns its id
 * (1..), or -1 when the table is full. */
int pubsub_class_new(pubsub_deliver_fn fn);
/* Sets the encoder (before the reactors start; NULL: no encodings). */
void pubsub_set_encoder(pubsub_encode_fn fn);
/* Registers the per-reactor topic tables with the reactors (before
 * reactor_start_all). Returns 0, or -1 when no reactor slot is left. */
int pubsub_register(void);

/* Adds s (class set) as a subscriber of topic on reactor r (the calling
 * thread's). Returns 0, or -1 when out of memory. */
int pubsub_subscribe(reactor *r, const char *topic, pubsub_sub *s);
/* Removes s from topic's subscribers on r (nothing if not subscribed). */
void pubsub_unsubscribe(reactor *r, const char *topic, pubsub_sub *s);
/* Number of local subscribers of topic on the calling reactor. */
size_t pubsub_local_count(const char *topic);
/* Broadcasts event/payload on topic to every subscriber of the node,
 * except those of owner `from` (NULL: everyone). Thread-safe; payload is
 * not stolen. Returns 0 or -1 when out of memory. */
int pubsub_broadcast(const char *topic, const char *event, json_t *payload, const void *from);
/* Binary broadcast (the encoder decides which subscribers get it). */
int pubsub_broadcast_binary(const char *topic, const char *event, const void *data, size_t len,
                            const void *from);

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
