/* presence.c — Phoenix Presence tables and users' online state (see
 * presence.h). One mutex guards each table; nothing here blocks on I/O
 * while holding it. */
#include "presence.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db.h"
#include "log.h"
#include "presence_cluster.h"
#include "pubsub.h"
#include "reactor.h"
#include "rest.h"
#include "util.h"

#define KEY_MAX 24  /* user ids: up to 20 digits */
#define NODE_MAX 64 /* node names (SB_NODE_ID); "" = this node */

typedef struct pres {
    char key[KEY_MAX];
    char ref[PRESENCE_REF_MAX];
    char node[NODE_MAX];
    int64_t online_at; /* unix seconds */
} pres;

typedef struct ptopic {
    struct ptopic *next;
    uint64_t hash;
    pres *v;
    uint32_t n, cap;
    char topic[];
} ptopic;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static ptopic **g_b;
static size_t g_nb, g_count;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
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
    if (t->n) return;
    ptopic **pp = &g_b[t->hash & (g_nb - 1)];
    while (*pp && *pp != t) pp = &(*pp)->next;
    if (*pp) *pp = t->next;
    g_count--;
    free(t->v);
    free(t);
}

static int topic_add(ptopic *t, const pres *p)
{
    if (t->n == t->cap) {
        uint32_t nc = t->cap ? t->cap * 2 : 4;
        pres *nv = realloc(t->v, nc * sizeof *nv);
        if (!nv) return -1;
        t->v = nv;
        t->cap = nc;
    }
    t->v[t->n++] = *p;
    return 0;
}

/* Removes the presence at index i (order is not kept). */
static void topic_del(ptopic *t, uint32_t i)
{
    t->v[i] = t->v[--t->n];
    if (t->cap > 16 && t->n < t->cap / 4) {
        pres *nv = realloc(t->v, (t->cap / 2) * sizeof *nv);
        if (nv) {
            t->v = nv;
            t->cap /= 2;
        }
    }
}

static json_t *meta_json(const pres *p)
{
    return json_pack("{s:I,s:s}", "online_at", (json_int_t)p->online_at, "phx_ref", p->ref);
}

/* {"joins": {key: {"metas": [meta]}}, "leaves": {}} or the leave form. */
static json_t *diff_json(const pres *p, bool join)
{
    json_t *one = json_pack("{s:{s:[o]}}", p->key, "metas", meta_json(p));
    return json_pack("{s:o,s:o}", "joins", join ? one : json_object(), "leaves",
                     join ? json_object() : one);
}

/* A unique phx_ref: base64url of a node-wide counter and random bytes. */
static void make_ref(char out[PRESENCE_REF_MAX])
{
    static _Atomic uint64_t ctr;
    uint8_t raw[12];
    uint64_t c = atomic_fetch_add(&ctr, 1);
    memcpy(raw, &c, 8);
    if (random_bytes(raw + 8, 4) != 0) memset(raw + 8, 0x5a, 4);
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

int presence_track(phx_channel *ch, const char *key, char ref_out[PRESENCE_REF_MAX])
{
    pres p = {0};
    if (strlen(key) >= KEY_MAX) return -1;
    strcpy(p.key, key);
    make_ref(p.ref);
    p.online_at = now_unix_ms() / 1000;
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(ch->topic, true);
    int rc = t ? topic_add(t, &p) : -1;
    pthread_mutex_unlock(&g_mu);
    if (rc != 0) return -1;
    snprintf(ref_out, PRESENCE_REF_MAX, "%s", p.ref);
    /* the diff first (this channel is subscribed: it gets it too), then the
     * state: the order Phoenix sends */
    json_t *d = diff_json(&p, true);
    pubsub_broadcast(ch->topic, "presence_diff", d, NULL);
    json_decref(d);
    json_t *st = presence_state(ch->topic);
    phx_push(ch, "presence_state", st);
    json_decref(st);
    return 0;
}

void presence_untrack(const char *topic, const char *ref)
{
    pres p;
    bool found = false;
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, false);
    for (uint32_t i = 0; t && i < t->n; i++)
        if (!t->v[i].node[0] && !strcmp(t->v[i].ref, ref)) {
            p = t->v[i];
            topic_del(t, i);
            found = true;
            break;
        }
    if (t) topic_maybe_free(t);
    pthread_mutex_unlock(&g_mu);
    if (!found) return;
    json_t *d = diff_json(&p, false);
    pubsub_broadcast(topic, "presence_diff", d, NULL);
    json_decref(d);
}

json_t *presence_state(const char *topic)
{
    json_t *st = json_object();
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, false);
    for (uint32_t i = 0; t && i < t->n; i++) {
        json_t *k = json_object_get(st, t->v[i].key);
        if (!k) {
            k = json_pack("{s:[]}", "metas");
            json_object_set_new(st, t->v[i].key, k);
        }
        json_array_append_new(json_object_get(k, "metas"), meta_json(&t->v[i]));
    }
    pthread_mutex_unlock(&g_mu);
    return st;
}

json_t *presence_by_node(const char *topic)
{
    json_t *out = json_object();
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, false);
    for (uint32_t i = 0; t && i < t->n; i++) {
        json_t *st = json_object_get(out, t->v[i].node);
        if (!st) {
            st = json_object();
            json_object_set_new(out, t->v[i].node, st);
        }
        json_t *k = json_object_get(st, t->v[i].key);
        if (!k) {
            k = json_pack("{s:[]}", "metas");
            json_object_set_new(st, t->v[i].key, k);
        }
        json_array_append_new(json_object_get(k, "metas"), meta_json(&t->v[i]));
    }
    pthread_mutex_unlock(&g_mu);
    return out;
}

size_t presence_count(const char *topic)
{
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, false);
    size_t n = t ? t->n : 0;
    pthread_mutex_unlock(&g_mu);
    return n;
}

/* Applies one side ("joins" or "leaves") of a remote diff (under g_mu). */
static void apply_side(const char *node, ptopic *t, json_t *side, bool join)
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
            if (join) {
                bool dup = false; /* a sync may already have brought it */
                for (uint32_t j = 0; j < t->n && !dup; j++)
                    dup = !strcmp(t->v[j].ref, ref) && !strcmp(t->v[j].node, node);
                if (dup) continue;
                pres p = {0};
                strcpy(p.key, key);
                strcpy(p.ref, ref);
                snprintf(p.node, sizeof p.node, "%s", node);
                p.online_at = json_integer_value(json_object_get(m, "online_at"));
                topic_add(t, &p);
            } else {
                for (uint32_t j = 0; j < t->n; j++)
                    if (!strcmp(t->v[j].ref, ref) && !strcmp(t->v[j].node, node)) {
                        topic_del(t, j);
                        break;
                    }
            }
        }
    }
}

void presence_apply_diff(const char *node, const char *topic, json_t *diff)
{
    if (!node || !*node || !json_is_object(diff)) return;
    pthread_mutex_lock(&g_mu);
    ptopic *t = topic_get(topic, true);
    if (t) {
        apply_side(node, t, json_object_get(diff, "joins"), true);
        apply_side(node, t, json_object_get(diff, "leaves"), false);
        topic_maybe_free(t);
    }
    pthread_mutex_unlock(&g_mu);
}

void presence_node_down(const char *node)
{
    if (!node || !*node) return;
    /* collect the leaves per topic under the lock, broadcast after */
    json_t *out = json_object(); /* topic -> leaves object */
    pthread_mutex_lock(&g_mu);
    for (size_t b = 0; g_b && b < g_nb; b++)
        for (ptopic *t = g_b[b], *next; t; t = next) {
            next = t->next;
            for (uint32_t i = 0; i < t->n;) {
                if (strcmp(t->v[i].node, node) != 0) {
                    i++;
                    continue;
                }
                json_t *lv = json_object_get(out, t->topic);
                if (!lv) {
                    lv = json_object();
                    json_object_set_new(out, t->topic, lv);
                }
                json_t *k = json_object_get(lv, t->v[i].key);
                if (!k) {
                    k = json_pack("{s:[]}", "metas");
                    json_object_set_new(lv, t->v[i].key, k);
                }
                json_array_append_new(json_object_get(k, "metas"), meta_json(&t->v[i]));
                t->v[i] = t->v[--t->n];
            }
            topic_maybe_free(t);
        }
    pthread_mutex_unlock(&g_mu);
    const char *topic;
    json_t *lv;
    json_object_foreach(out, topic, lv) {
        json_t *d = json_pack("{s:{},s:O}", "joins", "leaves", lv);
        char *pj = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        if (!pj) continue;
        pubsub_msg *m = pubsub_msg_text(topic, "presence_diff", pj, strlen(pj), NULL);
        free(pj);
        if (m) pubsub_deliver_node(m); /* this node's subscribers only */
    }
    json_decref(out);
}

/* ------------------------------------------------------------------------ */
/* Online state                                                              */
/* ------------------------------------------------------------------------ */

typedef struct online {
    struct online *next;
    uint32_t count, cap;
    const void **chans; /* the joined user: channels counted (&one while cap == 1) */
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
    "        (SELECT string_agg(c::text, ',') FROM sb_contacts(u.id) c)"
    " FROM u JOIN ids ON ids.id = u.id";

/* last_seen_at is stored; tell everyone who shares a conversation. */
static void batch_done(const PGresult *res, const char *err, void *arg)
{
    if (res && !err) {
        int n = PQntuples(res);
        for (int i = 0; i < n; i++) {
            if (PQgetisnull(res, i, 3)) continue; /* nobody to tell */
            json_t *p = json_pack("{s:s,s:b,s:o}", "user_id", PQgetvalue(res, i, 0), "online",
                                  PQgetvalue(res, i, 1)[0] == 't', "last_seen_at",
                                  rest_pg_str(res, i, 2));
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
    if (!r || !r->db) {
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
        const char *p[2] = {ids.p, ons.p};
        db_query(r->db, SQL_SEEN, 2, p, batch_done, NULL);
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
    if (!r || !r->db || !rest_parse_id(uid) || strlen(uid) >= KEY_MAX) return;
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

void presence_user_up(phx_channel *ch)
{
    const char *user_id = ch->sock->claims.user_id;
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
        o->chans[o->count] = ch;
        first = o->count++ == 0;
    }
    pthread_mutex_unlock(&o_mu);
    if (first && presence_cluster_user_up(user_id)) announce(user_id, true);
}

void presence_user_down(phx_channel *ch)
{
    const char *user_id = ch->sock->claims.user_id;
    if (strlen(user_id) >= KEY_MAX) return;
    uint64_t h = hash_str(user_id) % ONLINE_BUCKETS;
    bool last = false;
    pthread_mutex_lock(&o_mu);
    online **pp = &o_b[h];
    while (*pp && strcmp((*pp)->uid, user_id)) pp = &(*pp)->next;
    online *o = *pp;
    for (uint32_t i = 0; o && i < o->count; i++)
        if (o->chans[i] == ch) {
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

bool presence_user_online(const char *user_id, int64_t *last_seen_ms)
{
    if (strlen(user_id) >= KEY_MAX) return false;
    uint64_t h = hash_str(user_id) % ONLINE_BUCKETS;
    pthread_mutex_lock(&o_mu);
    online *o = o_b[h];
    while (o && strcmp(o->uid, user_id)) o = o->next;
    bool on = o && o->count > 0;
    pthread_mutex_unlock(&o_mu);
    if (!on) on = presence_cluster_user_remote(user_id); /* on another node */
    if (on && last_seen_ms) *last_seen_ms = now_unix_ms();
    return on;
}
