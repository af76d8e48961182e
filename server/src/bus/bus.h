/* bus.h — the node-to-node bus. A node delivers to its own subscribers
 * first (pubsub.c) and publishes once per event for the other nodes.
 *
 * Two implementations sit behind one table of operations:
 *   - in-process (bus_local.c, the default): no Redis configured, a single
 *     node; publishing reaches nobody because there is nobody, and these
 *     calls cost one indirect call that does nothing;
 *   - Redis pub/sub (bus_redis.c, SB_REDIS_URL set): one publisher and one
 *     subscriber connection per node on reactor 0, see docs/architecture.md.
 *
 * Every function here is thread-safe and never blocks. */
#ifndef SB_BUS_H
#define SB_BUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Envelope kinds (bus_codec.h). */
enum { BUS_TEXT = 1, BUS_BINARY = 2, BUS_CONTROL = 3 };

typedef struct bus_ops {
    void (*topic_added)(const char *topic);
    void (*topic_removed)(const char *topic);
    void (*publish)(const char *topic, int kind, const char *event, const void *payload,
                    size_t len);
    void (*control)(const char *event, const char *payload_json);
    const char *(*status)(void);
} bus_ops;

/* The bus in use: &bus_local_ops until bus_redis_start succeeds. */
extern const bus_ops *g_bus;
extern const bus_ops bus_local_ops;

/* A reactor gained its first local subscriber of topic (subscribe upstream). */
static inline void bus_topic_added(const char *topic) { g_bus->topic_added(topic); }
/* A reactor lost its last local subscriber of topic. */
static inline void bus_topic_removed(const char *topic) { g_bus->topic_removed(topic); }
/* Publishes a text broadcast (payload: JSON text) for the other nodes. */
static inline void bus_publish_text(const char *topic, const char *event, const char *payload_json,
                                    size_t len)
{
    g_bus->publish(topic, BUS_TEXT, event, payload_json, len);
}
/* Publishes a binary broadcast for the other nodes. */
static inline void bus_publish_binary(const char *topic, const char *event, const void *data,
                                      size_t len)
{
    g_bus->publish(topic, BUS_BINARY, event, data, len);
}
/* Sends a control message (event + JSON object text) to every other node. */
static inline void bus_publish_control(const char *event, const char *payload_json)
{
    g_bus->control(event, payload_json);
}
/* "not_configured" (in-process bus), "ok", or "down" (Redis unreachable). */
static inline const char *bus_status(void) { return g_bus->status(); }

/* ---- Redis bus (bus_redis.c) ---- */

/* Hooks for a cluster-wide service (cluster presence). Every hook runs on
 * reactor 0, the bus's reactor; any may be NULL. */
typedef struct bus_listener {
    /* A text broadcast from node `node` for topic, before it is delivered to
     * this node's subscribers. Return false to swallow it (an internal
     * event), true to deliver it. */
    bool (*remote_text)(const char *node, const char *topic, const char *event,
                        const char *payload, size_t len);
    /* Redis confirmed this node's subscription to topic (the first local
     * subscriber appeared, or the bus reconnected): messages published from
     * now on reach us. */
    void (*topic_ready)(const char *topic);
    /* This node no longer follows topic (its last local subscriber left). */
    void (*topic_gone)(const char *topic);
    /* Peer `node` is gone: it said goodbye, stopped sending heartbeats for
     * SB_REDIS_NODE_TIMEOUT_MS, or restarted under the same name. */
    void (*node_down)(const char *node);
    /* Peer `node` is heard from for the first time (or again after it was
     * declared down). */
    void (*node_up)(const char *node);
    /* A control message this file does not handle itself. */
    void (*control)(const char *node, const char *event, json_t *payload);
} bus_listener;

/* Calls fn for every topic this node follows on Redis (subscription
 * confirmed, local subscribers present). Reactor 0 only (listener hooks). */
void bus_foreach_topic(void (*fn)(const char *topic, void *arg), void *arg);
/* Installs the listener (before bus_redis_start). */
void bus_set_listener(const bus_listener *l);
/* Switches to the Redis bus (SB_REDIS_URL), before the reactors start.
 * Returns 0, or -1 for a URL that cannot be parsed (message on stderr). */
int bus_redis_start(void);
/* Once the reactors run: connects on reactor 0 (retried with backoff). */
void bus_redis_run(void);
/* Shutdown begins (any thread): say goodbye to the other nodes (they drop
 * this node's presences at once), close the connections, stop
 * reconnecting. Publications after this are dropped. */
void bus_redis_shutdown(void);
/* True when this process uses the Redis bus. */
bool bus_is_cluster(void);
/* Counters of the Redis bus for /readyz ({node, published, received,
 * dropped, queued_bytes, malformed}), or NULL with the in-process bus. */
json_t *bus_redis_stats(void);
/* True when this node's name is the lowest of the nodes it hears (itself
 * included): the one that acts for the cluster when a node dies. Reactor 0
 * only (listener hooks). */
bool bus_lowest_node(void);
/* This node's name (SB_NODE_ID). */
const char *bus_node_id(void);

#endif
