/* bus_redis.c — the node-to-node bus over Redis pub/sub (SB_REDIS_URL).
 *
 * One publisher and one subscriber connection per node, both hiredis async
 * contexts on reactor 0's libuv loop (hiredis's adapters/libuv.h). Every
 * other thread reaches them through one inbox: a mutex-guarded list drained
 * by a single task posted to reactor 0 when the list goes from empty to
 * non-empty (reactor_post), so a burst of publications costs one wake-up.
 *
 *   publish:   any reactor formats `PUBLISH <prefix>t:<topic> <envelope>`
 *              (bus_codec.h, stamped with this node's name) and queues it;
 *              reactor 0 hands it to hiredis. Every queued, held or
 *              unanswered byte counts against SB_REDIS_QUEUE_MAX; beyond it
 *              publications are dropped and counted (logged at most every
 *              5 s), never blocking a reactor. While the publisher is
 *              down they are held (FIFO, at most SB_REDIS_QUEUE_MS old).
 *   subscribe: pubsub.c reports a reactor's first / last local subscriber
 *              of a topic; reactor 0 keeps a node-wide count per topic and
 *              subscribes when it goes 0 -> 1, unsubscribes at 1 -> 0, in
 *              batched SUBSCRIBE / UNSUBSCRIBE commands. A topic never has
 *              a SUBSCRIBE and an UNSUBSCRIBE in flight at once (hiredis
 *              0.14 would lose its callback).
 *   receive:   envelopes from other nodes go to the listener (cluster
 *              presence), then to this node's subscribers (pubsub); a
 *              node's own publications are ignored.
 *   control:   <prefix>ctl carries heartbeats ("hb", every
 *              SB_REDIS_HEARTBEAT_MS), goodbyes ("bye"), control events
 *              (bus_control.h: session revocations, user disconnects)
 *              and the listener's messages. A peer silent for
 *              SB_REDIS_NODE_TIMEOUT_MS is declared down.
 *   failure:   a lost connection is retried with exponential backoff
 *              (100 ms doubling to SB_REDIS_RETRY_MAX_MS, with jitter);
 *              the subscriber resubscribes to everything on reconnect. */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bus/bus.h"
#include "bus/bus_codec.h"
#include "bus/bus_control.h"
#include "base/config.h"
#include "base/log.h"
#include "bus/pubsub.h"
#include "net/reactor.h"
#include "base/util.h"
#include "base/metrics.h"

enum { OP_PUB = 0, OP_ADD = 1, OP_DEL = 2 };
enum { R_NONE = 0, R_SUBSCRIBING, R_SUBSCRIBED, R_UNSUBSCRIBING };
enum { SUB_BATCH = 256, MAX_PEERS = 4096, CONNECT_TIMEOUT_MS = 1000 };

typedef struct bus_op {
    struct bus_op *next;
    uint64_t at_ms; /* when it was queued (monotonic) */
    uint64_t at_ns; /* the same, uv_hrtime (sb_redis_publish_seconds) */
    size_t len;
    uint8_t type;
    char *data;     /* OP_PUB: the RESP command; OP_ADD / OP_DEL: the topic */
} bus_op;

typedef struct topic_ent {
    struct topic_ent *next;  /* hash chain */
    struct topic_ent *dnext; /* dirty list */
    uint64_t hash;
    uint32_t count;          /* reactors with local subscribers */
    uint8_t rstate;          /* R_* on the subscriber connection */
    bool dirty;
    char topic[];
} topic_ent;

typedef struct peer {
    struct peer *next;
    uint64_t last_ms;
    char boot[40];
    char node[];
} peer;

static struct {
    /* any thread */
    pthread_mutex_t mu;
    bus_op *head, *tail;     /* inbox */
    bool drain_posted, running;
    atomic_size_t queued;    /* bytes queued, held or awaiting Redis's reply */
    atomic_uint_fast64_t published, received, dropped, own, bad;
    atomic_int up;           /* 1 when both connections work */
    bus_redis_url url;
    char prefix[64], ctl[80];
    size_t prefix_t_len;     /* strlen(prefix) + 2 ("t:") */
    char boot[40];           /* random per process: tells a restart apart */
    const bus_listener *listener;
    /* reactor 0 only */
    reactor *r;
    redisAsyncContext *pub, *sub;
    bool pub_up, sub_up, ctl_ready, stopping, closed;
    uv_timer_t pub_retry, sub_retry, tick;
    uint64_t pub_backoff, sub_backoff;
    uint64_t pub_since, sub_since;   /* connect started (connect timeout) */
    uint64_t pub_last, sub_last;     /* last reply / message (liveness) */
    uint64_t pub_inflight;           /* PUBLISH commands awaiting a reply */
    bus_op *hold_head, *hold_tail;
    topic_ent **tb;
    size_t tnb, tcount;
    topic_ent *dirty;
    peer *peers;
    size_t npeers;
    uint64_t dropped_logged;
    uint64_t last_tick;              /* when on_tick last ran (stall check) */
    bool was_up;
} B = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Monotonic milliseconds (any thread). */
static uint64_t mono_ms(void) { return uv_hrtime() / 1000000u; }

/* FNV-1a of a NUL-terminated string. */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

/* Publishes "up" for /readyz (both connections and the control channel
 * work) and logs each change. */
static void update_status(void)
{
    bool up = B.pub_up && B.sub_up && B.ctl_ready;
    atomic_store(&B.up, up ? 1 : 0);
    if (up != B.was_up) {
        B.was_up = up;
        log_msg(up ? LOG_INFO : LOG_WARN, up ? "redis_bus_up" : "redis_bus_down", "node",
                json_string(g_config.node_id), NULL);
    }
}

/* ---- inbox (any thread) ---- */

static void drain_task(void *arg);

/* Appends op to the inbox and makes sure a drain is posted to reactor 0. */
static void inbox_push(bus_op *op)
{
    bool post = false;
    pthread_mutex_lock(&B.mu);
    if (B.tail) B.tail->next = op;
    else B.head = op;
    B.tail = op;
    if (B.running && !B.drain_posted) post = B.drain_posted = true;
    pthread_mutex_unlock(&B.mu);
    if (post && reactor_post(&reactor_all[0], drain_task, NULL) != 0) {
        pthread_mutex_lock(&B.mu);
        B.drain_posted = false; /* the heartbeat tick drains it */
        pthread_mutex_unlock(&B.mu);
    }
}

/* Frees an op and its data. */
static void op_free(bus_op *op)
{
    free(op->data);
    free(op);
}

/* Queues a formatted PUBLISH unless the byte budget is spent (then it is
 * dropped and counted). Takes cmd. */
static void enqueue_pub(char *cmd, size_t len)
{
    size_t prev = atomic_fetch_add(&B.queued, len);
    if (prev + len > g_config.redis_queue_max) {
        atomic_fetch_sub(&B.queued, len);
        atomic_fetch_add(&B.dropped, 1);
        free(cmd);
        return;
    }
    bus_op *op = malloc(sizeof *op);
    if (!op) {
        atomic_fetch_sub(&B.queued, len);
        atomic_fetch_add(&B.dropped, 1);
        free(cmd);
        return;
    }
    op->next = NULL;
    op->at_ms = mono_ms();
    op->at_ns = uv_hrtime();
    op->len = len;
    op->type = OP_PUB;
    op->data = cmd;
    inbox_push(op);
}

/* bus_ops.publish: formats the PUBLISH here, on the caller's thread. */
static void redis_publish(const char *topic, int kind, const char *event, const void *payload,
                          size_t len)
{
    size_t n;
    char *cmd = bus_resp_publish(B.prefix, "t:", topic, kind, g_config.node_id, event, payload, len, &n);
    if (!cmd) {
        atomic_fetch_add(&B.dropped, 1);
        return;
    }
    enqueue_pub(cmd, n);
}

/* bus_ops.control: a control message on <prefix>ctl. */
static void redis_control(const char *event, const char *payload_json)
{
    size_t n;
    char *cmd = bus_resp_publish(B.prefix, "ctl", "", BUS_CONTROL, g_config.node_id, event,
                                 payload_json, strlen(payload_json), &n);
    if (!cmd) {
        atomic_fetch_add(&B.dropped, 1);
        return;
    }
    enqueue_pub(cmd, n);
}

/* Queues a topic's demand change (OP_ADD / OP_DEL) for reactor 0. */
static void topic_op(const char *topic, uint8_t type)
{
    bus_op *op = calloc(1, sizeof *op);
    char *t = strdup(topic);
    if (!op || !t) {
        /* out of memory: the subscription state of this topic may go stale
         * until its next change; nothing better to do */
        free(op);
        free(t);
        log_msg(LOG_ERROR, "redis_bus_oom", "topic", json_string(topic), NULL);
        return;
    }
    op->type = type;
    op->data = t;
    inbox_push(op);
}

static void redis_topic_added(const char *topic) { topic_op(topic, OP_ADD); }
static void redis_topic_removed(const char *topic) { topic_op(topic, OP_DEL); }
static const char *redis_status(void) { return atomic_load(&B.up) ? "ok" : "down"; }

static const bus_ops bus_redis_ops = {
    .topic_added = redis_topic_added,
    .topic_removed = redis_topic_removed,
    .publish = redis_publish,
    .control = redis_control,
    .status = redis_status,
};

/* ---- topics (reactor 0) ---- */

static topic_ent *topic_find(const char *topic, uint64_t h)
{
    if (!B.tb) return NULL;
    for (topic_ent *e = B.tb[h & (B.tnb - 1)]; e; e = e->next)
        if (e->hash == h && !strcmp(e->topic, topic)) return e;
    return NULL;
}

/* Doubles the topic table (keeps the old one when out of memory). */
static void topics_grow(void)
{
    size_t nnb = B.tnb * 2;
    topic_ent **nb = calloc(nnb, sizeof *nb);
    if (!nb) return;
    for (size_t i = 0; i < B.tnb; i++)
        for (topic_ent *e = B.tb[i], *next; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & (nnb - 1)];
            nb[e->hash & (nnb - 1)] = e;
        }
    free(B.tb);
    B.tb = nb;
    B.tnb = nnb;
}

/* The topic's entry, created if needed; NULL when out of memory. */
static topic_ent *topic_get(const char *topic)
{
    uint64_t h = hash_str(topic);
    topic_ent *e = topic_find(topic, h);
    if (e) return e;
    if (!B.tb) {
        B.tb = calloc(1024, sizeof *B.tb);
        if (!B.tb) return NULL;
        B.tnb = 1024;
    }
    size_t l = strlen(topic);
    e = calloc(1, sizeof *e + l + 1);
    if (!e) return NULL;
    memcpy(e->topic, topic, l + 1);
    e->hash = h;
    e->next = B.tb[h & (B.tnb - 1)];
    B.tb[h & (B.tnb - 1)] = e;
    if (++B.tcount > B.tnb) topics_grow();
    return e;
}

/* Removes e from the table and frees it. */
static void topic_unlink_free(topic_ent *e)
{
    topic_ent **pp = &B.tb[e->hash & (B.tnb - 1)];
    while (*pp && *pp != e) pp = &(*pp)->next;
    if (*pp) *pp = e->next;
    B.tcount--;
    free(e);
}

/* Queues e for the next reconcile (once). */
static void mark_dirty(topic_ent *e)
{
    if (e->dirty) return;
    e->dirty = true;
    e->dnext = B.dirty;
    B.dirty = e;
}

static void sub_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Sends one SUBSCRIBE or UNSUBSCRIBE for chans[0..n) and frees them. */
static void send_batch(const char *cmd, char **chans, int n)
{
    if (n == 0) return;
    const char *argv[SUB_BATCH + 1];
    size_t lens[SUB_BATCH + 1];
    argv[0] = cmd;
    lens[0] = strlen(cmd);
    for (int i = 0; i < n; i++) {
        argv[i + 1] = chans[i];
        lens[i + 1] = strlen(chans[i]);
    }
    if (B.sub) redisAsyncCommandArgv(B.sub, sub_reply, NULL, n + 1, argv, lens);
    for (int i = 0; i < n; i++) free(chans[i]);
}

/* "<prefix>t:<topic>", malloc'd, or NULL. */
static char *channel_of(const char *topic)
{
    size_t pl = strlen(B.prefix), tl = strlen(topic);
    char *c = malloc(pl + 2 + tl + 1);
    if (!c) return NULL;
    memcpy(c, B.prefix, pl);
    memcpy(c + pl, "t:", 2);
    memcpy(c + pl + 2, topic, tl + 1);
    return c;
}

/* Brings Redis's subscriptions in line with local demand for every dirty
 * topic, in batches; frees topics nobody wants any more. */
static void reconcile(void)
{
    char *subs[SUB_BATCH], *unsubs[SUB_BATCH];
    int ns = 0, nu = 0;
    while (B.dirty) {
        topic_ent *e = B.dirty;
        B.dirty = e->dnext;
        e->dirty = false;
        if (e->count > 0) {
            if (e->rstate == R_NONE && B.sub_up) {
                char *c = channel_of(e->topic);
                if (!c) continue;
                e->rstate = R_SUBSCRIBING;
                subs[ns++] = c;
                if (ns == SUB_BATCH) {
                    send_batch("SUBSCRIBE", subs, ns);
                    ns = 0;
                }
            }
        } else if (e->rstate == R_SUBSCRIBED && B.sub_up) {
            char *c = channel_of(e->topic);
            if (!c) continue;
            e->rstate = R_UNSUBSCRIBING;
            unsubs[nu++] = c;
            if (nu == SUB_BATCH) {
                send_batch("UNSUBSCRIBE", unsubs, nu);
                nu = 0;
            }
        } else if (e->rstate == R_NONE) {
            topic_unlink_free(e);
        }
    }
    send_batch("SUBSCRIBE", subs, ns);
    send_batch("UNSUBSCRIBE", unsubs, nu);
}

/* ---- publishing (reactor 0) ---- */

/* metrics (docs/operations.md) */
static metrics_hist m_pub_latency;
static const int64_t k_pub_bounds[] = {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};
static double pub_count(void *arg) { return (double)atomic_load((atomic_uint_fast64_t *)arg); }
__attribute__((constructor)) static void bus_redis_metrics(void)
{
    metrics_histogram(&m_pub_latency, "sb_redis_publish_seconds",
                      "Redis PUBLISH latency, from queueing on any thread to Redis's reply.", NULL, k_pub_bounds,
                      (int)(sizeof k_pub_bounds / sizeof k_pub_bounds[0]), 1e6);
    metrics_counter_fn("sb_redis_publications_total", "Publications Redis acknowledged.", NULL, pub_count, &B.published);
    metrics_counter_fn("sb_redis_publications_dropped_total",
                       "Publications dropped: queue budget spent, held too long while Redis was down, or refused.",
                       NULL, pub_count, &B.dropped);
    metrics_counter_fn("sb_redis_messages_received_total", "Messages received from other nodes over Redis.", NULL,
                       pub_count, &B.received);
}

/* A publication's reply context: its length (high bits) and the low 28
 * bits of its queueing time in microseconds (wraps after 268 s). */
#define PUB_US_BITS 28
static void *pub_priv(const bus_op *op)
{
    uint64_t us = (op->at_ns / 1000) & ((1u << PUB_US_BITS) - 1);
    return (void *)(uintptr_t)(((uint64_t)op->len << PUB_US_BITS) | us);
}

static void pub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    uint64_t pv = (uint64_t)(uintptr_t)priv;
    uint64_t mask = (1u << PUB_US_BITS) - 1;
    metrics_observe(&m_pub_latency, (int64_t)(((uv_hrtime() / 1000) - (pv & mask)) & mask));
    priv = (void *)(uintptr_t)(pv >> PUB_US_BITS);
    atomic_fetch_sub(&B.queued, (size_t)(uintptr_t)priv);
    if (B.pub_inflight) B.pub_inflight--;
    redisReply *r = reply;
    if (!r) return; /* connection gone before the answer: maybe lost */
    B.pub_last = mono_ms();
    if (r->type == REDIS_REPLY_ERROR) {
        atomic_fetch_add(&B.dropped, 1);
        static uint64_t last;
        uint64_t now = mono_ms();
        if (now - last > 1000) {
            last = now;
            log_msg(LOG_WARN, "redis_publish_error", "error", json_string(r->str), NULL);
        }
    } else {
        atomic_fetch_add(&B.published, 1);
        B.pub_backoff = 0;
    }
}

/* Hands op to hiredis (or drops it when hiredis refuses); frees op. */
static void pub_send(bus_op *op)
{
    if (redisAsyncFormattedCommand(B.pub, pub_reply, pub_priv(op), op->data,
                                   op->len) != REDIS_OK) {
        atomic_fetch_sub(&B.queued, op->len);
        atomic_fetch_add(&B.dropped, 1);
    } else if (B.pub_inflight++ == 0) {
        B.pub_last = mono_ms(); /* the reply clock starts with the first one pending */
    }
    op_free(op);
}

/* Drops held publications older than SB_REDIS_QUEUE_MS (counted). */
static void hold_drop_old(uint64_t now)
{
    while (B.hold_head && now - B.hold_head->at_ms > g_config.redis_queue_ms) {
        bus_op *op = B.hold_head;
        B.hold_head = op->next;
        if (!B.hold_head) B.hold_tail = NULL;
        atomic_fetch_sub(&B.queued, op->len);
        atomic_fetch_add(&B.dropped, 1);
        op_free(op);
    }
}

/* Sends what was held while the publisher was down, oldest first. */
static void hold_flush(void)
{
    hold_drop_old(mono_ms());
    while (B.hold_head && B.pub_up) {
        bus_op *op = B.hold_head;
        B.hold_head = op->next;
        if (!B.hold_head) B.hold_tail = NULL;
        pub_send(op);
    }
}

/* Sends op now, or holds it behind older held ones / while down; takes op. */
static void pub_or_hold(bus_op *op)
{
    op->next = NULL;
    if (B.closed) {
        atomic_fetch_sub(&B.queued, op->len);
        op_free(op);
        return;
    }
    if (B.pub_up && !B.hold_head) {
        pub_send(op);
        return;
    }
    if (B.hold_tail) B.hold_tail->next = op;
    else B.hold_head = op;
    B.hold_tail = op;
}

/* Publishes a control message from reactor 0 itself. */
static void control_now(const char *event, json_t *payload)
{
    char *pj = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    if (!pj) return;
    size_t n;
    char *cmd = bus_resp_publish(B.prefix, "ctl", "", BUS_CONTROL, g_config.node_id, event, pj,
                                 strlen(pj), &n);
    free(pj);
    if (!cmd) return;
    size_t prev = atomic_fetch_add(&B.queued, n);
    if (prev + n > g_config.redis_queue_max) {
        atomic_fetch_sub(&B.queued, n);
        atomic_fetch_add(&B.dropped, 1);
        free(cmd);
        return;
    }
    bus_op *op = calloc(1, sizeof *op);
    if (!op) {
        atomic_fetch_sub(&B.queued, n);
        free(cmd);
        return;
    }
    op->at_ms = mono_ms();
    op->len = n;
    op->data = cmd;
    pub_or_hold(op);
}

/* ---- the inbox drain (reactor 0) ---- */

/* On reactor 0: applies every queued op in order, then reconciles the
 * subscriptions. */
static void drain_task(void *arg)
{
    pthread_mutex_lock(&B.mu);
    bus_op *op = B.head;
    B.head = B.tail = NULL;
    B.drain_posted = false;
    pthread_mutex_unlock(&B.mu);
    while (op) {
        bus_op *next = op->next;
        if (op->type == OP_PUB) {
            pub_or_hold(op);
        } else if (B.closed) {
            op_free(op);
        } else {
            topic_ent *e = op->type == OP_ADD ? topic_get(op->data)
                                              : topic_find(op->data, hash_str(op->data));
            if (e && op->type == OP_ADD) {
                if (e->count++ == 0) {
                    mark_dirty(e);
                    /* followed again before the UNSUBSCRIBE went out: no new
                     * subscription will confirm it, so say it is ready now */
                    if (e->rstate == R_SUBSCRIBED && B.listener && B.listener->topic_ready)
                        B.listener->topic_ready(e->topic);
                }
            } else if (e && e->count > 0) {
                if (--e->count == 0) {
                    mark_dirty(e);
                    if (B.listener && B.listener->topic_gone) B.listener->topic_gone(e->topic);
                }
            }
            op_free(op);
        }
        op = next;
    }
    if (!B.closed) reconcile();
}

/* ---- peers (reactor 0) ---- */

static peer *peer_find(const char *node)
{
    for (peer *p = B.peers; p; p = p->next)
        if (!strcmp(p->node, node)) return p;
    return NULL;
}

/* Forgets peer p. */
static void peer_remove(peer *p)
{
    peer **pp = &B.peers;
    while (*pp != p) pp = &(*pp)->next;
    *pp = p->next;
    B.npeers--;
    free(p);
}

/* Logs a peer's end and tells the listener. */
static void node_down(const char *node, const char *why)
{
    log_msg(LOG_INFO, "redis_peer_down", "peer", json_string(node), "reason", json_string(why),
            NULL);
    if (B.listener && B.listener->node_down) B.listener->node_down(node);
}

/* Notes that node spoke; boot (may be NULL) tells a restart apart. */
static void peer_seen(const char *node, const char *boot)
{
    peer *p = peer_find(node);
    if (p && boot && p->boot[0] && strcmp(p->boot, boot) != 0) {
        node_down(node, "restarted");
        snprintf(p->boot, sizeof p->boot, "%s", boot);
    }
    if (!p) {
        if (B.npeers >= MAX_PEERS) return;
        size_t l = strlen(node);
        p = calloc(1, sizeof *p + l + 1);
        if (!p) return;
        memcpy(p->node, node, l + 1);
        p->next = B.peers;
        B.peers = p;
        B.npeers++;
        log_msg(LOG_INFO, "redis_peer_up", "peer", json_string(node), NULL);
        p->last_ms = mono_ms();
        if (B.listener && B.listener->node_up) B.listener->node_up(node);
    }
    if (boot && !p->boot[0]) snprintf(p->boot, sizeof p->boot, "%s", boot);
    p->last_ms = mono_ms();
}

/* ---- receiving (reactor 0) ---- */

static void handle_control(const char *node, const char *event, const char *payload, size_t len)
{
    json_t *j = json_loadb(payload, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        atomic_fetch_add(&B.bad, 1);
        return;
    }
    if (!strcmp(event, "hb")) {
        peer_seen(node, json_string_value(json_object_get(j, "boot")));
    } else if (!strcmp(event, "bye")) {
        peer *p = peer_find(node);
        if (p) peer_remove(p);
        node_down(node, "goodbye");
    } else {
        peer_seen(node, NULL);
        /* a control event (a logout on another node: its sockets here are
         * closed, its tokens refused) goes to bus_control's listeners */
        if (!bus_control_receive(event, j) && B.listener && B.listener->control)
            B.listener->control(node, event, j);
    }
    json_decref(j);
}

/* A publication received on channel chan: ignored if ours or malformed,
 * else handled (control) or delivered to this node's subscribers. */
static void on_message(const char *chan, size_t chlen, const char *data, size_t len)
{
    bus_envelope env;
    if (bus_envelope_decode(data, len, &env) != 0) {
        atomic_fetch_add(&B.bad, 1);
        return;
    }
    char node[BUS_NAME_MAX + 1], event[BUS_NAME_MAX + 1];
    memcpy(node, env.node, env.node_len);
    node[env.node_len] = 0;
    memcpy(event, env.event, env.event_len);
    event[env.event_len] = 0;
    if (!strcmp(node, g_config.node_id)) {
        atomic_fetch_add(&B.own, 1);
        if (env.kind == BUS_CONTROL && !strcmp(event, "hb") && env.payload_len >= 40 &&
            !memmem(env.payload, env.payload_len, B.boot, 32)) {
            /* another process publishes under this node's name: the two
             * would ignore each other's broadcasts */
            static uint64_t last;
            uint64_t now = mono_ms();
            if (now - last > 10000) {
                last = now;
                log_msg(LOG_ERROR, "redis_duplicate_node_id", "node", json_string(node), NULL);
            }
        }
        return;
    }
    atomic_fetch_add(&B.received, 1);
    if (env.kind == BUS_CONTROL) {
        handle_control(node, event, env.payload, env.payload_len);
        return;
    }
    if (chlen <= B.prefix_t_len) return;
    const char *topic = chan + B.prefix_t_len;
    peer_seen(node, NULL);
    /* still in flight while an UNSUBSCRIBE is: nobody here wants it */
    topic_ent *e = topic_find(topic, hash_str(topic));
    if (!e || e->count == 0) return;
    pubsub_msg *m = NULL;
    if (env.kind == BUS_TEXT) {
        if (B.listener && B.listener->remote_text &&
            !B.listener->remote_text(node, topic, event, env.payload, env.payload_len))
            return;
        m = pubsub_msg_text(topic, event, env.payload, env.payload_len, NULL);
    } else {
        m = pubsub_msg_binary(topic, event, env.payload, env.payload_len, NULL);
    }
    if (m) pubsub_deliver_node(m);
}

/* Every reply of the subscriber connection: messages, and the
 * confirmations that move a topic between R_* states. */
static void sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    if (!r || B.closed) return;
    B.sub_last = mono_ms();
    if (r->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_WARN, "redis_subscribe_error", "error", json_string(r->str), NULL);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str, *chan = r->element[1]->str;
    size_t chlen = r->element[1]->len;
    if (!strcmp(kind, "message")) {
        if (r->element[2]->type == REDIS_REPLY_STRING)
            on_message(chan, chlen, r->element[2]->str, r->element[2]->len);
        return;
    }
    bool is_sub = !strcmp(kind, "subscribe"), is_unsub = !strcmp(kind, "unsubscribe");
    if (!is_sub && !is_unsub) return;
    if (!strcmp(chan, B.ctl)) {
        B.ctl_ready = is_sub;
        if (is_sub) B.sub_backoff = 0;
        update_status();
        return;
    }
    if (chlen <= B.prefix_t_len || strncmp(chan, B.prefix, B.prefix_t_len - 2) != 0) return;
    const char *topic = chan + B.prefix_t_len;
    topic_ent *e = topic_find(topic, hash_str(topic));
    if (!e) return;
    if (is_sub && e->rstate == R_SUBSCRIBING) {
        e->rstate = R_SUBSCRIBED;
        if (e->count > 0 && B.listener && B.listener->topic_ready) B.listener->topic_ready(e->topic);
    } else if (is_unsub && e->rstate == R_UNSUBSCRIBING) {
        e->rstate = R_NONE;
    }
    mark_dirty(e);
    reconcile();
}

/* ---- connections (reactor 0) ---- */

static void pub_connect(uv_timer_t *t);
static void sub_connect(uv_timer_t *t);

/* Arms timer t to run cb after the next backoff delay (with +-20% jitter). */
static void schedule(uv_timer_t *t, uint64_t *backoff, uv_timer_cb cb)
{
    if (B.stopping || B.closed) return;
    uint64_t d = *backoff ? *backoff : 100;
    uint64_t jitter = 0;
    util_random_bytes(&jitter, sizeof jitter);
    uint64_t wait = d - d / 5 + jitter % (d / 5 * 2 + 1);
    *backoff = d * 2 > g_config.redis_retry_max_ms ? g_config.redis_retry_max_ms : d * 2;
    uv_timer_start(t, cb, wait, 0);
}

/* AUTH refused: drop the connection (retried with backoff). */
static void auth_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        static uint64_t last;
        uint64_t now = mono_ms();
        if (!last || now - last > 10000) {
            last = now;
            log_msg(LOG_ERROR, "redis_auth_failed", "error", json_string(r->str), NULL);
        }
        redisAsyncDisconnect(ac);
    }
}

/* Starts a non-blocking connection on reactor 0's loop (AUTH queued when
 * the URL has a password); NULL on immediate failure. */
static redisAsyncContext *make_ctx(const char *role)
{
    redisAsyncContext *ac = B.url.unix_path[0] ? redisAsyncConnectUnix(B.url.unix_path)
                                               : redisAsyncConnect(B.url.host, B.url.port);
    if (!ac) return NULL;
    if (ac->err) {
        log_msg(LOG_DEBUG, "redis_connect_failed", "role", json_string(role), "error",
                json_string(ac->errstr), NULL);
        redisAsyncFree(ac);
        return NULL;
    }
    if (redisLibuvAttach(ac, &B.r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    if (B.url.password[0]) {
        if (B.url.user[0])
            redisAsyncCommand(ac, auth_reply, NULL, "AUTH %s %s", B.url.user, B.url.password);
        else
            redisAsyncCommand(ac, auth_reply, NULL, "AUTH %s", B.url.password);
    }
    return ac;
}

/* The publisher connected (send what was held) or failed (retry). */
static void pub_connected(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        log_msg(LOG_DEBUG, "redis_connect_failed", "role", json_string("publisher"), "error",
                json_string(ac->errstr), NULL);
        B.pub = NULL; /* hiredis frees it */
        schedule(&B.pub_retry, &B.pub_backoff, pub_connect);
        return;
    }
    B.pub_up = true; /* the backoff resets with the first good reply */
    B.pub_last = mono_ms();
    log_msg(LOG_INFO, "redis_connected", "role", json_string("publisher"), NULL);
    control_now("hb", json_pack("{s:s}", "boot", B.boot));
    hold_flush();
    update_status();
}

/* The publisher is gone (hiredis frees it): retry unless stopping. */
static void pub_disconnected(const redisAsyncContext *ac, int status)
{
    B.pub = NULL;
    B.pub_up = false;
    update_status();
    if (B.stopping || B.closed) return;
    log_msg(LOG_WARN, "redis_disconnected", "role", json_string("publisher"), "error",
            json_string(ac->errstr[0] ? ac->errstr : "closed"), NULL);
    schedule(&B.pub_retry, &B.pub_backoff, pub_connect);
}

/* Opens the publisher connection unless one exists or the bus stops. */
static void pub_connect(uv_timer_t *t)
{
    if (B.pub || B.stopping || B.closed) return;
    B.pub = make_ctx("publisher");
    if (!B.pub) {
        schedule(&B.pub_retry, &B.pub_backoff, pub_connect);
        return;
    }
    B.pub_since = mono_ms();
    redisAsyncSetConnectCallback(B.pub, pub_connected);
    redisAsyncSetDisconnectCallback(B.pub, pub_disconnected);
}

/* Subscribes the control channel and every topic with local demand. */
static void sub_connected(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        log_msg(LOG_DEBUG, "redis_connect_failed", "role", json_string("subscriber"), "error",
                json_string(ac->errstr), NULL);
        B.sub = NULL;
        schedule(&B.sub_retry, &B.sub_backoff, sub_connect);
        return;
    }
    B.sub_up = true; /* the backoff resets when the control channel is subscribed */
    B.sub_last = mono_ms();
    log_msg(LOG_INFO, "redis_connected", "role", json_string("subscriber"), "topics",
            json_integer((json_int_t)B.tcount), NULL);
    char *ctl = strdup(B.ctl);
    if (ctl) send_batch("SUBSCRIBE", &ctl, 1);
    for (size_t i = 0; i < B.tnb; i++)
        for (topic_ent *e = B.tb[i]; e; e = e->next) mark_dirty(e);
    reconcile();
}

/* The subscriber is gone: every topic is unsubscribed as far as Redis
 * knows; retry unless stopping. */
static void sub_disconnected(const redisAsyncContext *ac, int status)
{
    B.sub = NULL;
    B.sub_up = false;
    B.ctl_ready = false;
    for (size_t i = 0; i < B.tnb; i++)
        for (topic_ent *e = B.tb[i]; e; e = e->next) {
            e->rstate = R_NONE;
            if (e->count == 0) mark_dirty(e); /* freed by reconcile */
        }
    if (!B.closed) reconcile();
    update_status();
    if (B.stopping || B.closed) return;
    log_msg(LOG_WARN, "redis_disconnected", "role", json_string("subscriber"), "error",
            json_string(ac->errstr[0] ? ac->errstr : "closed"), NULL);
    schedule(&B.sub_retry, &B.sub_backoff, sub_connect);
}

/* Opens the subscriber connection unless one exists or the bus stops. */
static void sub_connect(uv_timer_t *t)
{
    if (B.sub || B.stopping || B.closed) return;
    B.sub = make_ctx("subscriber");
    if (!B.sub) {
        schedule(&B.sub_retry, &B.sub_backoff, sub_connect);
        return;
    }
    B.sub_since = mono_ms();
    redisAsyncSetConnectCallback(B.sub, sub_connected);
    redisAsyncSetDisconnectCallback(B.sub, sub_disconnected);
}

/* Every SB_REDIS_HEARTBEAT_MS: heartbeat, expire silent peers and old held
 * publications, log drops, drain the inbox if a post was lost. */
/* hiredis 0.14's libuv adapter drops poll errors (a refused connect, a
 * reset connection): hiredis would wait forever. So a connect that has not
 * completed in CONNECT_TIMEOUT_MS, a publisher with replies overdue, or a
 * subscriber that stopped hearing this node's own heartbeats is freed here
 * and reconnected. */
static void watchdog(uint64_t now)
{
    uint64_t limit = g_config.redis_node_timeout_ms;
    if (B.pub && !B.pub_up && now - B.pub_since > CONNECT_TIMEOUT_MS) {
        redisAsyncFree(B.pub); /* never connected: no callback */
        B.pub = NULL;
        schedule(&B.pub_retry, &B.pub_backoff, pub_connect);
    } else if (B.pub_up && B.pub_inflight > 0 && now - B.pub_last > limit) {
        log_msg(LOG_WARN, "redis_unresponsive", "role", json_string("publisher"), NULL);
        redisAsyncFree(B.pub); /* pub_disconnected reconnects */
    }
    if (B.sub && !B.sub_up && now - B.sub_since > CONNECT_TIMEOUT_MS) {
        redisAsyncFree(B.sub);
        B.sub = NULL;
        schedule(&B.sub_retry, &B.sub_backoff, sub_connect);
    } else if (B.sub_up && B.pub_up && now - B.pub_last < limit && now - B.sub_last > limit) {
        log_msg(LOG_WARN, "redis_unresponsive", "role", json_string("subscriber"), NULL);
        redisAsyncFree(B.sub); /* sub_disconnected reconnects */
    }
}

/* A tick far later than SB_REDIS_HEARTBEAT_MS: this node's own loop (or
 * the whole process) stalled, so the silence of peers and Redis over that
 * time says nothing about them. Silence is counted only while this node was
 * running: every peer's and connection's last-heard time moves forward by
 * the stall, so a live peer whose heartbeats wait unread in the socket is not
 * declared down (and its users announced offline) for this node's stall. */
static void stall_forgive(uint64_t now)
{
    uint64_t hb = g_config.redis_heartbeat_ms;
    if (!B.last_tick || now - B.last_tick <= 2 * hb) return;
    uint64_t lost = now - B.last_tick - hb;
    log_msg(LOG_WARN, "redis_loop_stalled", "ms", json_integer((json_int_t)(now - B.last_tick)), NULL);
    for (peer *p = B.peers; p; p = p->next) p->last_ms = p->last_ms + lost > now ? now : p->last_ms + lost;
    B.pub_last = B.pub_last + lost > now ? now : B.pub_last + lost;
    B.sub_last = B.sub_last + lost > now ? now : B.sub_last + lost;
}

static void on_tick(uv_timer_t *t)
{
    uint64_t now = mono_ms();
    stall_forgive(now);
    B.last_tick = now;
    watchdog(now);
    if (B.pub_up) control_now("hb", json_pack("{s:s}", "boot", B.boot));
    for (peer *p = B.peers, *next; p; p = next) {
        next = p->next;
        if (now - p->last_ms > g_config.redis_node_timeout_ms) {
            char node[BUS_NAME_MAX + 1];
            snprintf(node, sizeof node, "%s", p->node);
            peer_remove(p);
            node_down(node, "silent");
        }
    }
    hold_drop_old(now);
    uint64_t dropped = atomic_load(&B.dropped);
    static uint64_t last_log;
    if (dropped != B.dropped_logged && now - last_log >= 5000) {
        last_log = now;
        log_msg(LOG_WARN, "redis_bus_dropped", "dropped_total", json_integer((json_int_t)dropped),
                "since_last", json_integer((json_int_t)(dropped - B.dropped_logged)), "queued_bytes",
                json_integer((json_int_t)atomic_load(&B.queued)), NULL);
        B.dropped_logged = dropped;
    }
    drain_task(NULL);
}

/* On reactor 0: timers, both connections, then the first drain. */
static void start_task(void *arg)
{
    B.r = reactor_self();
    uv_timer_init(&B.r->loop, &B.pub_retry);
    uv_timer_init(&B.r->loop, &B.sub_retry);
    uv_timer_init(&B.r->loop, &B.tick);
    uv_timer_start(&B.tick, on_tick, g_config.redis_heartbeat_ms, g_config.redis_heartbeat_ms);
    pub_connect(NULL);
    sub_connect(NULL);
    drain_task(NULL);
}

/* ---- public ---- */

int bus_redis_start(void)
{
    if (!g_config.redis_url[0]) return 0;
    char err[128];
    if (bus_parse_redis_url(g_config.redis_url, &B.url, err, sizeof err) != 0) {
        fprintf(stderr, "switchboard: bad SB_REDIS_URL: %s\n", err);
        return -1;
    }
    if (strlen(g_config.node_id) > BUS_NAME_MAX || !g_config.node_id[0]) {
        fprintf(stderr, "switchboard: SB_NODE_ID must be 1..%d bytes\n", BUS_NAME_MAX);
        return -1;
    }
    if (g_config.redis_heartbeat_ms == 0) g_config.redis_heartbeat_ms = 1000;
    if (g_config.redis_retry_max_ms < 100) g_config.redis_retry_max_ms = 100;
    if (g_config.redis_node_timeout_ms < 2 * g_config.redis_heartbeat_ms)
        g_config.redis_node_timeout_ms = 2 * g_config.redis_heartbeat_ms;
    snprintf(B.prefix, sizeof B.prefix, "%s", g_config.redis_prefix);
    snprintf(B.ctl, sizeof B.ctl, "%sctl", B.prefix);
    B.prefix_t_len = strlen(B.prefix) + 2;
    uint8_t rnd[16];
    util_random_bytes(rnd, sizeof rnd);
    util_hex_encode(rnd, sizeof rnd, B.boot);
    g_bus = &bus_redis_ops;
    return 0;
}

void bus_redis_run(void)
{
    if (g_bus != &bus_redis_ops || reactor_count == 0) return;
    pthread_mutex_lock(&B.mu);
    B.running = true;
    B.drain_posted = true; /* start_task drains */
    pthread_mutex_unlock(&B.mu);
    reactor_post(&reactor_all[0], start_task, NULL);
}

void bus_set_listener(const bus_listener *l) { B.listener = l; }

bool bus_lowest_node(void)
{
    for (peer *p = B.peers; p; p = p->next)
        if (strcmp(p->node, g_config.node_id) < 0) return false;
    return true;
}

void bus_foreach_topic(void (*fn)(const char *topic, void *arg), void *arg)
{
    for (size_t i = 0; i < B.tnb; i++)
        for (topic_ent *e = B.tb[i]; e; e = e->next)
            if (e->count > 0 && e->rstate == R_SUBSCRIBED) fn(e->topic, arg);
}
bool bus_is_cluster(void) { return g_bus == &bus_redis_ops; }
const char *bus_node_id(void) { return g_config.node_id; }

/* On reactor 0: goodbye to the peers, then close both connections (the
 * publisher after its pending replies), stop the timers, free what is held. */
static void shutdown_task(void *arg)
{
    if (B.stopping) return;
    if (B.pub_up) control_now("bye", json_object());
    B.stopping = true;
    uv_timer_stop(&B.pub_retry);
    uv_timer_stop(&B.sub_retry);
    uv_timer_stop(&B.tick);
    if (B.pub) redisAsyncDisconnect(B.pub);
    if (B.sub) redisAsyncDisconnect(B.sub);
    B.closed = true;
    drain_task(NULL);
    for (bus_op *op = B.hold_head, *next; op; op = next) {
        next = op->next;
        atomic_fetch_sub(&B.queued, op->len);
        op_free(op);
    }
    B.hold_head = B.hold_tail = NULL;
}

void bus_redis_shutdown(void)
{
    if (g_bus != &bus_redis_ops || reactor_count == 0) return;
    reactor_post(&reactor_all[0], shutdown_task, NULL);
}

json_t *bus_redis_stats(void)
{
    if (g_bus != &bus_redis_ops) return NULL;
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "node", g_config.node_id, "published",
                     (json_int_t)atomic_load(&B.published), "received",
                     (json_int_t)atomic_load(&B.received), "dropped",
                     (json_int_t)atomic_load(&B.dropped), "queued_bytes",
                     (json_int_t)atomic_load(&B.queued), "malformed",
                     (json_int_t)atomic_load(&B.bad));
}
