/* push_coalesce.h — at most one release per key per interval; push keys it
 * by conversation, so a device gets at most one message push per
 * conversation per interval (docs/push.md "Coalescing").
 *
 * The first item of a quiet key goes at once and opens a window of
 * `interval_ms`; items offered while the window is open are held, the newest
 * replacing the one held before; when the window ends the held item goes and
 * opens the next window; a window that ends with nothing held closes and its
 * key is forgotten. So a conversation that keeps receiving messages is
 * decided once per interval, for its newest message (FCM itself delays
 * collapsible messages sent faster: a burst of 20 per device, then one per 3
 * minutes, and at most 240 messages a minute to one Android device).
 *
 * Pure: no I/O, time is passed in, items are opaque pointers owned by the
 * caller. Not thread-safe (push uses it on its own thread only). Memory is
 * bounded by max_keys: a key offered while max_keys windows are open is not
 * tracked and its item goes at once. */
#ifndef SB_PUSH_COALESCE_H
#define SB_PUSH_COALESCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct push_coalesce push_coalesce;

/* A tracker with the given window length (0: nothing is ever held) and bound
 * on open windows (0 means 1). NULL when out of memory. */
push_coalesce *push_coalesce_new(uint64_t interval_ms, size_t max_keys);

/* Frees c; drop (if not NULL) is called on every item still held. */
void push_coalesce_free(push_coalesce *c, void (*drop)(void *item));

/* A push for key (at most 63 bytes are used) at time now: 0 when it goes
 * at once (a window opens, unless untracked), 1 when the key's window is
 * open and the push is to be held (push_coalesce_hold). */
int push_coalesce_offer(push_coalesce *c, const char *key, uint64_t now);

/* Holds item (not NULL) in key's open window, after push_coalesce_offer said
 * 1 for it; returns the item it replaces (the caller disposes of it), or
 * NULL. When key has no open window (not after an offer that said 1), the
 * item is not kept and is returned. */
void *push_coalesce_hold(push_coalesce *c, const char *key, void *item);

/* The next held item whose window has ended by now (the caller sends it; a
 * new window opens at now), or NULL when none. Also forgets the keys whose
 * windows ended with nothing held. Call until NULL. */
void *push_coalesce_due(push_coalesce *c, uint64_t now);

/* When the earliest open window ends (UINT64_MAX when none is open). */
uint64_t push_coalesce_next_ms(const push_coalesce *c);

/* Open windows, and items held in them. */
size_t push_coalesce_keys(const push_coalesce *c);
size_t push_coalesce_held(const push_coalesce *c);

#endif
