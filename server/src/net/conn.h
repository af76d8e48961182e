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
#include "base/buf.h"
#include "net/reactor.h"

enum { CONN_HTTP = 0, CONN_WS = 1, CONN_DRAINING = 2 };

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
    uint8_t mode;                  /* CONN_HTTP, CONN_WS or CONN_DRAINING */
    bool admin;                    /* accepted on the admin listener */
    bool closing;
    bool dirty;
    bool close_after_flush;
    bool read_paused;
    struct http_state *http;       /* while mode == CONN_HTTP */
    struct ws_state *ws;           /* while mode == CONN_WS */
    struct tls_conn *tls;          /* TLS state on a TLS listener (tls.c), else NULL */
} sb_conn;

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
/* Asks the reactor to flush c at the end of this loop iteration. */
void conn_mark_dirty(sb_conn *c);
/* Drops queued buffers not yet started (keeps a partly written or in-flight
 * head), e.g. before a final close frame for a client that stopped reading. */
void conn_drop_unsent(sb_conn *c);
/* Writes every dirty connection of reactor r (called by the reactor). */
void conn_flush_dirty(reactor *r);
/* Housekeeping once a second: idle and stuck connections are closed. */
void conn_sweep(reactor *r);
/* Begins shutdown for every connection of r (WebSockets get 1001). */
void conn_shutdown_all(reactor *r);
/* Takes the reserve descriptor used to shed connections on EMFILE. */
void conn_init_spare(void);
/* Peer address as text into out. */
void conn_peer_ip(sb_conn *c, char *out, size_t outlen);

#endif
