/* ch_user_sync.h — the sync part of joining `user:<id>`: catch-up from a
 * cursor, then live events, with no gap and no duplicate at the seam
 * (docs/sync.md, "Join with cursor"). A channel edge of sync/: it holds and
 * releases the channel's outgoing messages and pushes pages onto its
 * socket, so it is inherently Phoenix-side; the core it drives (sync_fetch,
 * sync_cursor_check, the tailer's position) is sync.c and tailer.c.
 * ch_user.c calls these from its channel callbacks; the state lives in
 * ch->state. This header names the Phoenix types only by struct tag. */
#ifndef SB_CH_USER_SYNC_H
#define SB_CH_USER_SYNC_H

#include <jansson.h>
#include <stdbool.h>

struct phx_channel;
struct pubsub_msg;

/* Decides the join of user channel ch (its owner already checked) with the
 * client's payload. `reply` is the ok response being built ({"user",
 * "server_time"}); this adds "cursor" to it. Returns
 * - PHX_OK: joined live from now (no cursor given): reply gets the position
 *   live delivery starts after (null until the tailer has started);
 * - PHX_ASYNC: a cursor was given: the first catch-up page is being read;
 *   the join completes (phx_join_done) with `reply` (stolen) once it is,
 *   or fails with {"reason":"cursor_expired"} / {"reason":"unavailable"};
 * - PHX_ERROR with *err set ({"reason":"bad_request"}): a forged, altered
 *   or foreign cursor, or a cursor that is not a string. */
int ch_user_sync_join(struct phx_channel *ch, json_t *payload, json_t *reply, json_t **err);
/* handle_out of user channels: holds live events during catch-up, and drops
 * durable events at or before the last position delivered. */
bool ch_user_sync_handle_out(struct phx_channel *ch, const struct pubsub_msg *m);
/* terminate of user channels: frees the state (or leaves it to the query in
 * flight). */
void ch_user_sync_terminate(struct phx_channel *ch);

#endif
