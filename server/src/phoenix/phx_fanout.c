/* phx_fanout.c — see phx_fanout.h. */
#include "phoenix/phx_fanout.h"

#include <stdatomic.h>
#include <stddef.h>
#include "base/metrics.h"

static metrics_id m_deliveries;
__attribute__((constructor)) static void phx_fanout_metrics(void)
{
    m_deliveries = metrics_counter("sb_fanout_deliveries_total",
                                   "Broadcasts handed to a joined channel's socket (one per subscriber).", NULL);
}

_Static_assert(PHX_V1 == 1 && PHX_V2 == 2 && PUBSUB_ENCODINGS >= 2, "m->enc[vsn - 1]");

static atomic_int g_v1_sockets; /* sockets using the V1 serializer */
static uint8_t g_class;         /* pubsub delivery class of channels */

/* pubsub encoder: enc[V1 - 1] (text only, and only while V1 sockets
 * exist), enc[V2 - 1] (text, or the binary kind 2 frame). */
static int encode(pubsub_msg *m, const void *payload, size_t len)
{
    if (m->binary) {
        m->enc[PHX_V2 - 1] = phx_encode_broadcast_binary(m->topic, m->event, payload, len);
        return m->enc[PHX_V2 - 1] ? 0 : -1;
    }
    m->enc[PHX_V2 - 1] = phx_encode_raw(PHX_V2, NULL, NULL, m->topic, m->event, payload, len);
    if (atomic_load(&g_v1_sockets) > 0)
        m->enc[PHX_V1 - 1] = phx_encode_raw(PHX_V1, NULL, NULL, m->topic, m->event, payload, len);
    return m->enc[PHX_V2 - 1] ? 0 : -1;
}

/* pubsub delivery of a run of channel subscribers: the buffer of each
 * socket's serializer, already encoded, after the channel's handle_out. */
static uint32_t deliver(pubsub_sub *const *subs, uint32_t n, const pubsub_msg *m)
{
    uint32_t i = 0;
    for (; i < n && subs[i]->cls == g_class; i++) {
        phx_channel *ch = (phx_channel *)((char *)subs[i] - offsetof(phx_channel, sub));
        phx_socket *s = ch->sock;
        if ((const void *)s == m->from || ch->status != CH_JOINED) continue;
        if (ch->h->handle_out && !ch->h->handle_out(ch, m)) continue;
        sb_buf *b = phx_fanout_buf(s->vsn, m);
        if (b) {
            phx_socket_send(s, b);
            metrics_inc(m_deliveries);
        }
    }
    return i;
}

int phx_fanout_init(void)
{
    if (g_class) return 0;
    int c = pubsub_class_new(deliver);
    if (c < 0) return -1;
    g_class = (uint8_t)c;
    pubsub_set_encoder(encode);
    return 0;
}

int phx_fanout_subscribe(phx_channel *ch)
{
    ch->sub.cls = g_class;
    return pubsub_subscribe(ch->sock->r, ch->topic, &ch->sub);
}

void phx_fanout_unsubscribe(phx_channel *ch) { pubsub_unsubscribe(ch->sock->r, ch->topic, &ch->sub); }

void phx_fanout_socket_added(phx_vsn vsn)
{
    if (vsn == PHX_V1) atomic_fetch_add(&g_v1_sockets, 1);
}

void phx_fanout_socket_removed(phx_vsn vsn)
{
    if (vsn == PHX_V1) atomic_fetch_sub(&g_v1_sockets, 1);
}
