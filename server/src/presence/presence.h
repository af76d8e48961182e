/* presence.h — Phoenix Presence for channel topics, and users' online
 * state.
 *
 * Presence: one node-wide table topic -> presences {key, meta, node}. A
 * presence's meta is {"online_at": <unix s>, "phx_ref": "<unique ref>"}, as
 * Phoenix.Presence makes it. Tracking or untracking one broadcasts a
 * `presence_diff` {"joins":{key:{"metas":[meta]}},"leaves":{}} on the topic
 * through pubsub (so the bus carries it to other nodes), and a newly joined
 * channel is pushed `presence_state` {key:{"metas":[...]}} right after the
 * diff of its own join, the order Phoenix sends them in. Presences of other
 * nodes enter the table through presence_apply_diff (called by the bus with
 * the diffs it receives) and leave with presence_node_down.
 *
 * The presence core knows no socket: a tracked channel is a joiner, a
 * callback its edge gives (ch_presence.c for Phoenix channels), and an
 * online user's connections are opaque pointers.
 *
 * Online state: a user is online while at least one of their user:<id>
 * channels is joined on this node. Going online (0 -> 1) or offline
 * (1 -> 0) stores last_seen_at and pushes `presence`
 * {"user_id","online","last_seen_at"} to the user: topic of the user's
 * audience (sb_presence_audience, migrations/110: direct contacts and
 * co-members of groups up to SB_PRESENCE_GROUP_MAX members, less those
 * sb_presence_hidden hides it from). All functions are thread-safe. */
#ifndef SB_PRESENCE_H
#define SB_PRESENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRESENCE_REF_MAX 24

/* Who gets presence_state after their join diff: the edge's callbacks and
 * its argument (a reference the edge took, released by `state`). */
typedef struct presence_joiner {
    /* Pushes the presence_state payload text st[0..len) to `to` if it is
     * still there (st NULL: out of memory, nothing to push), then releases
     * `to`. Called once, on the reactor thread that tracked. The joiners
     * that get the same state at the same moment (one batch of a topic)
     * share *batch (NULL for the first): what the edge encoded once for
     * all of them (one frame shared by every socket, not a copy each), freed
     * by `done` after the last of them. */
    void (*state)(void *to, const char *st, size_t len, void **batch);
    /* Frees a batch slot `state` filled (NULL: state never fills one). */
    void (*done)(void *batch);
    void *to;
} presence_joiner;

/* Tracks a joiner on topic under `key` (a user id): records the presence,
 * broadcasts its join diff, then calls j->state with the topic's
 * presence_state (j NULL: no state wanted). The presence's phx_ref is
 * written to ref_out (PRESENCE_REF_MAX bytes). Returns 0 (j taken), or -1
 * when out of memory (nothing tracked, j not taken). */
int presence_track(const char *topic, const char *key, const presence_joiner *j,
                   char ref_out[PRESENCE_REF_MAX]);
/* Removes the presence `ref` of topic and broadcasts its leave diff. */
void presence_untrack(const char *topic, const char *ref);
/* The presence_state payload of topic (new reference). */
json_t *presence_state(const char *topic);
/* The presences of topic grouped by node: {"<node>": state, ...}, this
 * node's under "" (new reference). For cluster presence (presence_cluster.c). */
json_t *presence_by_node(const char *topic);
/* Number of presences of topic (all nodes). */
size_t presence_count(const char *topic);

/* Applies a presence_diff received from node `node` (not this one) to the
 * table, without broadcasting it again. Malformed parts are ignored. */
void presence_apply_diff(const char *node, const char *topic, json_t *diff);
/* Drops every presence of node `node` and broadcasts the leave diffs to
 * this node's subscribers. */
void presence_node_down(const char *node);

/* Online state: a connection `conn` of user_id (an opaque identity: the
 * user: channel) was joined (from its after_join) / is going away (from its
 * terminate; a connection never counted is ignored). Runs on the
 * connection's reactor, whose database pool stores last_seen_at. */
void presence_user_up(const char *user_id, const void *conn);
void presence_user_down(const char *user_id, const void *conn);
/* Stores last_seen_at and pushes `presence` to the user's contacts (what a
 * transition does), on the calling reactor's database pool: used by
 * presence_cluster.c for the users of a node that died. */
void presence_announce(const char *user_id, bool on);
/* Calls fn (under the online-state lock: fn must not call back into
 * presence.c) for every user online on this node. */
void presence_local_users(void (*fn)(const char *user_id, void *arg), void *arg);
/* True while user_id has a joined user: channel on this node (this node
 * only, whatever the other nodes say). */
bool presence_user_local(const char *user_id);
/* True while user_id has a joined user: channel on this node or, in a
 * cluster, on another node; sets *last_seen_ms to now then. The shape of accounts_presence_hook. */
bool presence_user_online(const char *user_id, int64_t *last_seen_ms);

#endif
