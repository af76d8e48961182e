/* pg_conn.c — one non-blocking libpq connection on a libuv loop: set-up,
 * connect timeout, backoff, flush and polling (see pg_conn.h). */
#include "store/pg_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_CONN_BACKOFF_MIN_MS 100
#define PG_CONN_BACKOFF_MAX_MS 2000

static void on_io(uv_poll_t *h, int status, int events);

/* Close callback of the heap poll handles. */
static void poll_free_cb(uv_handle_t *h)
{
    free(h);
}

/* Closes c's current poll handle, if any (stops polling at once). */
static void poll_close(pg_conn *c)
{
    if (!c->poll) return;
    uv_close((uv_handle_t *)c->poll, poll_free_cb);
    c->poll = NULL;
    c->poll_events = 0;
}

/* Starts a fresh poll handle on c's socket for `events` with callback cb.
 * Returns 0 or -1. */
static int poll_open(pg_conn *c, int events, uv_poll_cb cb)
{
    poll_close(c);
    int fd = PQsocket(c->pg);
    if (fd < 0) return -1;
    uv_poll_t *h = malloc(sizeof *h);
    if (!h) return -1;
    if (uv_poll_init(c->loop, h, fd) != 0) {
        free(h);
        return -1;
    }
    h->data = c;
    uv_unref((uv_handle_t *)h); /* a connection never keeps its loop alive by itself */
    c->poll = h;
    if (uv_poll_start(h, events, cb) != 0) {
        poll_close(c);
        return -1;
    }
    c->poll_events = events;
    return 0;
}

/* I/O on an established connection: finish a pending flush, hand input to
 * the owner. */
static void on_io(uv_poll_t *h, int status, int events)
{
    pg_conn *c = h->data;
    if (status < 0) {
        /* socket error (libuv reports POLLERR as EBADF): collect what libpq
         * can still read, for a meaningful reason, then fail */
        const char *why = status == UV_EBADF ? "socket error" : uv_strerror(status);
        if (!PQconsumeInput(c->pg) && *PQerrorMessage(c->pg)) why = PQerrorMessage(c->pg);
        char copy[PG_CONN_WHY];
        snprintf(copy, sizeof copy, "%s", why);
        c->hooks->fail(c, copy);
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(c->pg);
        if (f < 0) {
            c->hooks->fail(c, PQerrorMessage(c->pg));
            return;
        }
        if (f == 0 && c->poll) {
            uv_poll_start(c->poll, UV_READABLE, on_io);
            c->poll_events = UV_READABLE;
        }
    }
    if (events & UV_READABLE) c->hooks->readable(c);
}

/* The connection is established: non-blocking (and pipeline mode if asked),
 * polled for reading, then handed to the owner. */
static void conn_ready(pg_conn *c)
{
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 || (c->pipeline && PQenterPipelineMode(c->pg) != 1) ||
        poll_open(c, UV_READABLE, on_io) != 0) {
        c->hooks->fail(c, "could not set up the connection");
        return;
    }
    c->state = PG_CONN_UP;
    c->was_up = true;
    c->backoff_ms = 0;
    bool restored = c->fail_streak > 0;
    c->fail_streak = 0;
    c->hooks->up(c, restored);
}

/* One step of the connection set-up. */
static void on_connect_io(uv_poll_t *h, int status, int events)
{
    pg_conn *c = h->data;
    poll_close(c); /* before libpq may swap its socket */
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK:
        conn_ready(c);
        break;
    case PGRES_POLLING_READING:
        if (poll_open(c, UV_READABLE, on_connect_io) != 0) c->hooks->fail(c, "poll failed");
        break;
    case PGRES_POLLING_WRITING:
        if (poll_open(c, UV_WRITABLE, on_connect_io) != 0) c->hooks->fail(c, "poll failed");
        break;
    default:
        c->hooks->fail(c, PQerrorMessage(c->pg));
        break;
    }
}

/* The timer: a connect timeout while CONNECTING, the end of the backoff
 * while DOWN. */
static void on_timer(uv_timer_t *t)
{
    pg_conn *c = t->data;
    if (c->state == PG_CONN_CONNECTING)
        c->hooks->fail(c, "connect timeout");
    else if (c->state == PG_CONN_DOWN)
        pg_conn_start(c);
}

/* libpq's notice processor, forwarded to the owner's hook. */
static void on_notice(void *arg, const char *message)
{
    pg_conn *c = arg;
    c->hooks->notice(c, message);
}

void pg_conn_init(pg_conn *c, uv_loop_t *loop, const pg_conn_hooks *hooks, void *owner,
                  const char *conninfo, const char *app_name, bool pipeline)
{
    *c = (pg_conn){.loop = loop,
                   .hooks = hooks,
                   .owner = owner,
                   .conninfo = conninfo,
                   .app_name = app_name,
                   .pipeline = pipeline,
                   .state = PG_CONN_DOWN};
    uv_timer_init(loop, &c->timer);
    uv_unref((uv_handle_t *)&c->timer);
    c->timer.data = c;
}

void pg_conn_start(pg_conn *c)
{
    /* Our defaults first; the caller's connection string (expanded from
     * dbname) comes last, so anything it says wins. */
    const char *const kw[] = {
        "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count",          "gssencmode", "dbname",          NULL};
    const char *const val[] = {c->app_name, "1", "30", "10", "3", "disable", c->conninfo, NULL};
    c->pg = PQconnectStartParams(kw, val, 1);
    c->state = PG_CONN_CONNECTING;
    uv_timer_start(&c->timer, on_timer, PG_CONN_CONNECT_TIMEOUT_MS, 0);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        c->hooks->fail(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    if (c->hooks->notice) PQsetNoticeProcessor(c->pg, on_notice, c);
    /* Just after PQconnectStart, behave as if PQconnectPoll said WRITING. */
    if (poll_open(c, UV_WRITABLE, on_connect_io) != 0) c->hooks->fail(c, "poll failed");
}

int pg_conn_drop(pg_conn *c, const char *why, bool retry, char *msg)
{
    snprintf(msg, PG_CONN_WHY, "%s", why ? why : ""); /* why may point into the PGconn */
    msg[strcspn(msg, "\n")] = 0;                      /* libpq's first line says it all */
    poll_close(c);
    uv_timer_stop(&c->timer);
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    c->state = PG_CONN_DOWN;
    int report = c->was_up             ? PG_CONN_LOST
                 : c->fail_streak == 0 ? PG_CONN_CONNECT_FAILED
                                       : PG_CONN_QUIET;
    if (!c->was_up) c->fail_streak++;
    c->was_up = false;
    if (retry) {
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : PG_CONN_BACKOFF_MIN_MS;
        if (c->backoff_ms > PG_CONN_BACKOFF_MAX_MS) c->backoff_ms = PG_CONN_BACKOFF_MAX_MS;
        uint64_t jitter = (uint64_t)(rand() % 1000) * c->backoff_ms / 2000; /* 0..50% */
        uv_timer_start(&c->timer, on_timer, c->backoff_ms * 3 / 4 + jitter, 0);
    }
    return report;
}

int pg_conn_flush(pg_conn *c)
{
    int f = PQflush(c->pg);
    if (f < 0) return -1;
    if (f == 1 && c->poll && !(c->poll_events & UV_WRITABLE)) {
        uv_poll_start(c->poll, UV_READABLE | UV_WRITABLE, on_io);
        c->poll_events = UV_READABLE | UV_WRITABLE;
    }
    return 0;
}

void pg_conn_close(pg_conn *c, uv_close_cb close_cb)
{
    c->state = PG_CONN_CLOSED;
    c->timer.data = c;
    uv_close((uv_handle_t *)&c->timer, close_cb);
}
