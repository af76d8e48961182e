/* presence.c — Phoenix Presence tables and users' online state (see
 * presence.h). One mutex guards each table; nothing here blocks on I/O
 * while holding it. */
#include "presence/presence.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/db.h"
#include "base/config.h"
#include "base/log.h"
#include "bus/bus.h"
#include "presence/presence_cluster.h"
#include "presence/presence_table.h"
#include "bus/pubsub.h"
#include "net/reactor.h"
#include "base/util.h"
#include "base/id.h"
#include "store/pgval.h"
#include "base/strbuf.h"

#define KEY_MAX PTAB_KEY_MAX /* user ids: up to 20 digits */
#define NODE_MAX 64           /* node names (SB_NODE_ID); "" = this node */
#define NODES_MAX 1024        /* distinct node names remembered */

typedef struct ptopic {
    struct ptopic *next;
    uint64_t hash;
    ptab *t;
    char topic[];
} ptopic;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static ptopic **g_b;
static size_t g_nb, g_count;
/* node names by number (0 = this node, ""), under g_mu; never shrinks */
static char g_nodes[NODES_MAX][NODE_MAX];
static uint16_t g_nnodes = 1;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

/* The number of node name `node` (added when `add`), or -1 (under g_mu). */
static int node_num(const char *node, bool add)
{
    if (strlen(node) >= NODE_MAX) return -1;
    for (uint16_t i = 0; i < g_nnodes; i++)
        if (!strcmp(g_nodes[i], node)) return i;
    if (!add || g_nnodes == NODES_MAX) return -1;
    strcpy(g_nodes[g_nnodes], node);
    return g_nnodes++;
}

/* The topic's entry (created when `create`), under g_mu. */
static ptopic *topic_get(const char *topic, bool create)
{
    if (!g_b) {
        if (!create) return NULL;
        g_nb = 1024;
        g_b = calloc(g_nb, sizeof *g_b);
        if (!g_b) return NULL;
    }
    uint64_t h = hash_str(topic);
    for (ptopic *t = g_b[h & (g_nb - 1)]; t; t = t->next)
        if (t->hash == h && !strcmp(t->topic, topic)) return t;
    if (!create) return NULL;
    if (g_count >= g_nb) { /* grow: keep chains short */
        size_t nnb = g_nb * 2;
        ptopic **nb = calloc(nnb, sizeof *nb);
        if (nb) {
            for (size_t i = 0; i < g_nb; i++)
                for (ptopic *t = g_b[i], *next; t; t = next) {
                    next = t->next;
                    t->next = nb[t->hash & (nnb - 1)];
                    nb[t->hash & (nnb - 1)] = t;
                }
            free(g_b);
            g_b = nb;
            g_nb = nnb;
        }
    }
    size_t tl = strlen(topic);
    ptopic *t = calloc(1, sizeof *t + tl + 1);
    if (!t) return NULL;
    if (!(t->t = presence_table_new())) {
        free(t);
        return NULL;
    }
    memcpy(t->topic, topic, tl + 1);
    t->hash = h;
    t->next = g_b[h & (g_nb - 1)];
    g_b[h & (g_nb - 1)] = t;
    g_count++;
    return t;
}

/* Frees topic t if it holds no presence (under g_mu). */
static void topic_maybe_free(ptopic *t)
{
    if (presence_table_count(t->t)) return;
    ptopic **pp = &g_b[t->hash & (g_nb - 1)];
    while (*pp && *pp != t) pp = &(*pp)->next;
    if (*pp) *pp = t->next;
    g_count--;
    presence_table_free(t->t);
    free(t);
}

/* A unique phx_ref: base64url of a node-wide counter and random bytes. */
static void make_ref(char out[PRESENCE_REF_MAX])
{
    static _Atomic uint64_t ctr;
    uint8_t raw[12];
    uint64_t c = atomic_fetch_add(&ctr, 1);
    memcpy(raw, &c, 8);
    if (util_random_bytes(raw + 8, 4) != 0) memset(raw + 8, 0x5a, 4);
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int o = 0;
    for (int i = 0; i < 12; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    out[o] = 0;
}

/* ---- diffs coalesced per reactor, per topic, per loop iteration ----
 * Tracks and untracks change the table at once but their diffs wait in the
 * reactor's pending list until the end of the loop iteration (a uv_check
 * handle): then each topic gets one presence_diff with every join and
 * leave of the iteration (phoenix.js applies a diff's joins, then its
 * leaves, deduplicating metas by phx_ref, so the merged diff leaves every
 * client with the state the separate diffs would have), encoded once for
 * all viewers, followed by presence_state to the channels that joined in
 * the iteration (their own join diff first, the order Phoenix sends them
 * in), encoded once for all of them. Without a reactor (tools, unit tests)
 * a change is sent at once.
 *
 * A diff costs one frame per viewer, so a crowded topic gathers its diffs
 * for a little longer: up to viewers/100 ms (at most PDIFF_WINDOW_MAX_MS;
 * none under 200 viewers). Under a join storm on a 10,000-viewer topic each
 * viewer then gets ~20 diffs a second per reactor instead of one per join
 * (Phoenix's tracker batches its broadcasts the same way). */

typedef struct pdiff {
    struct pdiff *next;
    pmeta *v;             /* joins and leaves */
    bool *join;           /* per entry of v */
    uint32_t n, cap;
    presence_joiner *joiners; /* get presence_state (each a reference of the edge's) */
    uint32_t nj, capj;
    uint64_t due; /* loop time (ms) it is to be sent at */
    char topic[];
} pdiff;

#define PDIFF_MAX 4096 /* entries per pending diff: a full one is sent at once */

#define PDIFF_WINDOW_MIN_VIEWERS 200
#define PDIFF_WINDOW_MAX_MS 50

typedef struct pend_list {
    uv_check_t check;  /* sends what is due at the end of each iteration */
    uv_timer_t timer;  /* wakes the loop for the next due diff */
    bool check_ready;
    pdiff *head;
} pend_list;

static _Thread_local pend_list t_pend;
static void pend_timer_cb(uv_timer_t *h);

/* Sends d's diff, then presence_state to its joiners, and frees d. */
static void pdiff_send(pdiff *d)
{
    pmeta *j = NULL, *l = NULL;
    size_t nj = 0, nl = 0;
    if (d->n && (j = malloc(d->n * sizeof *j)) && (l = malloc(d->n * sizeof *l)))
        for (uint32_t i = 0; i < d->n; i++) {
            if (d->join[i]) j[nj++] = d->v[i];
            else l[nl++] = d->v[i];
        }
    size_t len = 0;
    char *txt = l ? presence_table_diff_encode(j, nj, l, nl, &len) : NULL;
    free(j);
    free(l);
    if (txt) {
        pubsub_msg *m = pubsub_msg_text(d->topic, "presence_diff", txt, len, NULL);
        if (m) {
            bus_publish_text(d->topic, "presence_diff", txt, len);
            pubsub_deliver_node(m);
        }
        free(txt);
    } else if (d->n) {
        log_msg(LOG_WARN, "presence diff lost (out of memory)", "topic", json_string(d->topic), NULL);
    }
    if (d->nj) {
        /* one copy of the state for every joiner of the batch */
        char *st = NULL;
        size_t sl = 0;
        pthread_mutex_lock(&g_mu);
        ptopic *t = topic_get(d->topic, false);
        const char *s = t ? presence_table_state(t->t, &sl) : "{}";
        if (!t) sl = 2;
        if (s && (st = malloc(sl + 1))) memcpy(st, s, sl + 1);
        pthread_mutex_unlock(&g_mu);
        /* one encoded frame for all of them too (the edge's batch slot):
         * a slow loop gathers more joiners per batch, not more copies */
        void *batch = NULL;
        for (uint32_t i = 0; i < d->nj; i++) {
            presence_joiner *pj = &d->joiners[i];
            if (pj->done == d->joiners[0].done) {
                pj->state(pj->to, st, sl, &batch); /* sends, releases */
            } else { /* another edge: a slot of its own */
                void *own = NULL;
                pj->state(pj->to, st, sl, &own);
                if (own && pj->done) pj->done(own);
            }
        }
        if (batch && d->joiners[0].done) d->joiners[0].done(batch);
        free(st);
        reactor_trim_hint(sl * 2); /* the copy and its frame, freed once written */
    }
    free(d->v);
    free(d->join);
    free(d->joiners);
    free(d);
}

/* Sends the pending diffs of this reactor due at `now` (all of them when
 * now is UINT64_MAX), then arms the timer for the next one. */
static void pend_flush(uint64_t now)
{
    pdiff *due = NULL, **tail = &due;
    for (pdiff **pp = &t_pend.head; *pp;) { /* detached first: sending may queue more */
        pdiff *d = *pp;
        if (d->due <= now) {
            *pp = d->next;
            d->next = NULL;
            *tail = d;
            tail = &d->next;
        } else {
            pp = &d->next;
        }
    }
    while (due) {
        pdiff *next = due->next;
        pdiff_send(due);
        due = next;
    }
    if (!t_pend.check_ready) return;
    uint64_t next = UINT64_MAX;
    for (pdiff *d = t_pend.head; d; d = d->next)
        if (d->due < next) next = d->due;
    if (next == UINT64_MAX) {
        uv_check_stop(&t_pend.check);
        uv_timer_stop(&t_pend.timer);
    } else if (next > now) {
        uv_timer_start(&t_pend.timer, pend_timer_cb, next - now, 0);
    } else {
        uv_timer_start(&t_pend.timer, pend_timer_cb, 0, 0);
    }
}

static void pend_check(uv_check_t *h) { pend_flush(uv_now(h->loop)); }
static void pend_timer_cb(uv_timer_t *h) { pend_flush(uv_now(h->loop)); }

/* Unlinks and sends the pending diff of topic, if any. */
static void pend_send_topic(const char *topic)
{
    for (pdiff **pp = &t_pend.head; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->topic, topic)) {
            pdiff *d = *pp;
            *pp = d->next;
            pdiff_send(d);
            return;
        }
}

/* Queues a join (with its joiner j, which it takes, or NULL) or a leave of
 * m on topic, which has `viewers` presences. Returns 0, or -1 when out of
 * memory (nothing queued, j not taken). */
static int pend_add(const char *topic, const pmeta *m, bool join, const presence_joiner *j,
                    size_t viewers)
{
    reactor *r = reactor_self();
    pdiff *d = NULL;
    for (pdiff *x = t_pend.head; x; x = x->next)
        if (!strcmp(x->topic, topic)) {
            d = x;
            break;
        }
    if (d && (d->n == PDIFF_MAX || d->nj == PDIFF_MAX)) {
        pend_send_topic(topic);
        d = NULL;
    }
    if (!d) {
        size_t tl = strlen(topic);
        if (!(d = calloc(1, sizeof *d + tl + 1))) return -1;
        memcpy(d->topic, topic, tl + 1);
        uint64_t w = viewers < PDIFF_WINDOW_MIN_VIEWERS ? 0 : viewers / 100;
        d->due = (r ? uv_now(&r->loop) : 0) + (w < PDIFF_WINDOW_MAX_MS ? w : PDIFF_WINDOW_MAX_MS);
        d->next = t_pend.head;
        t_pend.head = d;
    }
    if (d->n == d->cap) {
        uint32_t nc = d->cap ? d->cap * 2 : 4;
        pmeta *nv = realloc(d->v, nc * sizeof *nv);
        if (nv) d->v = nv;
        bool *nb = nv ? realloc(d->join, nc * sizeof *nb) : NULL;
        if (nb) d->join = nb;
        if (!nv || !nb) return -1;
        d->cap = nc;
    }
    if (j && d->nj == d->capj) {
        uint32_t nc = d->capj ? d->capj * 2 : 4;
        presence_joiner *nv = realloc(d->joiners, nc * sizeof *nv);
        if (!nv) return -1;
        d->joiners = nv;
        d->capj = nc;
    }
    d->v[d->n] = *m;
    d->join[d->n++] = join;
    if (j) d->joiners[d->nj++] = *j;
    if (!r) { /* no loop to wait for */
        pend_flush(UINT64_MAX);
        return 0;
    }
    if (!t_pend.check_ready) {
        if (uv_check_init(&r->loop, &t_pend.check) != 0 ||
            uv_timer_init(&r->loop, &t_pend.timer) != 0) {
            pend_flush(UINT64_MAX);
            return 0;
        }
        uv_unref((uv_handle_t *)&t_pend.check);
        uv_unref((uv_handle_t *)&t_pend.timer);
        t_pend.check_ready = true;
    }
    if (!uv_is_active((uv_handle_t *)&t_pend.check)) uv_check_start(&t_pend.check, pend_check);
    if (d->due > uv_now(&r->loop) &&
        (!uv_is_active((uv_handle_t *)&t_pend.timer) ||
         uv_timer_get_due_in(&t_pend.timer) > d->due - uv_now(&r->loop)))
        uv_timer_start(&t_pend.timer, pend_timer_cb, d->due - uv_now(&r->loop), 0);
    return 0;
}

int presence_track(const char *topic, const char *key, const presence_joiner *j,
                   char ref_out[PRESENCE_REF_MAX])
{
    pmeta p = {0};
    if (strlen(key) >= KEY_MAX) return -1;
    strcpy(p.key, key);
    make_ref(p.ref);
    p.online_at = util_now_unix_ms() / 1000;
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, true);
    int rc = t ? presence_table_add(t->t, &p) : -1;
    size_t viewers = t ? presence_table_count(t->t) : 0;
    if (t && rc != 0) topic_maybe_free(t);
    pthread_mutex_unlock(&g_mu);
    if (rc != 0) return -1;
    /* the diff first (the joiner is subscribed: it gets it too), then the
     * state: the order Phoenix sends */
    if (pend_add(topic, &p, true, j, viewers) != 0) {
        presence_untrack(topic, p.ref);
        return -1;
    }
    snprintf(ref_out, PRESENCE_REF_MAX, "%s", p.ref);
    return 0;
}

void presence_untrack(const char *topic, const char *ref)
{
    pmeta p;
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, false);
    bool found = t && presence_table_del(t->t, 0, ref, &p) == 0;
    size_t viewers = t ? presence_table_count(t->t) : 0;
    if (t) topic_maybe_free(t);
    pthread_mutex_unlock(&g_mu);
    if (found && pend_add(topic, &p, false, NULL, viewers) != 0)
        log_msg(LOG_WARN, "presence leave diff lost (out of memory)", "topic", json_string(topic), NULL);
}

/* presence_table_foreach callback: adds m to a state object {key:{"metas":[..]}}. */
static void add_meta(json_t *st, const pmeta *m)
{
    json_t *k = json_object_get(st, m->key);
    if (!k) {
        k = json_pack("{s:[]}", "metas");
        json_object_set_new(st, m->key, k);
    }
    json_array_append_new(json_object_get(k, "metas"),
                          json_pack("{s:I,s:s}", "online_at", (json_int_t)m->online_at, "phx_ref", m->ref));
}

json_t *presence_state(const char *topic)
{
    json_t *st = NULL;
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, false);
    size_t len = 0;
    const char *s = t ? presence_table_state(t->t, &len) : NULL;
    if (s) st = json_loadb(s, len, 0, NULL);
    pthread_mutex_unlock(&g_mu);
    return st ? st : json_object();
}

typedef struct by_node_ctx {
    json_t *out;
} by_node_ctx;

/* presence_table_foreach callback of presence_by_node (under g_mu). */
static void by_node_one(const pmeta *m, void *arg)
{
    by_node_ctx *c = arg;
    const char *node = m->node < g_nnodes ? g_nodes[m->node] : "";
    json_t *st = json_object_get(c->out, node);
    if (!st) {
        st = json_object();
        json_object_set_new(c->out, node, st);
    }
    add_meta(st, m);
}

json_t *presence_by_node(const char *topic)
{
    by_node_ctx c = {json_object()};
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, false);
    if (t) presence_table_foreach(t->t, by_node_one, &c);
    pthread_mutex_unlock(&g_mu);
    return c.out;
}

size_t presence_count(const char *topic)
{
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, false);
    size_t n = t ? presence_table_count(t->t) : 0;
    pthread_mutex_unlock(&g_mu);
    return n;
}

/* Applies one side ("joins" or "leaves") of a remote diff (under g_mu). */
static void apply_side(uint16_t node, ptopic *t, json_t *side, bool join)
{
    const char *key;
    json_t *v;
    json_object_foreach(side, key, v) {
        json_t *metas = json_object_get(v, "metas");
        size_t i;
        json_t *m;
        if (strlen(key) >= KEY_MAX || !json_is_array(metas)) continue;
        json_array_foreach(metas, i, m) {
            const char *ref = json_string_value(json_object_get(m, "phx_ref"));
            if (!ref || strlen(ref) >= PRESENCE_REF_MAX) continue;
            if (join) { /* a duplicate (a sync may already have brought it) is ignored */
                pmeta p = {0};
                strcpy(p.key, key);
                strcpy(p.ref, ref);
                p.node = node;
                p.online_at = json_integer_value(json_object_get(m, "online_at"));
                presence_table_add(t->t, &p);
            } else {
                presence_table_del(t->t, node, ref, NULL);
            }
        }
    }
}

void presence_apply_diff(const char *node, const char *topic, json_t *diff)
{
    if (!node || !*node || !json_is_object(diff)) return;
    pthread_mutex_lock(&g_mu);
    int nn = node_num(node, true);
    ptopic *t = nn > 0 ? topic_get(topic, true) : NULL;
    if (t) {
        apply_side((uint16_t)nn, t, json_object_get(diff, "joins"), true);
        apply_side((uint16_t)nn, t, json_object_get(diff, "leaves"), false);
        topic_maybe_free(t);
    }
    pthread_mutex_unlock(&g_mu);
}

typedef struct left {
    pmeta *v;
    size_t n, cap;
} left;

/* presence_table_del_node callback: collects a removed presence. */
static void collect_left(const pmeta *m, void *arg)
{
    left *l = arg;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        pmeta *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *m;
}

typedef struct topic_leaves {
    struct topic_leaves *next;
    left l;
    char topic[];
} topic_leaves;

void presence_node_down(const char *node)
{
    if (!node || !*node) return;
    /* collect the leaves per topic under the lock, broadcast after */
    topic_leaves *all = NULL;
    pthread_mutex_lock(&g_mu);
    int nn = node_num(node, false);
    for (size_t b = 0; nn > 0 && g_b && b < g_nb; b++)
        for (ptopic *t = g_b[b], *next; t; t = next) {
            next = t->next;
            left l = {0};
            if (presence_table_del_node(t->t, (uint16_t)nn, collect_left, &l) && l.n) {
                size_t tl = strlen(t->topic);
                topic_leaves *tv = malloc(sizeof *tv + tl + 1);
                if (tv) {
                    tv->l = l;
                    memcpy(tv->topic, t->topic, tl + 1);
                    tv->next = all;
                    all = tv;
                } else {
                    free(l.v);
                }
            } else {
                free(l.v);
            }
            topic_maybe_free(t);
        }
    pthread_mutex_unlock(&g_mu);
    while (all) {
        topic_leaves *tv = all;
        all = tv->next;
        size_t len;
        char *pj = presence_table_diff_encode(NULL, 0, tv->l.v, tv->l.n, &len);
        if (pj) {
            pubsub_msg *m = pubsub_msg_text(tv->topic, "presence_diff", pj, len, NULL);
            if (m) pubsub_deliver_node(m); /* this node's subscribers only */
        }
        free(pj);
        free(tv->l.v);
        free(tv);
    }
}

/* ------------------------------------------------------------------------ */
/* Online state                                                              */
/* ------------------------------------------------------------------------ */

typedef struct online {
    struct online *next;
    uint32_t count, cap;
    const void **chans; /* the connections counted (&one while cap == 1) */
    const void *one;    /* inline slot: a user with one connection needs no array */
    char uid[KEY_MAX];
} online;

#define ONLINE_BUCKETS 4096
static pthread_mutex_t o_mu = PTHREAD_MUTEX_INITIALIZER;
static online *o_b[ONLINE_BUCKETS];

/* Online/offline transitions are batched per reactor: at most one query
 * per PRESENCE_BATCH_MS stores last_seen_at and finds the contacts of every
 * user of the batch, so a connect storm costs Postgres a few queries per
 * second, not one per join. A user who went online and back offline within
 * one batch (or the reverse) is not announced. */
#define PRESENCE_BATCH_MS 100
#define PRESENCE_BATCH_MAX 1024 /* a full batch is sent at once */

typedef struct pend {
    char uid[KEY_MAX];
    bool on;
    uint32_t order; /* arrival, to keep the last state per user */
} pend;

typedef struct batch {
    uv_timer_t timer;
    bool timer_ready;
    uint32_t n;
    pend v[PRESENCE_BATCH_MAX]; /* no heap: nothing to free at shutdown */
} batch;

static _Thread_local batch t_batch;

static const char SQL_SEEN[] =
    "WITH ids AS (SELECT * FROM unnest($1::int8[], $2::bool[]) AS x(id, online)),"
    " u AS (UPDATE users SET last_seen_at = now() WHERE id IN (SELECT id FROM ids)"
    "       RETURNING id, last_seen_at)"
    " SELECT u.id::text, ids.online, sb_ts(u.last_seen_at),"
    "        (SELECT string_agg(c::text, ',') FROM sb_presence_audience(u.id, $3::int) c)"
    " FROM u JOIN ids ON ids.id = u.id";

/* last_seen_at is stored; tell the user's audience: direct contacts and
 * co-members of groups up to SB_PRESENCE_GROUP_MAX members, less those
 * sb_presence_hidden hides it from (migrations/110). One transition costs
 * at most that many pushes, whatever the size of the user's groups. */
static void batch_done(const PGresult *res, const char *err, void *arg)
{
    if (res && !err) {
        int n = PQntuples(res);
        for (int i = 0; i < n; i++) {
            if (PQgetisnull(res, i, 3)) continue; /* nobody to tell */
            json_t *p = json_pack("{s:s,s:b,s:o}", "user_id", PQgetvalue(res, i, 0), "online",
                                  PQgetvalue(res, i, 1)[0] == 't', "last_seen_at",
                                  pgval_str(res, i, 2));
            const char *c = PQgetvalue(res, i, 3);
            while (*c) {
                size_t len = strcspn(c, ",");
                char topic[40];
                if (len < 24) {
                    snprintf(topic, sizeof topic, "user:%.*s", (int)len, c);
                    pubsub_broadcast(topic, "presence", p, NULL);
                }
                c += len;
                if (*c == ',') c++;
            }
            json_decref(p);
        }
    } else if (err && strcmp(err, "unavailable") != 0) {
        log_msg(LOG_WARN, "presence transition query failed", "error", json_string(err), NULL);
    }
}

static int pend_cmp(const void *a, const void *b)
{
    const pend *x = a, *y = b;
    int c = strcmp(x->uid, y->uid);
    return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

/* Sends the batch of this reactor as one query. */
static void batch_flush(void)
{
    batch *bt = &t_batch;
    reactor *r = reactor_self();
    if (!bt->n) return;
    if (!r || !db_of(r)) {
        bt->n = 0;
        return;
    }
    qsort(bt->v, bt->n, sizeof *bt->v, pend_cmp);
    strbuf ids = {0}, ons = {0};
    strbuf_add(&ids, "{", 1, 0);
    strbuf_add(&ons, "{", 1, 0);
    bool any = false;
    for (uint32_t i = 0; i < bt->n;) {
        uint32_t j = i;
        while (j + 1 < bt->n && !strcmp(bt->v[j + 1].uid, bt->v[i].uid)) j++;
        /* announced when the user ends where the first transition took
         * them: online then offline (or back) within a batch cancels out */
        if (bt->v[j].on == bt->v[i].on) {
            strbuf_addf(&ids, "%s%s", any ? "," : "", bt->v[j].uid);
            strbuf_addf(&ons, "%s%s", any ? "," : "", bt->v[j].on ? "t" : "f");
            any = true;
        }
        i = j + 1;
    }
    strbuf_add(&ids, "}", 1, 0);
    strbuf_add(&ons, "}", 1, 0);
    bt->n = 0;
    if (any && ids.p && ons.p) {
        char gmax[16];
        snprintf(gmax, sizeof gmax, "%d", g_config.presence_group_max);
        const char *p[3] = {ids.p, ons.p, gmax};
        db_query(db_of(r), SQL_SEEN, 3, p, batch_done, NULL);
    }
    strbuf_free(&ids);
    strbuf_free(&ons);
}

static void batch_timer(uv_timer_t *t) { batch_flush(); }

/* Queues a transition for this reactor's next batch. */
static void announce(const char *uid, bool on)
{
    reactor *r = reactor_self();
    batch *bt = &t_batch;
    if (!r || !db_of(r) || !id_parse(uid) || strlen(uid) >= KEY_MAX) return;
    if (bt->n == PRESENCE_BATCH_MAX) batch_flush();
    pend *pe = &bt->v[bt->n];
    strcpy(pe->uid, uid);
    pe->on = on;
    pe->order = bt->n++;
    if (!bt->timer_ready) {
        if (uv_timer_init(&r->loop, &bt->timer) != 0) {
            batch_flush();
            return;
        }
        uv_unref((uv_handle_t *)&bt->timer);
        bt->timer_ready = true;
    }
    if (!uv_is_active((uv_handle_t *)&bt->timer))
        uv_timer_start(&bt->timer, batch_timer, PRESENCE_BATCH_MS, 0);
}

void presence_user_up(const char *user_id, const void *conn)
{
    if (strlen(user_id) >= KEY_MAX) return;
    uint64_t h = hash_str(user_id) % ONLINE_BUCKETS;
    bool first = false;
    pthread_mutex_lock(&o_mu);
    online *o = o_b[h];
    while (o && strcmp(o->uid, user_id)) o = o->next;
    if (!o && (o = calloc(1, sizeof *o))) {
        strcpy(o->uid, user_id);
        o->chans = &o->one;
        o->cap = 1;
        o->next = o_b[h];
        o_b[h] = o;
    }
    if (o && o->count == o->cap) {
        uint32_t nc = o->cap * 2;
        const void **nv = o->chans == &o->one ? malloc(nc * sizeof *nv)
                                              : realloc(o->chans, nc * sizeof *nv);
        if (nv && o->chans == &o->one) nv[0] = o->one;
        if (nv) {
            o->chans = nv;
            o->cap = nc;
        }
    }
    if (o && o->count < o->cap) {
        o->chans[o->count] = conn;
        first = o->count++ == 0;
    }
    pthread_mutex_unlock(&o_mu);
    if (first && presence_cluster_user_up(user_id)) announce(user_id, true);
}

void presence_user_down(const char *user_id, const void *conn)
{
    if (strlen(user_id) >= KEY_MAX) return;
    uint64_t h = hash_str(user_id) % ONLINE_BUCKETS;
    bool last = false;
    pthread_mutex_lock(&o_mu);
    online **pp = &o_b[h];
    while (*pp && strcmp((*pp)->uid, user_id)) pp = &(*pp)->next;
    online *o = *pp;
    for (uint32_t i = 0; o && i < o->count; i++)
        if (o->chans[i] == conn) {
            o->chans[i] = o->chans[--o->count];
            if (o->count == 0) {
                *pp = o->next;
                if (o->chans != &o->one) free(o->chans);
                free(o);
                last = true;
            }
            break;
        }
    pthread_mutex_unlock(&o_mu);
    if (last && presence_cluster_user_down(user_id)) announce(user_id, false);
}

void presence_announce(const char *user_id, bool on) { announce(user_id, on); }

void presence_local_users(void (*fn)(const char *user_id, void *arg), void *arg)
{
    pthread_mutex_lock(&o_mu);
    for (size_t b = 0; b < ONLINE_BUCKETS; b++)
        for (online *o = o_b[b]; o; o = o->next)
            if (o->count > 0) fn(o->uid, arg);
    pthread_mutex_unlock(&o_mu);
}

bool presence_user_local(const char *user_id)
{
    if (strlen(user_id) >= KEY_MAX) return false;
    uint64_t h = hash_str(user_id) % ONLINE_BUCKETS;
    pthread_mutex_lock(&o_mu);
    online *o = o_b[h];
    while (o && strcmp(o->uid, user_id)) o = o->next;
    bool on = o && o->count > 0;
    pthread_mutex_unlock(&o_mu);
    return on;
}

bool presence_user_online(const char *user_id, int64_t *last_seen_ms)
{
    bool on = presence_user_local(user_id);
    if (!on) on = presence_cluster_user_remote(user_id); /* on another node */
    if (on && last_seen_ms) *last_seen_ms = util_now_unix_ms();
    return on;
}
