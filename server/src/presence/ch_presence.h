/* ch_presence.h — Phoenix Presence on a channel: the channel edge of
 * presence/ (ch_presence.c). The table, diffs and online state are the
 * core's (presence.h); this tracks a joined channel and pushes it its
 * presence_state. Names the Phoenix types by struct tag only. */
#ifndef SB_CH_PRESENCE_H
#define SB_CH_PRESENCE_H

#include "presence/presence.h"

struct phx_channel;

/* Tracks channel ch (joined) on its topic under `key` (a user id): the
 * join diff goes to the topic, then presence_state to ch (if still joined
 * then). The phx_ref is written to ref_out. Returns 0, or -1 when out of
 * memory (nothing tracked). Call on ch's reactor. */
int ch_presence_track(struct phx_channel *ch, const char *key, char ref_out[PRESENCE_REF_MAX]);

#endif
