/* sync_join.h — the sync part of joining `user:<id>`: catch-up from a cursor,
 * then live events, with no gap and no duplicate at the seam
 * (docs/sync.md, "Join with cursor"). ch_user.c calls these from its
 * channel callbacks; the state lives in ch->state. */
#ifndef SB_SYNC_JOIN_H
#define SB_SYNC_JOIN_H

#include <jansson.h>
#include <stdbool.h>
#include "phoenix/phx_socket.h"

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
int sync_join(phx_channel *ch, json_t *payload, json_t *reply, json_t **err);
/* handle_out of user channels: holds live events during catch-up, and drops
 * durable events at or before the last position delivered. */
bool sync_handle_out(phx_channel *ch, const struct pubsub_msg *m);
/* terminate of user channels: frees the state (or leaves it to the query in
 * flight). */
void sync_terminate(phx_channel *ch);

#endif
