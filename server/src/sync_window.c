/* sync_window.c — the in-memory window of recent stable events (see
 * sync_window.h and docs/sync.md, "Sync from memory"). */
#include "sync_window.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "reactor.h"
#include "tailer.h"

#define PAGE_BYTES 4194304 /* as sb_sync_page: a page stops at about 4 MiB of payloads */

/* One event: its recipients (sorted), its type and its compact payload
 * prefix (tailer.h), in one allocation. */
typedef struct win_ev {
    sync_pos pos;
    uint32_t nrcpt;
    uint32_t type_len;
    size_t prefix_len;
    size_t bytes;  /* what it counts against the cap */
    char *type;    /* NUL-terminated, inside the allocation */
    char *prefix;  /* prefix_len bytes, inside the allocation */
    int64_t rcpt[]; /* ascending */
} win_ev;

static pthread_rwlock_t g_mu;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static win_ev **g_ring;   /* circular, g_cap slots, g_n events from g_head, ascending */
static size_t g_cap, g_head, g_n;
static size_t g_bytes, g_max;
static sync_pos g_lo, g_hi;
static bool g_on;

/* Freshness (sync_window.h): fetches are numbered as the tailer sends them;
 * g_covered is the number of the last one that reached the horizon. Read
 * and written under g_wmu, with the waiters. */
static atomic_uint_fast64_t g_fetch_seq;
static pthread_mutex_t g_wmu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_covered;
typedef struct waiter {
    struct waiter *next;
    uint64_t ticket;
    uint64_t since_ms;
    reactor *r;
    sync_window_wake_cb cb;
    void *arg;
    bool fallback;
} waiter;
static waiter *g_waiters;
static int g_nwaiters;
static bool g_live; /* the tailer is connected: waiting makes sense */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void init_lock(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
#ifdef PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP
    /* the tailer must not starve behind a stream of readers */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(&g_mu, &a);
    pthread_rwlockattr_destroy(&a);
}

static void wrlock(void)
{
    pthread_once(&g_once, init_lock);
    pthread_rwlock_wrlock(&g_mu);
}

static void rdlock(void)
{
    pthread_once(&g_once, init_lock);
    pthread_rwlock_rdlock(&g_mu);
}

static void unlock(void) { pthread_rwlock_unlock(&g_mu); }

static win_ev *at(size_t i) { return g_ring[(g_head + i) % g_cap]; }

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Builds an event from the tailer's columns. Returns NULL when malformed or
 * out of memory. */
static win_ev *ev_new(sync_pos pos, const char *type, const char *payload, const char *rcpt)
{
    if (!type || !payload || !rcpt || rcpt[0] != '{') return NULL;
    uint32_t n = 0;
    for (const char *p = rcpt + 1; *p && *p != '}'; p++)
        if (*p == ',') n++;
    if (rcpt[1] != '}') n++;
    size_t plen = 0;
    char *prefix = sync_payload_prefix(payload, &plen);
    if (!prefix) return NULL;
    size_t tlen = strlen(type);
    size_t sz = sizeof(win_ev) + (size_t)n * sizeof(int64_t) + tlen + 1 + plen;
    win_ev *e = malloc(sz);
    if (!e) {
        free(prefix);
        return NULL;
    }
    e->pos = pos;
    e->nrcpt = 0;
    const char *p = rcpt + 1;
    while (*p && *p != '}' && e->nrcpt < n) {
        char *end = NULL;
        long long v = strtoll(p, &end, 10);
        if (end == p || (*end != ',' && *end != '}')) {
            free(prefix);
            free(e);
            return NULL;
        }
        e->rcpt[e->nrcpt++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    qsort(e->rcpt, e->nrcpt, sizeof(int64_t), cmp_i64);
    e->type = (char *)(e->rcpt + n);
    memcpy(e->type, type, tlen + 1);
    e->type_len = (uint32_t)tlen;
    e->prefix = e->type + tlen + 1;
    memcpy(e->prefix, prefix, plen);
    e->prefix_len = plen;
    e->bytes = sz + sizeof(win_ev *);
    free(prefix);
    return e;
}

/* Empties the ring (lock held). */
static void clear_locked(void)
{
    for (size_t i = 0; i < g_n; i++) free(at(i));
    g_n = 0;
    g_head = 0;
    g_bytes = 0;
}

/* Room for one more event (lock held). Returns 0 or -1. */
static int grow_locked(void)
{
    if (g_n < g_cap) return 0;
    size_t cap = g_cap ? g_cap * 2 : 1024;
    win_ev **r = malloc(cap * sizeof *r);
    if (!r) return -1;
    for (size_t i = 0; i < g_n; i++) r[i] = at(i);
    free(g_ring);
    g_ring = r;
    g_cap = cap;
    g_head = 0;
    return 0;
}

/* Drops the oldest event; lo moves to its position (lock held). */
static void pop_oldest_locked(void)
{
    win_ev *e = at(0);
    if (sync_pos_cmp(e->pos, g_lo) > 0) g_lo = e->pos;
    g_bytes -= e->bytes;
    free(e);
    g_head = (g_head + 1) % g_cap;
    g_n--;
}

void sync_window_start(sync_pos start, size_t max_bytes)
{
    wrlock();
    clear_locked();
    g_lo = g_hi = start;
    g_max = max_bytes;
    g_on = max_bytes > 0;
    unlock();
}

int sync_window_append(sync_pos pos, const char *type, const char *payload, const char *rcpt)
{
    wrlock();
    if (!g_on || (g_n > 0 && sync_pos_cmp(pos, at(g_n - 1)->pos) <= 0) ||
        sync_pos_cmp(pos, g_hi) <= 0) {
        unlock();
        return 0;
    }
    win_ev *e = ev_new(pos, type, payload, rcpt);
    if (!e || grow_locked() != 0) {
        /* the window cannot hold it: start afresh after it */
        free(e);
        clear_locked();
        g_lo = g_hi = pos;
        unlock();
        return -1;
    }
    g_ring[(g_head + g_n) % g_cap] = e;
    g_n++;
    g_bytes += e->bytes;
    while (g_n > 1 && g_bytes > g_max) pop_oldest_locked();
    unlock();
    return 0;
}

int sync_window_prepend(sync_pos base, sync_pos pos, const char *type, const char *payload,
                        const char *rcpt)
{
    wrlock();
    if (!g_on || sync_pos_cmp(base, g_lo) != 0 || sync_pos_cmp(pos, g_lo) >= 0 ||
        (g_n > 0 && sync_pos_cmp(pos, at(0)->pos) >= 0)) {
        unlock();
        return 1;
    }
    win_ev *e = ev_new(pos, type, payload, rcpt);
    if (!e || g_bytes + e->bytes > g_max / 2 || grow_locked() != 0) {
        free(e);
        unlock();
        return 1;
    }
    g_head = (g_head + g_cap - 1) % g_cap;
    g_ring[g_head] = e;
    g_n++;
    g_bytes += e->bytes;
    unlock();
    return 0;
}

bool sync_window_backfilled(sync_pos base, sync_pos lo)
{
    wrlock();
    /* exactness: every event in [lo, base) was prepended (an event at lo
     * itself is held but never read: reads start after their cursor) */
    bool ok = sync_pos_cmp(base, g_lo) == 0 && sync_pos_cmp(lo, g_lo) < 0;
    if (ok) g_lo = lo;
    unlock();
    return ok;
}

/* Runs on the waiter's reactor. */
static void wake_task(void *arg)
{
    waiter *w = arg;
    w->cb(w->arg, w->fallback);
    free(w);
}

/* Hands the waiters that may go (all with `all`) back to their reactors. */
static void wake_waiters(bool all, uint64_t now_ms)
{
    waiter *go = NULL;
    pthread_mutex_lock(&g_wmu);
    for (waiter **pp = &g_waiters; *pp;) {
        waiter *w = *pp;
        bool stale = now_ms - w->since_ms > SYNC_WINDOW_WAIT_MS;
        if (all || stale || w->ticket <= g_covered) {
            w->fallback = all || (stale && w->ticket > g_covered);
            *pp = w->next;
            w->next = go;
            go = w;
            g_nwaiters--;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&g_wmu);
    while (go) {
        waiter *w = go;
        go = w->next;
        /* answered on its own reactor only (never from this thread): out
         * of memory, the request is dropped unanswered */
        if (reactor_post(w->r, wake_task, w) != 0) free(w);
    }
}

void sync_window_advance(sync_pos hi, uint64_t covered_seq)
{
    wrlock();
    if (sync_pos_cmp(hi, g_hi) > 0) g_hi = hi;
    unlock();
    pthread_mutex_lock(&g_wmu);
    if (covered_seq > g_covered) g_covered = covered_seq;
    bool any = g_waiters != NULL;
    pthread_mutex_unlock(&g_wmu);
    if (any) wake_waiters(false, mono_ms());
}

uint64_t sync_window_fetch_sent(void) { return atomic_fetch_add(&g_fetch_seq, 1) + 1; }

void sync_window_live(bool live)
{
    pthread_mutex_lock(&g_wmu);
    g_live = live;
    pthread_mutex_unlock(&g_wmu);
    if (!live) wake_waiters(true, 0);
}

int sync_window_wait(uint64_t ticket, reactor *r, sync_window_wake_cb cb, void *arg)
{
    pthread_mutex_lock(&g_wmu);
    if (ticket <= g_covered) {
        pthread_mutex_unlock(&g_wmu);
        return 1;
    }
    waiter *w = g_live && g_nwaiters < SYNC_WINDOW_WAITERS ? malloc(sizeof *w) : NULL;
    if (!w) {
        pthread_mutex_unlock(&g_wmu);
        return -1;
    }
    *w = (waiter){g_waiters, ticket, mono_ms(), r, cb, arg, false};
    g_waiters = w;
    g_nwaiters++;
    pthread_mutex_unlock(&g_wmu);
    return 0;
}

void sync_window_pruned(sync_pos wm)
{
    wrlock();
    while (g_n > 0 && sync_pos_cmp(at(0)->pos, wm) <= 0) pop_oldest_locked();
    if (sync_pos_cmp(wm, g_lo) > 0) g_lo = wm; /* until hi passes lo, every read misses */
    unlock();
}


/* Index of the first event after `from` (lock held). */
static size_t first_after_locked(sync_pos from)
{
    size_t lo = 0, hi = g_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sync_pos_cmp(at(mid)->pos, from) <= 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static bool sees(const win_ev *e, int64_t uid)
{
    size_t lo = 0, hi = e->nrcpt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->rcpt[mid] < uid) lo = mid + 1;
        else if (e->rcpt[mid] > uid) hi = mid;
        else return true;
    }
    return false;
}

int sync_window_read(int64_t uid, sync_pos from, int limit, uint64_t *ticket, sync_page *pg)
{
    memset(pg, 0, sizeof *pg);
    /* before anything is read: a fetch sent after this one started after
     * the request arrived */
    if (*ticket == 0) *ticket = atomic_load(&g_fetch_seq) + 1;
    rdlock();
    if (!g_on || sync_pos_cmp(from, g_lo) < 0) {
        unlock();
        return SW_MISS;
    }
    if (sync_pos_cmp(from, g_hi) > 0) {
        /* a cursor ahead of the window (from a Postgres read, or another
         * node): a fetch sent after this request reaches past it, horizons
         * only move forward */
        unlock();
        pthread_mutex_lock(&g_wmu);
        bool fresh = g_covered >= *ticket;
        pthread_mutex_unlock(&g_wmu);
        return fresh ? SW_MISS : SW_WAIT;
    }
    pg->ev = malloc((size_t)(limit > 0 ? limit : 1) * sizeof *pg->ev);
    if (!pg->ev) {
        unlock();
        return SW_MISS;
    }
    size_t bytes = 0, scanned = 0, copy = 0;
    bool done = false;
    for (size_t i = first_after_locked(from); i < g_n; i++) {
        win_ev *e = at(i);
        if (sync_pos_cmp(e->pos, g_hi) > 0) break; /* appended, batch not finished */
        if (scanned++ >= SYNC_WINDOW_SCAN) { /* few of this user's events: Postgres reads them by stream */
            unlock();
            free(pg->ev);
            memset(pg, 0, sizeof *pg);
            return SW_MISS;
        }
        if (sees(e, uid)) {
            if (pg->n >= limit || bytes >= PAGE_BYTES) {
                pg->has_more = true;
                pg->next = pg->ev[pg->n - 1].pos;
                done = true;
                break;
            }
            /* the event itself for now: copied below, in one allocation */
            sync_event *s = &pg->ev[pg->n++];
            s->pos = e->pos;
            s->prefix = (char *)e;
            s->prefix_len = e->prefix_len;
            copy += e->prefix_len + e->type_len + 2;
            bytes += e->prefix_len;
        }
    }
    char *arena = pg->n ? malloc(copy) : NULL;
    if (pg->n && !arena) {
        unlock();
        free(pg->ev);
        memset(pg, 0, sizeof *pg);
        return SW_MISS;
    }
    for (int k = 0; k < pg->n; k++) { /* ev[0].prefix is the arena (sync_window_page_free) */
        sync_event *s = &pg->ev[k];
        const win_ev *e = (const win_ev *)s->prefix;
        memcpy(arena, e->prefix, e->prefix_len);
        arena[e->prefix_len] = 0;
        memcpy(arena + e->prefix_len + 1, e->type, e->type_len + 1);
        s->prefix = arena;
        s->type = arena + e->prefix_len + 1;
        arena += e->prefix_len + e->type_len + 2;
    }
    if (!done) pg->next = g_hi; /* every event up to hi was read */
    unlock();
    if (!done) {
        /* the page ends at hi: it may only say "nothing more" if the
         * tailer's read that reached hi started after this request */
        pthread_mutex_lock(&g_wmu);
        bool fresh = g_covered >= *ticket;
        pthread_mutex_unlock(&g_wmu);
        if (!fresh) {
            sync_window_page_free(pg);
            return SW_WAIT;
        }
    }
    return SW_HIT;
}

void sync_window_page_free(sync_page *pg)
{
    if (pg->n > 0) free(pg->ev[0].prefix); /* the arena of every event's text */
    free(pg->ev);
    pg->ev = NULL;
    pg->n = 0;
}

void sync_window_stats(sync_pos *lo, sync_pos *hi, size_t *events, size_t *bytes)
{
    rdlock();
    if (lo) *lo = g_lo;
    if (hi) *hi = g_hi;
    if (events) *events = g_n;
    if (bytes) *bytes = g_bytes;
    unlock();
}
