/* presence_cluster.h — Phoenix Presence across the nodes of a cluster.
 *
 * presence.c keeps one table per node with every presence of a topic and
 * the node it lives on; this file keeps the other nodes' rows of that table
 * right, through the Redis bus (bus.h):
 *   - a presence_diff broadcast by another node is applied to the table
 *     (presence_apply_diff) before this node's subscribers get it;
 *   - when this node starts following a conversation: topic (its first
 *     viewer here, or the bus reconnected) it publishes its own rows of the
 *     topic with a request; every node following the topic replaces that
 *     node's rows with them and answers with its own rows ("sb:presence_sync",
 *     an internal event no client sees). Differences become presence_diff
 *     pushes to this node's subscribers, so phoenix.js Presence stays exact;
 *   - a node that is gone (goodbye, or heartbeats silent for
 *     SB_REDIS_NODE_TIMEOUT_MS) loses all its rows, with leave diffs;
 *   - a node heard from (again) gets this node's rows of every followed
 *     topic, with a request for its own; if it had been declared down while
 *     alive, its users announced offline are announced online again, once
 *     (see presence_cluster.c);
 *   - a topic this node stops following forgets the other nodes' rows;
 *   - online state: which users are online on which other node, so a user
 *     is online while connected to any node (below).
 * Without Redis this does nothing. */
#ifndef SB_PRESENCE_CLUSTER_H
#define SB_PRESENCE_CLUSTER_H

#include <stdbool.h>

/* Installs the bus listener (before bus_redis_start). */
void presence_cluster_init(void);

/* Online state across nodes (see presence_cluster.c). presence.c calls these
 * on a user's first / last user: channel on this node; they tell the other
 * nodes and return true when the change is one for the whole cluster (the
 * user is online on no other node), i.e. when it must be announced. Without
 * Redis they return true. Thread-safe. */
bool presence_cluster_user_up(const char *user_id);
bool presence_cluster_user_down(const char *user_id);
/* True while user_id is online on another node. Thread-safe. */
bool presence_cluster_user_remote(const char *user_id);

#endif
