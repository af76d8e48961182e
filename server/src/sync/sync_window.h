/* sync_window.h — the node's in-memory window of recent stable events, from
 * which GET /api/v1/sync answers without Postgres when it can
 * (docs/sync.md, "Sync from memory").
 *
 * The tailer (reactor 0) is the only writer: it appends every event it reads,
 * in (tx, id) order, with the event's recipients (the users whose membership
 * period covers the event's seq, or the private stream's user: exactly who
 * may see it, and that never changes once the event is committed). The
 * window holds every stable event in (lo, hi]: lo is exact (the start
 * horizon, lowered by the start-up backfill, raised by eviction and by the
 * prune watermark), hi is the tailer's position after its last batch.
 * Bounded by SB_SYNC_WINDOW_BYTES (oldest events evicted first).
 *
 * Readers (any reactor) answer a page after `from` when lo <= from <= hi and
 * the window has caught up with every write this node committed before the
 * read (a write kicks the tailer; see sync_window_kick_gen): read-your-writes
 * holds as on the Postgres path. Thread-safe (a reader/writer lock). */
#ifndef SB_SYNC_WINDOW_H
#define SB_SYNC_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sync/cursor.h"
#include "sync/sync.h"

/* ---- writer side (the tailer, reactor 0) ---- */

/* Empties the window and sets lo = hi = start (the tailer's start horizon).
 * max_bytes 0 disables the window (every read misses). */
void sync_window_start(sync_pos start, size_t max_bytes);

/* Appends one stable event after every event already held (ignored
 * otherwise, and during the backfill, see below). type: the event name;
 * payload: the jsonb text; rcpt: the recipients as Postgres prints an int8[]
 * ("{1,2,3}"). Evicts the oldest events past the byte cap. Returns 0, or -1
 * when the event is malformed or out of memory: the window is then emptied
 * and lo set to the event's position (nothing after lo is missing). */
int sync_window_append(sync_pos pos, const char *type, const char *payload, const char *rcpt);

/* The start-up backfill, in chunks between the tailer's fetches: read the
 * lower bound `base` (sync_window_stats), then the events just before it,
 * given newest first to sync_window_prepend, then
 * sync_window_backfilled(base, lo) with the new exact lower bound (every
 * stable event in [lo, base) was given: the oldest event taken, or the prune
 * watermark when none older is left). Prepending refuses (returns 1) once
 * half the byte cap is used or when lo moved since `base` was read
 * (eviction, prune, reset); backfilled then returns false and changes
 * nothing, and the backfill stops. */
int sync_window_prepend(sync_pos base, sync_pos pos, const char *type, const char *payload,
                        const char *rcpt);
bool sync_window_backfilled(sync_pos base, sync_pos lo);

/* Numbers a fetch the tailer is about to send (call right before sending). */
uint64_t sync_window_fetch_sent(void);

/* The tailer read every stable event up to hi. `covered_seq`: the number of
 * the fetch when it reached the horizon (every event stable when it was
 * sent is in the window), 0 when more was waiting. Wakes the waiters it
 * satisfies, and those waiting longer than SYNC_WINDOW_WAIT_MS (to read
 * Postgres). */
void sync_window_advance(sync_pos hi, uint64_t covered_seq);

/* The tailer is connected (true) or lost its connection (false: every
 * waiter is sent to Postgres, and nobody waits until it is back). */
void sync_window_live(bool live);

/* Events at or before the prune watermark are dropped; lo >= watermark. */
void sync_window_pruned(sync_pos watermark);


/* ---- reader side (any reactor) ---- */

enum { SW_MISS = 0, SW_HIT, SW_WAIT };

/* A page read from the window, encoded as the body of the response:
 * {"events":[...],"cursor":"...","has_more":...}. */
typedef struct sync_wpage {
    int n;           /* events */
    bool has_more;
    sync_pos next;   /* the position after the page */
    size_t len;      /* body bytes */
} sync_wpage;

/* How sync_window_read makes a body (both called under the window's lock,
 * at most once each): `cursors` writes the cursors of pos[0..n) to out
 * (CURSOR_LEN characters each, back to back; returns 0 or -1); `alloc`
 * returns where the `len` bytes of the body go (the caller's response
 * buffer), or NULL when out of memory. */
typedef struct sync_body_fns {
    int (*cursors)(const sync_pos *pos, size_t n, char *out, void *arg);
    char *(*alloc)(size_t len, void *arg);
    void *arg;
} sync_body_fns;

/* Encodes the page sync_fetch would read, with each event's cursor and
 * the next one: at most `limit` events visible to user `uid` after
 * `from`, and at most about 4 MiB of payloads (the first event always).
 * *ticket: 0 on the first call of a request (set to the number of the
 * first fetch sent after it), the same value when called again after a
 * wait. Returns
 *   SW_HIT  answered (the body written, *pg filled);
 *   SW_MISS read Postgres instead (window off, `from` below lo, or still
 *           above hi after a fresh fetch; a callback failed: nothing
 *           was kept);
 *   SW_WAIT the page would end at hi ("nothing more"), which holds only once
 *           a tailer fetch sent after the request reached the horizon:
 *           sync_window_wait, then call again (no callback was called);
 *           also when `from` is above hi (the fetch will likely pass it).
 * Full pages need no wait: the events up to hi are final. A read that
 * scans more than SYNC_WINDOW_SCAN events misses (Postgres reads a user
 * with few events by stream). */
int sync_window_read(int64_t uid, sync_pos from, int limit, uint64_t *ticket,
                     const sync_body_fns *fns, sync_wpage *pg);

/* Called on reactor r when the ticket is satisfied (fallback false), or
 * with fallback true when the request should read Postgres instead (waited
 * longer than SYNC_WINDOW_WAIT_MS, or the tailer lost its connection). */
typedef void (*sync_window_wake_cb)(void *arg, bool fallback);
struct reactor;

/* Waits for the ticket. Returns 0 (cb will be called exactly once), 1 when
 * it is already satisfied (read again now; cb is not called), or -1 when
 * SYNC_WINDOW_WAITERS requests already wait or out of memory (read
 * Postgres). The caller also kicks the tailer. Thread-safe. */
int sync_window_wait(uint64_t ticket, struct reactor *r, sync_window_wake_cb cb, void *arg);

#define SYNC_WINDOW_SCAN 65536
#define SYNC_WINDOW_WAITERS 4096
#define SYNC_WINDOW_WAIT_MS 250

/* Current bounds and size, for tests and logs. */
void sync_window_stats(sync_pos *lo, sync_pos *hi, size_t *events, size_t *bytes);

#endif
