/* ch_presence.c — a channel as a presence joiner (see ch_presence.h). */
#include "presence/ch_presence.h"

#include "base/sb_buf.h"
#include "phoenix/phx_serial.h"
#include "phoenix/phx_socket.h"

/* presence_joiner.state: the presence_state push, then the reference
 * ch_presence_track took is released. */
static void push_state(void *to, const char *st, size_t len)
{
    phx_channel *ch = to;
    if (st && ch->status == CH_JOINED && !ch->sock->closed) {
        sb_buf *b = phx_encode_raw(ch->sock->vsn, ch->join_ref, NULL, ch->topic, "presence_state",
                                   st, len);
        if (b) phx_socket_send(ch->sock, b);
        sb_buf_unref(b);
    }
    phx_channel_unref(ch);
}

int ch_presence_track(phx_channel *ch, const char *key, char ref_out[PRESENCE_REF_MAX])
{
    presence_joiner j = {push_state, ch};
    phx_channel_ref(ch);
    int rc = presence_track(ch->topic, key, &j, ref_out);
    if (rc != 0) phx_channel_unref(ch);
    return rc;
}
