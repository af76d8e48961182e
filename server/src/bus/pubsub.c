/* pubsub.c — per-reactor topic tables and node-wide broadcasts. */
#include "bus/pubsub.h"

#include <stdlib.h>
#include <string.h>
#include "bus/bus.h"
#include "base/log.h"

#define PUBSUB_CLASSES 8

static pubsub_deliver_fn g_classes[PUBSUB_CLASSES]; /* [0] unused */
static int g_nclasses = 1;
static pubsub_encode_fn g_encode;
static int g_slot; /* reactor slot of the tables (0: NULL until registered) */

typedef struct topic_entry {
    struct topic_entry *next;
    uint64_t hash;
    pubsub_sub **subs;         /* &one while cap == 1 (a user:<id> topic) */
    pubsub_sub *one;
    uint32_t n, cap;
    char topic[];
} topic_entry;

struct pubsub_local {
    topic_entry **b;
    size_t nb, count;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

/* Reactor r's topic table. */
static inline struct pubsub_local *table_of(const reactor *r) { return r->slot[g_slot]; }

int pubsub_class_new(pubsub_deliver_fn fn)
{
    if (g_nclasses == PUBSUB_CLASSES) return -1;
    g_classes[g_nclasses] = fn;
    return g_nclasses++;
}

void pubsub_set_encoder(pubsub_encode_fn fn) { g_encode = fn; }

static struct pubsub_local *table_new(void)
{
    struct pubsub_local *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->nb = 1024;
    t->b = calloc(t->nb, sizeof *t->b);
    if (!t->b) {
        free(t);
        return NULL;
    }
    return t;
}

/* reactor init hook: r's table */
static int table_init(reactor *r)
{
    r->slot[g_slot] = table_new();
    return r->slot[g_slot] ? 0 : -1;
}

static const reactor_hooks g_table_hooks = {.init = table_init};

int pubsub_register(void)
{
    int id = reactor_register(&g_table_hooks);
    if (id < 0) return -1;
    g_slot = id;
    return 0;
}

static topic_entry *lookup(struct pubsub_local *t, const char *topic, uint64_t h)
{
    for (topic_entry *e = t->b[h & (t->nb - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->topic, topic) == 0) return e;
    return NULL;
}

static void grow(struct pubsub_local *t)
{
    size_t nnb = t->nb * 2;
    topic_entry **nb = calloc(nnb, sizeof *nb);
    if (!nb) return; /* keep the old table: slower, still correct */
    for (size_t i = 0; i < t->nb; i++)
        for (topic_entry *e = t->b[i], *next; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & (nnb - 1)];
            nb[e->hash & (nnb - 1)] = e;
        }
    free(t->b);
    t->b = nb;
    t->nb = nnb;
}

int pubsub_subscribe(reactor *r, const char *topic, pubsub_sub *s)
{
    struct pubsub_local *t = table_of(r);
    uint64_t h = hash_str(topic);
    topic_entry *e = lookup(t, topic, h);
    if (!e) {
        size_t tl = strlen(topic);
        e = calloc(1, sizeof *e + tl + 1);
        if (!e) return -1;
        memcpy(e->topic, topic, tl + 1);
        e->hash = h;
        e->subs = &e->one; /* no separate array for a single subscriber */
        e->cap = 1;
        e->next = t->b[h & (t->nb - 1)];
        t->b[h & (t->nb - 1)] = e;
        if (++t->count > t->nb) grow(t);
        bus_topic_added(e->topic);
    }
    if (e->n == e->cap) {
        uint32_t ncap = e->cap * 2;
        pubsub_sub **ns = e->subs == &e->one ? malloc(ncap * sizeof *ns)
                                             : realloc(e->subs, ncap * sizeof *ns);
        if (!ns) return -1;
        if (e->subs == &e->one) ns[0] = e->one;
        e->subs = ns;
        e->cap = ncap;
    }
    s->idx = e->n;
    e->subs[e->n++] = s;
    s->subscribed = true;
    return 0;
}

void pubsub_unsubscribe(reactor *r, const char *topic, pubsub_sub *s)
{
    if (!s->subscribed) return;
    struct pubsub_local *t = table_of(r);
    uint64_t h = hash_str(topic);
    topic_entry *e = lookup(t, topic, h);
    s->subscribed = false;
    if (!e || s->idx >= e->n || e->subs[s->idx] != s) return;
    pubsub_sub *last = e->subs[--e->n];
    e->subs[s->idx] = last;
    last->idx = s->idx;
    if (e->n == 0) {
        topic_entry **pp = &t->b[h & (t->nb - 1)];
        while (*pp != e) pp = &(*pp)->next;
        *pp = e->next;
        t->count--;
        bus_topic_removed(e->topic);
        if (e->subs != &e->one) free(e->subs);
        free(e);
    } else if (e->cap > 64 && e->n < e->cap / 4) {
        pubsub_sub **ns = realloc(e->subs, (e->cap / 2) * sizeof *ns);
        if (ns) {
            e->subs = ns;
            e->cap /= 2;
        }
    }
}

size_t pubsub_local_count(const char *topic)
{
    reactor *r = reactor_self();
    if (!r) return 0;
    topic_entry *e = lookup(table_of(r), topic, hash_str(topic));
    return e ? e->n : 0;
}

static void msg_unref(pubsub_msg *m)
{
    if (atomic_fetch_sub(&m->refs, 1) != 1) return;
    for (int i = 0; i < PUBSUB_ENCODINGS; i++) sb_buf_unref(m->enc[i]);
    free(m->topic);
    free(m->event);
    free(m->payload_json);
    free(m);
}

/* Delivers m to the calling reactor's subscribers: one call per run of
 * subscribers of one class (all of the topic's, as a rule). */
static void deliver_local(reactor *r, pubsub_msg *m)
{
    topic_entry *e = lookup(table_of(r), m->topic, hash_str(m->topic));
    if (!e) return;
    for (uint32_t i = 0, n = e->n; i < n;)
        i += g_classes[e->subs[i]->cls](e->subs + i, n - i, m);
}

static void deliver_task(void *arg)
{
    pubsub_msg *m = arg;
    deliver_local(reactor_self(), m);
    msg_unref(m);
}

void pubsub_deliver_node(pubsub_msg *m)
{
    /* one reference per reactor, plus the caller's (dropped at the end) */
    reactor *self = reactor_self();
    atomic_fetch_add(&m->refs, (unsigned)reactor_count);
    for (int i = 0; i < reactor_count; i++) {
        reactor *r = &reactor_all[i];
        if (r == self) continue;
        if (reactor_post(r, deliver_task, m) != 0) msg_unref(m);
    }
    if (self) deliver_local(self, m);
    if (self) msg_unref(m);
    msg_unref(m);
}

static pubsub_msg *msg_new(const char *topic, const char *event, const void *from)
{
    pubsub_msg *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    atomic_init(&m->refs, 1);
    m->topic = strdup(topic);
    m->event = strdup(event);
    m->from = from;
    if (!m->topic || !m->event) {
        msg_unref(m);
        return NULL;
    }
    return m;
}

pubsub_msg *pubsub_msg_text(const char *topic, const char *event, const char *payload_json,
                            size_t len, const void *from)
{
    pubsub_msg *m = msg_new(topic, event, from);
    if (!m) return NULL;
    m->payload_json = strndup(payload_json, len);
    if (!m->payload_json || (g_encode && g_encode(m, payload_json, len) != 0)) {
        msg_unref(m);
        return NULL;
    }
    return m;
}

int pubsub_broadcast(const char *topic, const char *event, json_t *payload, const void *from)
{
    char *pj = payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    if (!pj) return -1;
    size_t len = strlen(pj);
    pubsub_msg *m = pubsub_msg_text(topic, event, pj, len, from);
    if (m) bus_publish_text(topic, event, pj, len);
    free(pj);
    if (!m) return -1;
    pubsub_deliver_node(m);
    return 0;
}

pubsub_msg *pubsub_msg_binary(const char *topic, const char *event, const void *data,
                              size_t len, const void *from)
{
    pubsub_msg *m = msg_new(topic, event, from);
    if (!m) return NULL;
    m->binary = true;
    if (g_encode && g_encode(m, data, len) != 0) {
        msg_unref(m);
        return NULL;
    }
    return m;
}

int pubsub_broadcast_binary(const char *topic, const char *event, const void *data, size_t len,
                            const void *from)
{
    pubsub_msg *m = pubsub_msg_binary(topic, event, data, len, from);
    if (!m) return -1;
    bus_publish_binary(topic, event, data, len);
    pubsub_deliver_node(m);
    return 0;
}

int pubsub_broadcast_local(const char *topic, const char *event, json_t *payload, const void *from)
{
    char *pj = payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    if (!pj) return -1;
    pubsub_msg *m = pubsub_msg_text(topic, event, pj, strlen(pj), from);
    free(pj);
    if (!m) return -1;
    pubsub_deliver_node(m);
    return 0;
}
