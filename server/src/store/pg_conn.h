/* pg_conn.h — one non-blocking libpq connection driven by a libuv loop: the
 * connection set-up (PQconnectStartParams, then PQconnectPoll on uv_poll),
 * the connect timeout, reconnection with exponential backoff and jitter,
 * flushing of queued output and the readable/writable polling of an
 * established connection. Shared by the query pools (db.c) and the event
 * tailer (sync/tailer.c); each owner keeps only its own query logic.
 *
 * Life cycle: DOWN --pg_conn_start--> CONNECTING --ok--> UP. Any failure
 * (set-up error, connect timeout, socket error, failed flush) calls the
 * owner's `fail` hook; the owner does its own bookkeeping and calls
 * pg_conn_drop, which frees the PGconn and (when asked) arms the backoff
 * timer, whose end starts the next attempt by itself.
 *
 * During set-up libpq may close its socket and open another (one address
 * after another, SSL fallback): a fresh uv_poll handle is made for every
 * set-up step, closed before PQconnectPoll runs, so epoll never keeps a
 * registration for a descriptor libpq has replaced. The driver's handles are
 * unreferenced: a connection never keeps its loop alive by itself. */
#ifndef SB_PG_CONN_H
#define SB_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define PG_CONN_WHY 160 /* room for the first line of a failure reason */

enum { PG_CONN_DOWN = 0, PG_CONN_CONNECTING, PG_CONN_UP, PG_CONN_CLOSED };

/* What a drop should report (pg_conn_drop's result): an established
 * connection was lost, the first attempt of a failing streak failed, or
 * nothing (a further failed attempt: one line per outage is enough). */
enum { PG_CONN_QUIET = 0, PG_CONN_LOST, PG_CONN_CONNECT_FAILED };

typedef struct pg_conn pg_conn;

/* The owner's side. All run on the loop's thread. */
typedef struct pg_conn_hooks {
    /* The connection is up (non-blocking, pipeline mode if asked, polled
     * for reading). restored: earlier attempts had failed. */
    void (*up)(pg_conn *c, bool restored);
    /* Input is waiting on an established connection: the owner consumes it
     * (PQconsumeInput) and reads its results. */
    void (*readable)(pg_conn *c);
    /* The attempt or the connection failed (why: libpq's message or the
     * driver's). The owner must call pg_conn_drop, now or once its own
     * callbacks have returned, and must not touch c->pg after that. */
    void (*fail)(pg_conn *c, const char *why);
    /* Optional: a server notice (or an error outside any query); NULL leaves
     * libpq's default (stderr). */
    void (*notice)(pg_conn *c, const char *message);
} pg_conn_hooks;

struct pg_conn {
    uv_loop_t *loop;
    const pg_conn_hooks *hooks;
    void *owner;          /* the owner's record, for its hooks */
    const char *conninfo; /* not copied: must outlive the connection */
    const char *app_name; /* fallback_application_name */
    bool pipeline;        /* enter pipeline mode once up */
    int state;            /* PG_CONN_* */
    PGconn *pg;           /* NULL while DOWN */
    uv_poll_t *poll;      /* heap: closed handles are freed in their close callback */
    int poll_events;
    uv_timer_t timer; /* connect timeout while CONNECTING, backoff while DOWN */
    uint64_t backoff_ms;
    int fail_streak; /* consecutive failed attempts */
    bool was_up;     /* up since the last drop */
};

/* Prepares c (state DOWN, nothing connected) on loop; initialises its timer.
 * conninfo (a connection string or URL) and app_name are kept by pointer. */
void pg_conn_init(pg_conn *c, uv_loop_t *loop, const pg_conn_hooks *hooks, void *owner,
                  const char *conninfo, const char *app_name, bool pipeline);
/* Begins a non-blocking connection attempt bounded by PG_CONN_CONNECT_TIMEOUT_MS;
 * the outcome arrives as `up` or `fail`, possibly before this returns. */
void pg_conn_start(pg_conn *c);
/* Drops the connection: closes its poll handle, stops its timer, frees the
 * PGconn (state DOWN) and counts the failure; with retry, arms the backoff
 * timer (100 ms doubling to 2 s, 75-125 %) after which pg_conn_start runs.
 * why's first line is copied into msg (PG_CONN_WHY bytes) before the PGconn
 * that may hold it is freed. Returns PG_CONN_LOST, PG_CONN_CONNECT_FAILED
 * or PG_CONN_QUIET: what the owner should log. */
int pg_conn_drop(pg_conn *c, const char *why, bool retry, char *msg);
/* Flushes what libpq has queued for the server; when some is left, also
 * polls for writability until it is sent. Returns 0, or -1 when the
 * connection failed (the owner then tears down with PQerrorMessage). */
int pg_conn_flush(pg_conn *c);
/* Ends c for good (after pg_conn_drop): state CLOSED, its timer closed with
 * close_cb (whose handle's data is c). */
void pg_conn_close(pg_conn *c, uv_close_cb close_cb);

#define PG_CONN_CONNECT_TIMEOUT_MS 5000 /* one connection attempt */

#endif
