/* tailer.h — the node's event tailer: follows the durable event log in its
 * stable order and delivers each event live to the `user:<id>` topics of its
 * recipients on this node (docs/sync.md, "Delivery").
 *
 * One tailer per node, on reactor 0, with its own non-blocking libpq
 * connection that LISTENs on `sb_events` (plus a fallback poll). It never
 * blocks or crashes while Postgres is away: it reconnects with backoff and
 * resumes from its position, so nothing committed meanwhile is skipped. */
#ifndef SB_TAILER_H
#define SB_TAILER_H

#include <stdbool.h>
#include "sync/cursor.h"

/* Starts the tailer on reactor 0 (after reactor_start_all). Does nothing
 * without a database. Returns 0, or -1 when it could not be scheduled. */
int tailer_start(void);

/* The tailer's published position: every event after it is (or will be)
 * delivered to this node's subscribers, and the position is stored before
 * the events up to it are handed to the reactors. So a channel that is
 * subscribed to its topic and then reads P receives every event after P.
 * *ready is false until the tailer has read its start position. Thread-safe. */
sync_pos tailer_position(bool *ready);

/* Wakes this node's tailer to read now (after a write committed here).
 * Coalesced: any number of kicks while one is pending cost one fetch.
 * Thread-safe, cheap. */
void tailer_kick(void);

/* Counts user channels joined on this node per user id (delta +1 on join,
 * -1 when the channel goes). The tailer skips recipients with none: their
 * cursor and frames are never built. Call with +1 before the channel is
 * subscribed and before it reads tailer_position (the position mutex orders
 * the two: the tailer checks the count after publishing its position, so it
 * cannot skip an event after the position the channel read). Thread-safe. */
void tailer_user_online(const char *uid, int delta);

/* Builds the text of an event payload with a cursor spliced in:
 * prefix (from sync_payload_prefix) + cursor + "\"}". Returns a malloc'd
 * NUL-terminated string (its length in *len) or NULL when out of memory. */
char *tailer_splice(const char *prefix, size_t prefix_len, const char *cursor, size_t *len);

/* Turns the payload JSON of an event (as Postgres prints jsonb) into the
 * compact prefix that a cursor completes: `{...,"cursor":"` (or
 * `{"cursor":"` for an empty object). Returns malloc'd text (length in
 * *len) or NULL when the payload is not a JSON object or out of memory. */
char *sync_payload_prefix(const char *payload, size_t *len);

#endif
