/* presence_cluster.c — Phoenix Presence across nodes (see presence_cluster.h).
 * Every hook runs on reactor 0, the bus's reactor, which is the only thread
 * that changes other nodes' rows in presence.c's table. */
#include "presence/presence_cluster.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "bus/bus.h"
#include "base/log.h"
#include "presence/presence.h"
#include "bus/pubsub.h"

#define SYNC_EVENT "sb:presence_sync"
#define PRESENCE_PREFIX "conversation:"

/* Topics with Phoenix Presence (conversation:<id>). */
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
    json_t *mine = json_object_get(by, ""), *none = mine ? NULL : json_object();
    json_t *msg = json_pack("{s:O,s:b}", "state", mine ? mine : none, "ask", ask);
    json_decref(none);
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

/* Newly followed (or resubscribed): our rows out, theirs requested. */
static void on_topic_ready(const char *topic)
{
    if (presence_topic(topic)) send_rows(topic, true);
}

/* No local subscriber left: the other nodes' rows would go stale. */
static void on_topic_gone(const char *topic)
{
    if (!presence_topic(topic)) return;
    json_t *by = presence_by_node(topic), *none = json_object();
    const char *node;
    json_t *state;
    json_object_foreach(by, node, state) {
        if (!*node) continue;
        replace_rows(node, topic, none);
    }
    json_decref(none);
    json_decref(by);
}



/* ---- online state across nodes ----
 * Each node tells the others when a user's first user: channel opens on it
 * ("uon") and when its last one closes ("uoff"), and sends the whole list
 * to a node heard from for the first time ("usync"). u_remote holds, for
 * each user online elsewhere, the nodes they are on. A transition is
 * announced (last_seen_at, `presence` to contacts) only when it is one for
 * the cluster: online on no other node. The users of a node that died are
 * announced offline by one survivor, the one with the lowest name. Two
 * nodes changing the same user in the same instant may both announce, or
 * neither; the next transition sets it right.
 *
 * A node declared down may have been alive (its loop stalled, a brief
 * partition): when it is heard again, the usync exchange of on_node_up
 * restores its users in u_remote, and the survivor that announced them
 * offline (it remembers them in u_told, per node) announces online again
 * those of them the node still has, once each, unless they came online
 * elsewhere meanwhile (that node announced it). A user the node reports
 * itself (uon / uoff) meanwhile is its own announcement: forgotten here. */

static pthread_mutex_t u_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *u_remote; /* user id -> {node: true} */
static json_t *u_told;   /* node -> {user id: true}: announced offline by us */

#define USYNC_CHUNK 2000
#define U_TOLD_NODES 8 /* nodes whose announced-offline users are remembered */

/* See presence_cluster.h. */
bool presence_cluster_user_remote(const char *user_id)
{
    if (!bus_is_cluster()) return false;
    pthread_mutex_lock(&u_mu);
    json_t *e = u_remote ? json_object_get(u_remote, user_id) : NULL;
    bool on = e && json_object_size(e) > 0;
    pthread_mutex_unlock(&u_mu);
    return on;
}

/* Tells the other nodes about one user ("uon" / "uoff"). */
static void publish_user(const char *event, const char *user_id)
{
    json_t *j = json_pack("{s:s}", "u", user_id);
    char *pj = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (pj) bus_publish_control(event, pj);
    free(pj);
}

/* See presence_cluster.h. */
bool presence_cluster_user_up(const char *user_id)
{
    if (!bus_is_cluster()) return true;
    publish_user("uon", user_id);
    return !presence_cluster_user_remote(user_id);
}

/* See presence_cluster.h. */
bool presence_cluster_user_down(const char *user_id)
{
    if (!bus_is_cluster()) return true;
    publish_user("uoff", user_id);
    return !presence_cluster_user_remote(user_id);
}

/* Marks user_id online (or not) on node, under u_mu. */
static void mark(const char *user_id, const char *node, bool on)
{
    if (!u_remote && !(u_remote = json_object())) return;
    json_t *e = json_object_get(u_remote, user_id);
    if (on) {
        if (!e) {
            e = json_object();
            if (json_object_set_new(u_remote, user_id, e) != 0) return;
        }
        json_object_set_new(e, node, json_true());
    } else if (e) {
        json_object_del(e, node);
        if (json_object_size(e) == 0) json_object_del(u_remote, user_id);
    }
}

/* Removes node from every user; returns the users it was the last node of
 * (new reference), under u_mu. */
static json_t *forget_node(const char *node)
{
    json_t *gone = json_array();
    if (!u_remote) return gone;
    const char *uid;
    json_t *e, *tmp;
    json_object_foreach_safe(u_remote, tmp, uid, e) {
        if (!json_object_get(e, node)) continue;
        json_object_del(e, node);
        if (json_object_size(e) == 0) {
            json_array_append_new(gone, json_string(uid));
            json_object_del(u_remote, uid);
        }
    }
    return gone;
}

/* presence_local_users callback: appends to a JSON array. */
static void collect_user(const char *user_id, void *arg) { json_array_append_new(arg, json_string(user_id)); }

/* Sends this node's online users to the others, in chunks. */
static void send_users(bool ask)
{
    json_t *all = json_array();
    presence_local_users(collect_user, all);
    size_t n = json_array_size(all);
    for (size_t i = 0; i == 0 || i < n; i += USYNC_CHUNK) {
        json_t *part = json_array();
        for (size_t k = i; k < n && k < i + USYNC_CHUNK; k++) json_array_append(part, json_array_get(all, k));
        json_t *msg = json_pack("{s:o,s:b,s:b,s:b}", "users", part, "reset", i == 0, "ask", ask && i == 0,
                                "last", i + USYNC_CHUNK >= n);
        char *pj = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
        json_decref(msg);
        if (pj) bus_publish_control("usync", pj);
        free(pj);
    }
    json_decref(all);
}

/* Under u_mu: the users of `users` (a JSON array) that this node announced
 * offline for node and that are online on no other node besides it (before
 * they are marked on it), forgotten from u_told (new reference). */
static json_t *take_told(const char *node, json_t *users)
{
    json_t *back = json_array();
    json_t *told = u_told ? json_object_get(u_told, node) : NULL;
    if (!told) return back;
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u) {
        const char *uid = json_string_value(u);
        if (!uid || !json_object_get(told, uid)) continue;
        json_object_del(told, uid);
        json_t *e = u_remote ? json_object_get(u_remote, uid) : NULL;
        bool elsewhere = false;
        const char *n;
        json_t *v;
        json_object_foreach(e, n, v) if (strcmp(n, node) != 0) elsewhere = true;
        if (!elsewhere) json_array_append_new(back, json_string(uid));
    }
    if (json_object_size(told) == 0) json_object_del(u_told, node);
    return back;
}

/* Online-state control messages from another node (uon, uoff, usync). */
static void on_control(const char *node, const char *event, json_t *payload)
{
    if (!strcmp(event, "uon") || !strcmp(event, "uoff")) {
        const char *uid = json_string_value(json_object_get(payload, "u"));
        if (!uid) return;
        pthread_mutex_lock(&u_mu);
        mark(uid, node, event[1] == 'o' && event[2] == 'n');
        json_t *told = u_told ? json_object_get(u_told, node) : NULL;
        if (told) json_object_del(told, uid); /* its own transition, announced by it */
        pthread_mutex_unlock(&u_mu);
    } else if (!strcmp(event, "usync")) {
        json_t *users = json_object_get(payload, "users");
        if (!json_is_array(users)) users = NULL;
        pthread_mutex_lock(&u_mu);
        if (json_is_true(json_object_get(payload, "reset"))) json_decref(forget_node(node));
        json_t *back = users ? take_told(node, users) : json_array();
        size_t i;
        json_t *u;
        json_array_foreach(users, i, u) if (json_is_string(u)) mark(json_string_value(u), node, true);
        /* the node's whole list is in: the rest of those we announced
         * offline for it are gone indeed */
        if (u_told && json_is_true(json_object_get(payload, "last"))) json_object_del(u_told, node);
        pthread_mutex_unlock(&u_mu);
        json_array_foreach(back, i, u) {
            const char *uid = json_string_value(u);
            if (!presence_user_local(uid)) presence_announce(uid, true);
        }
        json_decref(back);
        if (json_is_true(json_object_get(payload, "ask"))) send_users(false);
    }
}

/* A dead node: its viewers leave; its online users go offline, announced
 * by the lowest-named survivor, unless this node's own bus is down (then it
 * cannot tell a dead node from its own isolation: it only forgets). */
static void on_node_down(const char *node)
{
    presence_node_down(node);
    pthread_mutex_lock(&u_mu);
    json_t *gone = forget_node(node);
    pthread_mutex_unlock(&u_mu);
    if (!strcmp(bus_status(), "ok") && bus_lowest_node()) {
        json_t *told = json_object();
        size_t i;
        json_t *u;
        json_array_foreach(gone, i, u) {
            const char *uid = json_string_value(u);
            if (presence_user_online(uid, NULL)) continue;
            presence_announce(uid, false);
            json_object_set_new(told, uid, json_true());
        }
        /* remembered until the node is heard again (take_told), for the
         * last U_TOLD_NODES nodes declared down (a node that is really
         * gone never sends its list: its set goes with the oldest) */
        pthread_mutex_lock(&u_mu);
        if (!u_told) u_told = json_object();
        while (u_told && !json_object_get(u_told, node) && json_object_size(u_told) >= U_TOLD_NODES) {
            /* insertion order: the first is the oldest */
            char *old = strdup(json_object_iter_key(json_object_iter(u_told)));
            if (!old) break;
            json_object_del(u_told, old);
            free(old);
        }
        json_t *prev = u_told ? json_object_get(u_told, node) : NULL;
        if (prev) json_object_update(prev, told);
        else if (u_told && json_object_size(told)) json_object_set(u_told, node, told);
        pthread_mutex_unlock(&u_mu);
        json_decref(told);
    }
    json_decref(gone);
}

/* bus_foreach_topic callback: rows and request for one topic. */
static void sync_one(const char *topic, void *arg)
{
    (void)arg;
    if (presence_topic(topic)) send_rows(topic, true);
}

/* A node heard from (again): it gets our rows and online users, and is
 * asked for its own. */
static void on_node_up(const char *node)
{
    (void)node;
    bus_foreach_topic(sync_one, NULL);
    send_users(true);
}

static const bus_listener listener = {
    .remote_text = on_remote_text,
    .topic_ready = on_topic_ready,
    .topic_gone = on_topic_gone,
    .node_down = on_node_down,
    .node_up = on_node_up,
    .control = on_control,
};

/* See presence_cluster.h. */
void presence_cluster_init(void) { bus_set_listener(&listener); }
