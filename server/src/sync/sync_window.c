/* sync_window.c — the in-memory window of recent stable events (see
 * sync_window.h and docs/sync.md, "Sync from memory"). */
#include "sync/sync_window.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "net/reactor.h"
#include "sync/tailer.h"

#define PAGE_BYTES 4194304 /* as sb_sync_page: a page stops at about 4 MiB of payloads */

/* One event: its recipients (sorted) and its text as a page element
 * awaiting its cursor, `{"type":"<type>",<payload fields>,"cursor":"`
 * (the payload compacted once, tailer.h), in one allocation. */
typedef struct win_ev {
    sync_pos pos;
    uint32_t nrcpt;
    uint32_t pbytes; /* compact payload bytes: what the 4 MiB page cut counts */
    size_t text_len;
    size_t bytes;    /* what it counts against the cap */
    char *text;      /* text_len bytes, inside the allocation */
    int64_t rcpt[];  /* ascending */
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

/* The JSON text of an event name: copied as it is when plain
 * ("message:new"), else through the encoder. Returns a malloc'd string or
 * NULL. */
static char *type_json(const char *type)
{
    bool plain = true;
    for (const char *c = type; *c && plain; c++)
        plain = (*c >= 'a' && *c <= 'z') || *c == ':' || *c == '_' || *c == '.' || *c == '-';
    if (!plain) {
        json_t *t = json_string(type);
        char *ts = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
        json_decref(t);
        return ts;
    }
    size_t n = strlen(type);
    char *s = malloc(n + 3);
    if (!s) return NULL;
    s[0] = '"';
    memcpy(s + 1, type, n);
    memcpy(s + 1 + n, "\"", 2);
    return s;
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
    char *tj = prefix ? type_json(type) : NULL;
    if (!tj || plen > UINT32_MAX) {
        free(prefix);
        free(tj);
        return NULL;
    }
    /* {"type": tj , prefix without its "{" */
    size_t tjl = strlen(tj);
    size_t tlen = 8 + tjl + 1 + plen - 1;
    size_t sz = sizeof(win_ev) + (size_t)n * sizeof(int64_t) + tlen;
    win_ev *e = malloc(sz);
    if (!e) {
        free(prefix);
        free(tj);
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
            free(tj);
            free(e);
            return NULL;
        }
        e->rcpt[e->nrcpt++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    qsort(e->rcpt, e->nrcpt, sizeof(int64_t), cmp_i64);
    e->text = (char *)(e->rcpt + n);
    memcpy(e->text, "{\"type\":", 8);
    memcpy(e->text + 8, tj, tjl);
    e->text[8 + tjl] = ',';
    memcpy(e->text + 9 + tjl, prefix + 1, plen - 1);
    e->text_len = tlen;
    e->pbytes = (uint32_t)plen;
    e->bytes = sz + sizeof(win_ev *);
    free(prefix);
    free(tj);
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

/* Whether the tailer's fetch numbered `ticket` (or a later one) reached
 * the horizon. */
static bool fresh(uint64_t ticket)
{
    pthread_mutex_lock(&g_wmu);
    bool f = g_covered >= ticket;
    pthread_mutex_unlock(&g_wmu);
    return f;
}

static const char BODY_OPEN[] = "{\"events\":[";
static const char BODY_NEXT[] = "],\"cursor\":\"";
static const char BODY_MORE[] = "\",\"has_more\":true}";
static const char BODY_DONE[] = "\",\"has_more\":false}";
#define LIT(s) (sizeof(s) - 1)

int sync_window_read(int64_t uid, sync_pos from, int limit, uint64_t *ticket,
                     const sync_body_fns *fns, sync_wpage *pg)
{
    memset(pg, 0, sizeof *pg);
    if (limit < 1) limit = 1;
    /* before anything is read: a fetch sent after this one started after
     * the request arrived */
    if (*ticket == 0) *ticket = atomic_load(&g_fetch_seq) + 1;
    /* the events of the page, each cursor's position and text */
    size_t cap = (size_t)limit + 1;
    void *mem = malloc(cap * (sizeof(win_ev *) + sizeof(sync_pos) + CURSOR_LEN));
    if (!mem) return SW_MISS;
    win_ev **hit = mem;
    sync_pos *pos = (sync_pos *)(hit + cap);
    char *cur = (char *)(pos + cap);
    int rc = SW_MISS;
    rdlock();
    if (!g_on || sync_pos_cmp(from, g_lo) < 0) goto out;
    if (sync_pos_cmp(from, g_hi) > 0) {
        /* a cursor ahead of the window (from a Postgres read, or another
         * node): a fetch sent after this request reaches past it, horizons
         * only move forward */
        rc = fresh(*ticket) ? SW_MISS : SW_WAIT;
        goto out;
    }
    size_t bytes = 0, scanned = 0, len = LIT(BODY_OPEN) + LIT(BODY_NEXT) + CURSOR_LEN;
    int n = 0;
    bool done = false;
    for (size_t i = first_after_locked(from); i < g_n; i++) {
        win_ev *e = at(i);
        if (sync_pos_cmp(e->pos, g_hi) > 0) break; /* appended, batch not finished */
        if (scanned++ >= SYNC_WINDOW_SCAN) goto out; /* few of this user's events: Postgres reads them by stream */
        if (sees(e, uid)) {
            if (n >= limit || bytes >= PAGE_BYTES) {
                done = true;
                break;
            }
            pos[n] = e->pos;
            hit[n++] = e;
            bytes += e->pbytes;
            len += e->text_len + CURSOR_LEN + 3; /* the cursor, "}", and a comma */
        }
    }
    /* a page that ends at hi says "nothing more": only once the tailer's
     * read that reached hi started after this request (checked under the
     * lock: hi is then at least what that read reached) */
    if (!done && !fresh(*ticket)) {
        rc = SW_WAIT;
        goto out;
    }
    if (n > 0) len--; /* no comma after the last */
    const char *tail = done ? BODY_MORE : BODY_DONE;
    size_t tail_len = done ? LIT(BODY_MORE) : LIT(BODY_DONE);
    len += tail_len;
    pg->next = done ? pos[n - 1] : g_hi; /* every event up to hi was read */
    pos[n] = pg->next;
    /* the cursors first, back to back (their table and text stay in cache),
     * then one pass over the body */
    char *body = NULL;
    if (fns->cursors(pos, (size_t)n + 1, cur, fns->arg) != 0 || !(body = fns->alloc(len, fns->arg)))
        goto out;
    char *o = body;
    memcpy(o, BODY_OPEN, LIT(BODY_OPEN));
    o += LIT(BODY_OPEN);
    for (int k = 0; k < n; k++) {
        const win_ev *e = hit[k];
        if (k) *o++ = ',';
        memcpy(o, e->text, e->text_len);
        o += e->text_len;
        memcpy(o, cur + (size_t)k * CURSOR_LEN, CURSOR_LEN);
        o += CURSOR_LEN;
        memcpy(o, "\"}", 2);
        o += 2;
    }
    unlock();
    memcpy(o, BODY_NEXT, LIT(BODY_NEXT));
    o += LIT(BODY_NEXT);
    memcpy(o, cur + (size_t)n * CURSOR_LEN, CURSOR_LEN);
    o += CURSOR_LEN;
    memcpy(o, tail, tail_len);
    o += tail_len;
    free(mem);
    pg->n = n;
    pg->has_more = done;
    pg->len = (size_t)(o - body);
    return SW_HIT;
out:
    unlock();
    free(mem);
    memset(pg, 0, sizeof *pg);
    return rc;
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
