/* ratelimit.c — token buckets in a bounded LRU table (see ratelimit.h). */
#include "base/ratelimit.h"
#include "base/metrics.h"

#include <arpa/inet.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/util.h"

#define RL_KEY_MAX 128

/* ------------------------------------------------------------------------ */
/* Bucket math                                                               */
/* ------------------------------------------------------------------------ */

int64_t ratelimit_bucket_take(ratelimit_bucket *b, const ratelimit_limit *lim, int64_t now_ms, double cost)
{
    if (lim->burst <= 0 || lim->period_s <= 0) return 0;
    double rate = lim->burst / (lim->period_s * 1000.0); /* tokens per ms */
    if (b->last_ms == 0) {
        b->tokens = lim->burst;
        b->last_ms = now_ms;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate;
        if (b->tokens > lim->burst) b->tokens = lim->burst;
        b->last_ms = now_ms;
    } else if (now_ms < b->last_ms) {
        b->last_ms = now_ms; /* clock went back: refill from here on */
    }
    if (b->tokens + 1e-9 >= cost) {
        b->tokens -= cost;
        if (b->tokens < 0) b->tokens = 0;
        return 0;
    }
    /* (a hair under, so float error never turns 1.0 ms into 2) */
    double wait = ceil((cost - b->tokens) / rate - 1e-6);
    if (wait < 1) wait = 1;
    if (wait > 1e12) wait = 1e12;
    return (int64_t)wait;
}

int ratelimit_limit_parse(const char *spec, ratelimit_limit *out)
{
    if (!spec) return -1;
    if (!strcmp(spec, "0") || !strcmp(spec, "off")) {
        out->burst = 0;
        out->period_s = 0;
        return 0;
    }
    char *end;
    double n = strtod(spec, &end);
    if (end == spec || *end != '/' || !(n > 0) || n > 1e9) return -1;
    const char *p = end + 1;
    double s = strtod(p, &end);
    if (end == p || *end || !(s > 0) || s > 1e9) return -1;
    out->burst = n;
    out->period_s = s;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* SipHash-2-4 (keys are attacker-chosen: a keyed hash prevents flooding)    */
/* ------------------------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* SipHash-2-4 of in[0..len) under the 128-bit key (k0, k1). */
static uint64_t siphash(const uint8_t *in, size_t len, uint64_t k0, uint64_t k1)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = 0;
        for (int k = 0; k < 8; k++)
            m |= (uint64_t)in[i + k] << (8 * k);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t k = 0; i + k < len; k++)
        b |= (uint64_t)in[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ------------------------------------------------------------------------ */
/* The table: chained hash + LRU list, under one mutex                       */
/* ------------------------------------------------------------------------ */

typedef struct ratelimit_entry {
    struct ratelimit_entry *chain;         /* next in the hash chain */
    struct ratelimit_entry *newer, *older; /* LRU list */
    uint64_t hash;
    ratelimit_bucket b;
    uint8_t keylen;
    char key[];
} ratelimit_entry;

struct ratelimit_table {
    pthread_mutex_t mu;
    ratelimit_entry **slots;
    size_t nslots; /* power of two */
    size_t n, max;
    ratelimit_entry *newest, *oldest;
    uint64_t k0, k1;
    _Atomic uint32_t refused; /* sb_rate_limited_total{kind} (ratelimit_table_set_kind) */
};

static metrics_id g_rl_other, g_rl_kind[RL_NKINDS];
__attribute__((constructor)) static void ratelimit_metrics(void)
{
    static const char *const names[RL_NKINDS] = {"login_ip", "login_account", "signup_ip", "connect_ip"};
    for (int k = 0; k < RL_NKINDS; k++) {
        char l[64];
        snprintf(l, sizeof l, "kind=\"%s\"", names[k]);
        g_rl_kind[k] = metrics_counter("sb_rate_limited_total", "Requests refused by a rate limit, by kind.", l);
    }
    g_rl_other = metrics_counter("sb_rate_limited_total", "Requests refused by a rate limit, by kind.", "kind=\"other\"");
}

ratelimit_table *ratelimit_table_new(size_t max_entries)
{
    if (max_entries < 1) max_entries = 1;
    ratelimit_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->nslots = 16;
    while (t->nslots < max_entries && t->nslots < ((size_t)1 << 24))
        t->nslots <<= 1;
    t->slots = calloc(t->nslots, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->max = max_entries;
    uint64_t k[2] = {0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL};
    util_random_bytes(k, sizeof k);
    t->k0 = k[0];
    t->k1 = k[1];
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void ratelimit_table_free(ratelimit_table *t)
{
    if (!t) return;
    for (ratelimit_entry *e = t->newest, *next; e; e = next) {
        next = e->older;
        free(e);
    }
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
}

/* Removes e from the LRU list. */
static void lru_unlink(ratelimit_table *t, ratelimit_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    e->newer = e->older = NULL;
}

/* Puts e at the recent end of the LRU list. */
static void lru_push(ratelimit_table *t, ratelimit_entry *e)
{
    e->newer = NULL;
    e->older = t->newest;
    if (t->newest) t->newest->newer = e;
    t->newest = e;
    if (!t->oldest) t->oldest = e;
}

/* Removes e from its chain and the LRU list and frees it. */
static void entry_drop(ratelimit_table *t, ratelimit_entry *e)
{
    ratelimit_entry **pp = &t->slots[e->hash & (t->nslots - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->chain;
    if (*pp) *pp = e->chain;
    lru_unlink(t, e);
    t->n--;
    free(e);
}

static const char RL_HELP[] = "Requests refused by a rate limit, by kind.";

void ratelimit_table_set_kind(ratelimit_table *t, const char *kind)
{
    char l[80];
    snprintf(l, sizeof l, "kind=\"%.60s\"", kind);
    atomic_store(&t->refused, metrics_counter("sb_rate_limited_total", RL_HELP, l));
}

static int64_t table_take(ratelimit_table *t, const char *key, const ratelimit_limit *lim, int64_t now_ms,
                          double cost);

int64_t ratelimit_table_take(ratelimit_table *t, const char *key, const ratelimit_limit *lim, int64_t now_ms,
                      double cost)
{
    int64_t w = table_take(t, key, lim, now_ms, cost);
    if (w > 0) {
        uint32_t id = atomic_load_explicit(&t->refused, memory_order_relaxed);
        metrics_inc(id ? id : g_rl_other);
    }
    return w;
}

static int64_t table_take(ratelimit_table *t, const char *key, const ratelimit_limit *lim, int64_t now_ms,
                          double cost)
{
    if (lim->burst <= 0 || lim->period_s <= 0) return 0;
    size_t klen = strlen(key);
    if (klen > RL_KEY_MAX) klen = RL_KEY_MAX;
    uint64_t h = siphash((const uint8_t *)key, klen, t->k0, t->k1);
    pthread_mutex_lock(&t->mu);
    ratelimit_entry *e = t->slots[h & (t->nslots - 1)];
    while (e && !(e->hash == h && e->keylen == klen && !memcmp(e->key, key, klen)))
        e = e->chain;
    if (e) {
        lru_unlink(t, e);
        lru_push(t, e);
    } else {
        if (t->n >= t->max) entry_drop(t, t->oldest);
        e = calloc(1, sizeof *e + klen);
        if (!e) {
            pthread_mutex_unlock(&t->mu);
            return 0;
        }
        e->hash = h;
        e->keylen = (uint8_t)klen;
        memcpy(e->key, key, klen);
        size_t s = h & (t->nslots - 1);
        e->chain = t->slots[s];
        t->slots[s] = e;
        lru_push(t, e);
        t->n++;
    }
    int64_t wait = ratelimit_bucket_take(&e->b, lim, now_ms, cost);
    pthread_mutex_unlock(&t->mu);
    return wait;
}

size_t ratelimit_table_size(ratelimit_table *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Named limits                                                              */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static ratelimit_table *g_table;
static ratelimit_limit g_limits[RL_NKINDS];
static bool g_limits_set;
static const char *const g_defaults[RL_NKINDS] = {RL_DEFAULT_LOGIN_IP, RL_DEFAULT_LOGIN_ACCOUNT,
                                                  RL_DEFAULT_SIGNUP_IP, RL_DEFAULT_CONNECT_IP};

/* Fills unset limits with the defaults and makes the table (under g_mu). */
static void init_locked(void)
{
    if (!g_limits_set) {
        for (int k = 0; k < RL_NKINDS; k++)
            ratelimit_limit_parse(g_defaults[k], &g_limits[k]);
        g_limits_set = true;
    }
    if (!g_table) g_table = ratelimit_table_new(RL_TABLE_MAX);
}

void ratelimit_set(int kind, ratelimit_limit lim)
{
    if (kind < 0 || kind >= RL_NKINDS) return;
    pthread_mutex_lock(&g_mu);
    init_locked();
    g_limits[kind] = lim;
    pthread_mutex_unlock(&g_mu);
}

int ratelimit_configure(const char *login_ip, const char *login_account, const char *signup_ip,
                        const char *connect_ip)
{
    const char *specs[RL_NKINDS] = {login_ip, login_account, signup_ip, connect_ip};
    ratelimit_limit parsed[RL_NKINDS];
    for (int k = 0; k < RL_NKINDS; k++)
        if (specs[k] && specs[k][0] && ratelimit_limit_parse(specs[k], &parsed[k]) != 0) return -1;
    for (int k = 0; k < RL_NKINDS; k++)
        if (specs[k] && specs[k][0]) ratelimit_set(k, parsed[k]);
    return 0;
}

/* Monotonic milliseconds (never 0, which marks a new bucket). */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}

int ratelimit_hit(int kind, const char *key)
{
    if (kind < 0 || kind >= RL_NKINDS) return 0;
    pthread_mutex_lock(&g_mu);
    init_locked();
    ratelimit_limit lim = g_limits[kind];
    ratelimit_table *t = g_table;
    pthread_mutex_unlock(&g_mu);
    if (!t) return 0;
    char k[RL_KEY_MAX + 1];
    snprintf(k, sizeof k, "%d:%s", kind, key);
    int64_t ms = table_take(t, k, &lim, mono_ms(), 1.0);
    if (ms > 0) metrics_inc(g_rl_kind[kind]);
    if (ms <= 0) return 0;
    int64_t s = (ms + 999) / 1000;
    return s > 1000000 ? 1000000 : (int)s;
}

void ratelimit_ip_key(const char *ip, char *out, size_t outlen)
{
    struct in6_addr a6;
    if (strchr(ip, ':') && strncmp(ip, "::ffff:", 7) != 0 && inet_pton(AF_INET6, ip, &a6) == 1) {
        memset(a6.s6_addr + 8, 0, 8);
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a6, buf, sizeof buf);
        snprintf(out, outlen, "%s/64", buf);
    } else {
        snprintf(out, outlen, "%s", ip);
    }
}
