/* conn.h — one TCP connection on one reactor: reading into the reactor's
 * shared buffer, and a bounded outbound queue of reference-counted buffers
 * written with writev. Frames queued during one loop iteration leave in as
 * few writes as possible (the reactor flushes dirty connections before and
 * after polling), so fan-out bursts are coalesced. */
#ifndef SB_CONN_H
#define SB_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "base/sb_buf.h"
#include "net/reactor.h"

struct sb_conn;

/* What runs on a connection: the protocol layer above installs its table
 * (HTTP at accept, WebSocket after an upgrade) and its state in c->proto.
 * The transport calls through it and never names the protocol. on_data and
 * gone are required; the others may be NULL. None is called once the
 * connection is closing, and only gone while it is draining. */
typedef struct conn_handlers {
    /* Plaintext bytes received (after TLS, if any). */
    void (*on_data)(struct sb_conn *c, const char *data, size_t len);
    /* Runs before c's queue is written (once per flush of a dirty c). */
    void (*before_flush)(struct sb_conn *c);
    /* Housekeeping once a second (idle and stalled-request timeouts). */
    void (*sweep)(struct sb_conn *c, uint64_t now);
    /* Server shutdown begins: close at once or after what is in progress. */
    void (*shutdown)(struct sb_conn *c);
    /* The connection is closing (called once, from conn_close): detach from
     * c and free the protocol state. */
    void (*gone)(struct sb_conn *c);
} conn_handlers;

/* Installs a new connection's protocol: sets c->h and c->proto. Returns 0,
 * or -1 (the connection is closed). */
typedef int (*conn_open_fn)(struct sb_conn *c);

typedef struct sb_conn {
    uv_tcp_t tcp;                  /* first: the handle's data is the conn */
    reactor *r;
    struct sb_conn *prev, *next;   /* reactor's list of live connections */
    struct sb_conn *dirty_next;    /* reactor's list of connections to flush */
    uint64_t last_rx_ms;           /* loop time of the last byte received */
    uint64_t mark_ms;              /* when the current request / drain began */
    sb_buf **q;                    /* ring of queued buffers (&q1 while qcap == 1) */
    sb_buf *q1;                    /* inline ring slot: an idle socket allocates no ring */
    uint32_t qhead, qlen, qcap;
    uint32_t qoff;                 /* bytes of q[qhead] already written */
    uint32_t inflight;             /* ring entries owned by the pending uv_write */
    uint32_t qbytes;               /* unwritten bytes queued (< 4 GiB: conn_send refuses more) */
    uv_write_t *wreq;              /* pending write, if any */
    const conn_handlers *h;        /* the protocol running on the connection */
    void *proto;                   /* its state (the protocol's) */
    bool draining;                 /* half-closed, waiting for the peer's FIN: input dropped */
    bool admin;                    /* accepted on the admin listener */
    bool closing;
    bool dirty;
    bool close_after_flush;
    bool read_paused;
    bool shut;                     /* its protocol's shutdown ran (server shutdown) */
    struct tls_conn *tls;          /* TLS state on a TLS listener (tls.c), else NULL */
    /* one-shot: called once the unwritten bytes fall to drain_below or less
     * after a write (a streamed response's back-pressure; conn_on_drain) */
    void (*on_drain)(struct sb_conn *c, void *arg);
    void *drain_arg;
    uint32_t drain_below;
} sb_conn;

/* Sets the protocol every accepted connection starts with (main.c: HTTP).
 * Call once, before the reactors run. */
void conn_set_opener(conn_open_fn open);
/* Accepts a pending connection on `server` into a new sb_conn and starts
 * reading. Sheds the connection cleanly when out of descriptors or memory. */
void conn_accept(reactor *r, uv_stream_t *server, bool admin);
/* Queues b for sending (takes its own reference). Returns 0, or -1 when the
 * queue would pass `cap` bytes (0 = unbounded): nothing is queued then. */
int conn_send(sb_conn *c, sb_buf *b, size_t cap);
/* Closes at once; queued bytes are dropped. Safe to call twice. */
void conn_close(sb_conn *c);
/* Stops reading requests, writes what is queued, half-closes, waits briefly
 * for the peer's FIN (so our last frame is not lost to a reset), then closes. */
void conn_close_after_flush(sb_conn *c);
/* Pauses / resumes reading from the socket. */
void conn_pause_read(sb_conn *c);
void conn_resume_read(sb_conn *c);
/* Calls fn(c, arg) once, from the loop, when at most `below` bytes are
 * left unwritten (at once if that is already so: at the next flush). fn
 * NULL cancels. Not called when the connection closes. */
void conn_on_drain(sb_conn *c, size_t below, void (*fn)(sb_conn *c, void *arg), void *arg);
/* Asks the reactor to flush c at the end of this loop iteration. */
void conn_mark_dirty(sb_conn *c);
/* Drops queued buffers not yet started (keeps a partly written or in-flight
 * head, and the cont pieces of a frame begun), e.g. before a final close frame for a client that stopped reading. */
void conn_drop_unsent(sb_conn *c);
/* Writes every dirty connection of reactor r (called by the reactor). */
void conn_flush_dirty(reactor *r);
/* Housekeeping once a second: idle and stuck connections are closed. */
void conn_sweep(reactor *r);
/* Begins shutdown for every connection of r not told yet (each protocol's
 * shutdown). */
void conn_shutdown_all(reactor *r);
/* Begins shutdown for the next k connections of r not told yet, walking
 * from r->drain_next (set it to r->conns first). Returns how many were
 * told (fewer than k: the walk reached the end). */
uint64_t conn_shutdown_next(reactor *r, uint64_t k);
/* Takes the reserve descriptor used to shed connections on EMFILE. */
void conn_init_spare(void);
/* Peer address as text into out. */
void conn_peer_ip(sb_conn *c, char *out, size_t outlen);

#endif
