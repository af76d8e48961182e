/* presence_cluster.c — Phoenix Presence across nodes (see presence_cluster.h).
 * Every hook runs on reactor 0, the bus's reactor, which is the only thread
 * that changes other nodes' rows in presence.c's table. */
#include "presence_cluster.h"

#include <stdlib.h>
#include <string.h>
#include "bus.h"
#include "log.h"
#include "presence.h"
#include "pubsub.h"

#define SYNC_EVENT "sb:presence_sync"
#define PRESENCE_PREFIX "conversation:"

static bool presence_topic(const char *topic)
{
    return strncmp(topic, PRESENCE_PREFIX, sizeof PRESENCE_PREFIX - 1) == 0;
}

/* Adds every phx_ref of state ({key:{metas:[..]}}) to the set refs. */
static void collect_refs(json_t *state, json_t *refs)
{
    const char *key;
    json_t *v;
    json_object_foreach(state, key, v) {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(v, "metas"), i, m) {
            const char *ref = json_string_value(json_object_get(m, "phx_ref"));
            if (ref) json_object_set_new(refs, ref, json_true());
        }
    }
}

/* The presences of a (a state) whose phx_ref is not in b: a new state. */
static json_t *state_minus(json_t *a, json_t *b)
{
    json_t *out = json_object(), *refs = json_object();
    if (b) collect_refs(b, refs);
    const char *key;
    json_t *v;
    json_object_foreach(a, key, v) {
        json_t *metas = json_object_get(v, "metas");
        if (!json_is_array(metas)) continue;
        size_t i;
        json_t *m, *keep = NULL;
        json_array_foreach(metas, i, m) {
            const char *ref = json_string_value(json_object_get(m, "phx_ref"));
            if (!ref || json_object_get(refs, ref)) continue;
            if (!keep) keep = json_array();
            json_array_append(keep, m);
        }
        if (keep) json_object_set_new(out, key, json_pack("{s:o}", "metas", keep));
    }
    json_decref(refs);
    return out;
}

/* Makes node's rows of topic equal to state and pushes the difference to
 * this node's subscribers as a presence_diff. */
static void replace_rows(const char *node, const char *topic, json_t *state)
{
    json_t *by = presence_by_node(topic);
    json_t *old = json_object_get(by, node);
    json_t *joins = state_minus(state, old);
    json_t *leaves = old ? state_minus(old, state) : json_object();
    json_decref(by);
    if (json_object_size(joins) == 0 && json_object_size(leaves) == 0) {
        json_decref(joins);
        json_decref(leaves);
        return;
    }
    json_t *diff = json_pack("{s:o,s:o}", "joins", joins, "leaves", leaves);
    presence_apply_diff(node, topic, diff);
    pubsub_broadcast_local(topic, "presence_diff", diff, NULL);
    json_decref(diff);
}

/* Publishes this node's rows of topic (with a request for the others' when
 * `ask`) to the nodes following it. */
static void send_rows(const char *topic, bool ask)
{
    json_t *by = presence_by_node(topic);
    json_t *mine = json_object_get(by, "");
    json_t *msg = json_pack("{s:O,s:b}", "state", mine ? mine : json_object(), "ask", ask);
    json_decref(by);
    char *pj = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (pj) bus_publish_text(topic, SYNC_EVENT, pj, strlen(pj));
    free(pj);
}

/* A text broadcast from another node: keep its rows current. */
static bool on_remote_text(const char *node, const char *topic, const char *event,
                           const char *payload, size_t len)
{
    bool diff = !strcmp(event, "presence_diff"), sync = !strcmp(event, SYNC_EVENT);
    if (!diff && !sync) return true;
    json_t *j = json_loadb(payload, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return diff; /* a malformed diff still reaches clients as it came */
    }
    if (diff) {
        presence_apply_diff(node, topic, j);
    } else {
        json_t *state = json_object_get(j, "state");
        if (json_is_object(state)) replace_rows(node, topic, state);
        if (json_is_true(json_object_get(j, "ask"))) send_rows(topic, false);
    }
    json_decref(j);
    return diff;
}

static void on_topic_ready(const char *topic)
{
    if (presence_topic(topic)) send_rows(topic, true);
}

/* No local subscriber left: the other nodes' rows would go stale. */
static void on_topic_gone(const char *topic)
{
    if (!presence_topic(topic)) return;
    json_t *by = presence_by_node(topic);
    const char *node;
    json_t *state;
    json_object_foreach(by, node, state) {
        if (!*node) continue;
        replace_rows(node, topic, json_object());
    }
    json_decref(by);
}

static void on_node_down(const char *node) { presence_node_down(node); }

static void sync_one(const char *topic, void *arg)
{
    (void)arg;
    if (presence_topic(topic)) send_rows(topic, true);
}

static void on_node_up(const char *node)
{
    (void)node;
    bus_foreach_topic(sync_one, NULL);
}

static const bus_listener listener = {
    .remote_text = on_remote_text,
    .topic_ready = on_topic_ready,
    .topic_gone = on_topic_gone,
    .node_down = on_node_down,
    .node_up = on_node_up,
};

void presence_cluster_init(void) { bus_set_listener(&listener); }
