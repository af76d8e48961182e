/* ch_presence.c — a channel as a presence joiner (see ch_presence.h). */
#include "presence/ch_presence.h"

#include <stdlib.h>
#include "base/sb_buf.h"
#include "phoenix/phx_serial.h"
#include "phoenix/phx_socket.h"

/* presence_joiner.state: the presence_state push, then the reference
 * ch_presence_track took is released. The joiners of one batch share one
 * encoded payload (per serializer version, in *batch): each socket queues
 * its own head of a few dozen bytes and a reference to it. */
static void push_state(void *to, const char *st, size_t len, void **batch)
{
    phx_channel *ch = to;
    if (st && ch->status == CH_JOINED && !ch->sock->closed) {
        if (!*batch) *batch = calloc(2, sizeof(sb_buf *));
        if (*batch) phx_push_shared(ch, "presence_state", st, len, *batch);
    }
    phx_channel_unref(ch);
}

/* presence_joiner.done: drops the batch's shared payloads. */
static void batch_done(void *batch)
{
    sb_buf **sh = batch;
    sb_buf_unref(sh[0]);
    sb_buf_unref(sh[1]);
    free(sh);
}

int ch_presence_track(phx_channel *ch, const char *key, char ref_out[PRESENCE_REF_MAX])
{
    presence_joiner j = {push_state, batch_done, ch};
    phx_channel_ref(ch);
    int rc = presence_track(ch->topic, key, &j, ref_out);
    if (rc != 0) phx_channel_unref(ch);
    return rc;
}
