/* phx_socket.h — a Phoenix socket: the channel table of one client
 * connection and Phoenix's join / leave / reply / close / error semantics,
 * independent of the transport (WebSocket or long-poll) that carries it. */
#ifndef SB_PHX_SOCKET_H
#define SB_PHX_SOCKET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/sb_buf.h"
#include "bus/pubsub.h"
#include "phoenix/channel.h"
#include "phoenix/phx_serial.h"
#include "net/reactor.h"
#include "base/token.h"

typedef struct phx_transport_ops {
    /* Queues an encoded message (the transport takes its own reference).
     * Returns 0, or -1 if the transport is closing. */
    int (*send)(void *t, sb_buf *b);
    /* Closes the transport with a WebSocket close code. */
    void (*close)(void *t, int code);
    /* Optional: bytes queued and not yet written (producers that can wait,
     * such as the sync catch-up, pace themselves on it). */
    size_t (*queued)(void *t);
    /* Optional: queues one message made of buffers (ws_send_parts); NULL
     * when the transport needs each message in one buffer (long-poll). */
    int (*send_parts)(void *t, sb_buf *const *v, size_t n);
} phx_transport_ops;

typedef struct phx_socket phx_socket;

enum { CH_JOINING = 0, CH_JOINED = 1, CH_CLOSED = 2 };

typedef struct phx_channel {
    phx_socket *sock;
    const channel_handler *h;
    json_t *join_ref;          /* as the client sent it (may be NULL) */
    void *state;               /* the handler's */
    struct phx_channel *next;  /* the socket's channel list */
    struct phx_channel *replaced; /* old channel to close after the join reply */
    json_t *join_msg_ref;      /* ref of the phx_join while joining */
    uint32_t refs;
    pubsub_sub sub;            /* this channel as a subscriber of topic (phx_fanout.c) */
    uint8_t status;
    char topic[];              /* allocated with the channel */
} phx_channel;

/* Who connected: the verified token's claims, the strings kept in the
 * socket's own allocation (ids are short; a fixed token_claims would cost
 * 144 bytes per connection). */
typedef struct phx_claims {
    const char *user_id;
    const char *session_id;
    int64_t exp;
} phx_claims;

struct phx_socket {             /* fields ordered to pack: one per idle connection */
    reactor *r;
    phx_claims claims;         /* who connected; the strings live in ids[] */
    phx_channel *channels;
    const phx_transport_ops *ops;
    void *t;
    phx_msg *inq;              /* messages waiting for the pending join */
    struct phx_socket *all_next, *all_prev; /* reactor's socket list */
    phx_vsn vsn;
    uint32_t refs;
    uint16_t inq_len, inq_cap; /* at most MAX_INQ (256) */
    bool closed;
    bool busy;                 /* an asynchronous join is pending */
    char ids[];                /* user id NUL session id NUL */
};

/* A new socket on the current reactor for an authenticated client. */
phx_socket *phx_socket_new(reactor *r, phx_vsn vsn, const token_claims *claims,
                           const phx_transport_ops *ops, void *t);
/* Handles one decoded client message; takes ownership of *m's contents. */
void phx_socket_handle(phx_socket *s, phx_msg *m);
/* The transport is gone: terminates every channel and drops the transport's
 * reference. */
void phx_socket_closed(phx_socket *s);
/* Sends an encoded message on the socket's transport (if still open). */
void phx_socket_send(phx_socket *s, sb_buf *b);

/* Server push to one channel: [join_ref, null, topic, event, payload]. */
void phx_push(phx_channel *ch, const char *event, json_t *payload);
/* The same push to many channels of one topic, the payload encoded once:
 * shared[vsn - 1] holds the shared part per serializer version (built on
 * first use from payload_json, phx_encode_push_shared; the caller drops
 * both with sb_buf_unref when done). Each channel costs a head of a few
 * dozen bytes over WebSocket; long-poll gets a copy. Returns 0, or -1 when
 * out of memory or closed. */
int phx_push_shared(phx_channel *ch, const char *event, const char *payload_json,
                    size_t payload_len, sb_buf *shared[2]);
/* Completes an asynchronous join (PHX_ASYNC from join): ok or refused with
 * reply (stolen, may be NULL). */
void phx_join_done(phx_channel *ch, bool ok, json_t *reply);

/* A reply owed for an event answered asynchronously. */
typedef struct phx_deferred phx_deferred;
/* Captures what is needed to answer message m on ch later. */
phx_deferred *phx_defer(phx_channel *ch, const phx_msg *m);
/* Sends the reply (status "ok" or "error", response stolen, may be NULL)
 * if the channel is still joined, and frees d. */
void phx_deferred_reply(phx_deferred *d, const char *status, json_t *response);
/* True while the channel d was made for is still joined. */
bool phx_deferred_alive(const phx_deferred *d);
/* Sends a binary reply to m now (kind 1). */
void phx_reply_binary(phx_channel *ch, const phx_msg *m, const char *status, const void *data,
                      size_t len);

void phx_channel_ref(phx_channel *ch);
void phx_channel_unref(phx_channel *ch);

/* Closes, on every reactor of this node, the sockets of a session
 * (by_session) or of a user with close code `code` (1008: policy). Thread-safe;
 * what the control events (bus_control.h) of a logout or a ban end in. */
void phx_socket_disconnect(const char *id, bool by_session, int code);
/* Pushes `event` with `payload_json` (JSON object text, copied) on every
 * joined channel whose topic starts with `prefix` ("user:"), on every
 * reactor of this node. Thread-safe; the admin broadcast ends in it. */
void phx_socket_push_prefix(const char *prefix, const char *event, const char *payload_json);

#endif
