/* ch_echo.c — echo:<anything>, the protocol test channel, shaped like the
 * channel of the Phoenix transcripts: join replies {"joined": topic};
 * "ping" replies with its payload (binary in, binary out); "shout"
 * broadcasts its payload to the topic, then replies {}; any other event
 * has no clause and crashes the channel (phx_error). */
#include <string.h>
#include "phoenix/channels.h"
#include "phoenix/phx_socket.h"
#include "bus/pubsub.h"

static int echo_join(phx_channel *ch, json_t *payload, json_t **reply)
{
    *reply = json_pack("{s:s}", "joined", ch->topic);
    return PHX_OK;
}

static int echo_in(phx_channel *ch, phx_msg *m, json_t **reply)
{
    if (strcmp(m->event, "ping") == 0) {
        if (m->binary) {
            phx_reply_binary(ch, m, "ok", m->bin, m->bin_len);
            return PHX_NOREPLY;
        }
        *reply = json_incref(m->payload);
        return PHX_OK;
    }
    if (strcmp(m->event, "shout") == 0) {
        if (m->binary) pubsub_broadcast_binary(ch->topic, "shout", m->bin, m->bin_len, NULL);
        else pubsub_broadcast(ch->topic, "shout", m->payload, NULL);
        return PHX_OK;
    }
    return PHX_CRASH;
}

static const channel_handler echo_handler = {
    .prefix = "echo:",
    .join = echo_join,
    .handle_in = echo_in,
};

void ch_echo_register(void) { channel_register(&echo_handler); }
