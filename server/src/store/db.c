/* db.c — per-reactor pools of non-blocking, pipelined libpq connections
 * (see db.h).
 *
 * Each connection is driven by uv_poll on the reactor's loop. Queries are sent
 * with PQsendQueryParams followed by PQpipelineSync, so every query is its own
 * implicit transaction: a failing query never aborts its neighbours. Results
 * come back in the order the queries were sent, so each connection keeps a
 * FIFO of in-flight queries and hands each result to the query at its head.
 * The pipeline per query is: its result, a NULL (end of the query), then a
 * PGRES_PIPELINE_SYNC result (end of the sync segment). The implicit
 * transaction commits at the sync, so a query's result is held until its
 * PGRES_PIPELINE_SYNC arrives: a callback with a result means committed
 * (and an error at commit is reported as the query's error).
 *
 * Failure rules (the "never hang" contract):
 * - a connection that breaks fails every query in flight on it with
 *   "unavailable" and reconnects after an exponential backoff with jitter;
 * - a query whose result has not come after DB_QUERY_TIMEOUT_MS means the
 *   server is stuck or unreachable: the connection is dropped (same as above);
 * - a connection attempt that takes longer than DB_CONNECT_TIMEOUT_MS fails;
 * - with no connection up, db_query answers "unavailable" at once, except
 *   while the pool's very first connection attempts are still in progress:
 *   queries then wait (bounded) for the first connection;
 * - the pool holds at most SB_DB_PENDING_MAX (DB_MAX_PENDING if unset)
 *   queries; past that, "unavailable".
 * A query that was in flight when its connection broke may or may not have
 * been committed: callers that need exactly-once effects must make their
 * writes idempotent.
 *
 * Reentrancy: callbacks may call db_query (even on the same connection). A
 * connection that breaks while its callbacks run is torn down only once they
 * have returned. db_pool_close must not be called from inside a db callback.
 *
 * During connection set-up, libpq may close its socket and open another (one
 * address after another, SSL fallback): a fresh uv_poll handle is made for
 * every set-up step, closed before PQconnectPoll runs, so epoll never keeps a
 * registration for a descriptor libpq has replaced. */
#include "store/db.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "base/config.h"
#include "base/log.h"
#include "net/reactor.h"

#define DB_MAX_PENDING 4096        /* queries queued or in flight, per pool (default) */
#define DB_CONNECT_TIMEOUT_MS 5000 /* one connection attempt */
#define DB_QUERY_TIMEOUT_MS 30000  /* oldest in-flight query before the connection is dropped */
#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 2000

enum { DBC_DOWN = 0, DBC_CONNECTING, DBC_UP, DBC_CLOSED };

typedef struct dbq {
    struct dbq *next;
    db_cb cb;
    void *arg;
    uint64_t sent_ms;
    bool delivered; /* its callback has run */
    bool ended;     /* the NULL after its results was seen */
    PGresult *held; /* its result, handed over at the sync: after the commit */
    /* while waiting for the first connection: copies of the query */
    char *sql;
    int nparams;
    char **params;
} dbq;

typedef struct db_conn {
    db_pool *pool;
    int idx;
    int state;
    PGconn *pg;
    uv_poll_t *poll; /* heap: closed handles are freed in their close callback */
    int poll_events;
    uv_timer_t timer; /* connect timeout while CONNECTING, backoff while DOWN */
    uint64_t backoff_ms;
    int fail_streak; /* consecutive failed attempts (for logging) */
    bool was_up;
    dbq *head, *tail; /* in flight, in send order */
    size_t n;
    int busy;      /* > 0 while its callbacks run */
    bool dead;     /* broke while busy: tear down when idle */
    char why[160]; /* why it broke (for the deferred teardown) */
} db_conn;

struct db_pool {
    reactor *r;
    uv_loop_t *loop;
    char *conninfo;
    int size;
    int pending_max; /* SB_DB_PENDING_MAX, or DB_MAX_PENDING */
    db_conn *conns;
    dbq *wait_head, *wait_tail; /* waiting for the first connection */
    size_t pending;             /* in flight + waiting */
    bool starting;              /* first connection attempts in progress */
    bool closing;
    int open_handles; /* timers not yet closed */
    uv_timer_t watchdog;
};

static void conn_start(db_conn *c);
static void conn_teardown(db_conn *c, const char *why);
static void send_waiting(db_conn *c);
static void on_timer(uv_timer_t *t);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* Close callback of the heap poll handles. */
static void poll_free_cb(uv_handle_t *h)
{
    free(h);
}

/* Closes c's current poll handle, if any (stops polling at once). */
static void poll_close(db_conn *c)
{
    if (!c->poll) return;
    uv_close((uv_handle_t *)c->poll, poll_free_cb);
    c->poll = NULL;
    c->poll_events = 0;
}

/* Starts a fresh poll handle on c's socket for `events` with callback cb.
 * Returns 0 or -1. */
static int poll_open(db_conn *c, int events, uv_poll_cb cb)
{
    poll_close(c);
    int fd = PQsocket(c->pg);
    if (fd < 0) return -1;
    uv_poll_t *h = malloc(sizeof *h);
    if (!h) return -1;
    if (uv_poll_init(c->pool->loop, h, fd) != 0) {
        free(h);
        return -1;
    }
    h->data = c;
    uv_unref((uv_handle_t *)h); /* the pool never keeps a loop alive by itself */
    c->poll = h;
    if (uv_poll_start(h, events, cb) != 0) {
        poll_close(c);
        return -1;
    }
    c->poll_events = events;
    return 0;
}

/* True for errors that mean the connection or server is going away (the
 * query is then reported "unavailable" rather than as a query error). */
static bool conn_class_error(const char *sqlstate)
{
    if (!sqlstate || !*sqlstate) return true; /* libpq-generated: connection trouble */
    return !strncmp(sqlstate, "08", 2) || !strcmp(sqlstate, "57P01") ||
           !strcmp(sqlstate, "57P02") || !strcmp(sqlstate, "57P03");
}

/* Frees a query record and its copies. */
static void dbq_free(dbq *q)
{
    PQclear(q->held);
    if (q->params) {
        for (int i = 0; i < q->nparams; i++)
            free(q->params[i]);
        free(q->params);
    }
    free(q->sql);
    free(q);
}

/* Drops q, answering "unavailable" unless its callback already ran (a
 * query whose result came but whose sync did not). */
static void fail_query(db_pool *p, dbq *q)
{
    p->pending--;
    if (!q->delivered) {
        q->delivered = true;
        q->cb(NULL, "unavailable", q->arg);
    }
    dbq_free(q);
}

/* True while some connection attempt of p is in progress. */
static bool any_connecting(const db_pool *p)
{
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state == DBC_CONNECTING) return true;
    return false;
}

/* Ends the start-up phase once no first attempt is left in progress: queries
 * that were waiting for a connection get "unavailable". */
static void maybe_end_starting(db_pool *p)
{
    if (!p->starting || any_connecting(p)) return;
    p->starting = false;
    while (p->wait_head) {
        dbq *q = p->wait_head;
        p->wait_head = q->next;
        if (!p->wait_head) p->wait_tail = NULL;
        fail_query(p, q);
    }
}

/* ------------------------------------------------------------------------ */
/* Results                                                                   */
/* ------------------------------------------------------------------------ */

/* Hands res to q's callback (mapping errors), then frees res. */
static void deliver(dbq *q, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    q->delivered = true;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        q->cb(res, NULL, q->arg);
    } else if (st == PGRES_PIPELINE_ABORTED) {
        q->cb(res, "pipeline aborted", q->arg);
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (conn_class_error(state)) {
            q->cb(NULL, "unavailable", q->arg);
        } else {
            const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            q->cb(res, m && *m ? m : "query failed", q->arg);
        }
    }
    PQclear(res);
}

/* Reads every complete result available on c and hands each to its query. */
static void drain(db_conn *c)
{
    db_pool *p = c->pool;
    c->busy++;
    while (c->state == DBC_UP && c->head) {
        if (PQstatus(c->pg) == CONNECTION_BAD) break;
        if (PQisBusy(c->pg)) break;
        dbq *q = c->head;
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            if (q->ended) break; /* nothing more will come now */
            q->ended = true;
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            c->head = q->next;
            if (!c->head) c->tail = NULL;
            c->n--;
            p->pending--;
            /* the implicit transaction has committed (or failed) only now */
            if (q->held) {
                PGresult *h = q->held;
                q->held = NULL;
                deliver(q, h);
            } else if (!q->delivered) {
                q->cb(NULL, "unavailable", q->arg);
            }
            dbq_free(q);
            continue;
        }
        if (q->delivered) { /* a second result for one query: not expected */
            PQclear(res);
            continue;
        }
        /* held until the sync: a failure at commit replaces the result */
        if (q->held && PQresultStatus(res) != PGRES_FATAL_ERROR) {
            PQclear(res);
            continue;
        }
        PQclear(q->held);
        q->held = res;
    }
    c->busy--;
    if (c->busy == 0) {
        if (c->dead)
            conn_teardown(c, c->why);
        else if (c->state == DBC_UP && PQstatus(c->pg) == CONNECTION_BAD)
            conn_teardown(c, PQerrorMessage(c->pg));
    }
}

/* ------------------------------------------------------------------------ */
/* Connection life cycle                                                     */
/* ------------------------------------------------------------------------ */

/* Schedules the next connection attempt with exponential backoff + jitter. */
static void schedule_retry(db_conn *c)
{
    if (c->pool->closing) return;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : DB_BACKOFF_MIN_MS;
    if (c->backoff_ms > DB_BACKOFF_MAX_MS) c->backoff_ms = DB_BACKOFF_MAX_MS;
    uint64_t jitter = (uint64_t)(rand() % 1000) * c->backoff_ms / 2000; /* 0..50% */
    uv_timer_start(&c->timer, on_timer, c->backoff_ms * 3 / 4 + jitter, 0);
}

/* Drops c's connection: fails its in-flight queries with "unavailable" and
 * schedules a reconnect. Deferred while c's callbacks run. */
static void conn_teardown(db_conn *c, const char *why)
{
    db_pool *p = c->pool;
    if (c->busy) {
        if (!c->dead) {
            c->dead = true;
            snprintf(c->why, sizeof c->why, "%s", why ? why : "");
        }
        if (c->state == DBC_UP) c->state = DBC_DOWN; /* no new queries on it */
        return;
    }
    char msg[160]; /* copy first: why may point into the PGconn freed below */
    snprintf(msg, sizeof msg, "%s", why ? why : "");
    c->dead = false;
    poll_close(c);
    uv_timer_stop(&c->timer);
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    c->state = p->closing ? DBC_CLOSED : DBC_DOWN;
    msg[strcspn(msg, "\n")] = 0; /* libpq's first line says it all */
    if (p->closing) {
        /* closing on purpose: nothing to report */
    } else if (c->was_up) {
        log_msg(LOG_WARN, "db connection lost", "reactor", json_integer(p->r ? p->r->id : -1),
                "conn", json_integer(c->idx), "error", json_string(msg), "in_flight",
                json_integer((json_int_t)c->n), NULL);
    } else if (c->fail_streak == 0) {
        log_msg(LOG_WARN, "db connect failed", "reactor", json_integer(p->r ? p->r->id : -1),
                "conn", json_integer(c->idx), "error", json_string(msg), NULL);
    }
    if (!c->was_up) c->fail_streak++;
    c->was_up = false;
    dbq *q = c->head;
    c->head = c->tail = NULL;
    c->n = 0;
    schedule_retry(c);
    c->busy++;
    while (q) {
        dbq *next = q->next;
        fail_query(p, q);
        q = next;
    }
    c->busy--;
    maybe_end_starting(p);
}

/* I/O on an established connection. */
static void on_io(uv_poll_t *h, int status, int events)
{
    db_conn *c = h->data;
    if (status < 0) {
        /* socket error (libuv reports POLLERR as EBADF): collect what libpq
         * can still read, for a meaningful reason, then drop the connection */
        const char *why = status == UV_EBADF ? "socket error" : uv_strerror(status);
        if (!PQconsumeInput(c->pg) && *PQerrorMessage(c->pg)) why = PQerrorMessage(c->pg);
        char copy[160];
        snprintf(copy, sizeof copy, "%s", why);
        conn_teardown(c, copy);
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(c->pg);
        if (f < 0) {
            conn_teardown(c, PQerrorMessage(c->pg));
            return;
        }
        if (f == 0 && c->poll) {
            uv_poll_start(c->poll, UV_READABLE, on_io);
            c->poll_events = UV_READABLE;
        }
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->pg)) {
            char why[160];
            snprintf(why, sizeof why, "%s", PQerrorMessage(c->pg));
            /* hand over whatever complete results arrived before the break
             * (drain may tear the connection down itself) */
            drain(c);
            if (c->state == DBC_UP || c->dead) conn_teardown(c, why);
            return;
        }
        drain(c);
    }
}

/* The connection is established: switch to pipeline mode and start serving. */
static void conn_ready(db_conn *c)
{
    db_pool *p = c->pool;
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1 ||
        poll_open(c, UV_READABLE, on_io) != 0) {
        conn_teardown(c, "could not enter pipeline mode");
        return;
    }
    c->state = DBC_UP;
    c->was_up = true;
    c->backoff_ms = 0;
    if (c->fail_streak > 0)
        log_msg(LOG_INFO, "db connection restored", "reactor", json_integer(p->r ? p->r->id : -1),
                "conn", json_integer(c->idx), NULL);
    c->fail_streak = 0;
    p->starting = false;
    send_waiting(c);
}

/* One step of the connection set-up. */
static void on_connect_io(uv_poll_t *h, int status, int events)
{
    db_conn *c = h->data;
    poll_close(c); /* before libpq may swap its socket */
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK:
        conn_ready(c);
        break;
    case PGRES_POLLING_READING:
        if (poll_open(c, UV_READABLE, on_connect_io) != 0) conn_teardown(c, "poll failed");
        break;
    case PGRES_POLLING_WRITING:
        if (poll_open(c, UV_WRITABLE, on_connect_io) != 0) conn_teardown(c, "poll failed");
        break;
    default:
        conn_teardown(c, PQerrorMessage(c->pg));
        break;
    }
}

/* The connection timer: a connect timeout while CONNECTING, the end of the
 * backoff while DOWN. */
static void on_timer(uv_timer_t *t)
{
    db_conn *c = t->data;
    if (c->state == DBC_CONNECTING)
        conn_teardown(c, "connect timeout");
    else if (c->state == DBC_DOWN && !c->pool->closing)
        conn_start(c);
}

/* Server notices (and errors that arrive outside any query, such as the
 * FATAL sent when the server shuts down) go to the log, not to stderr. */
static void on_notice(void *arg, const char *message)
{
    db_conn *c = arg;
    char msg[200];
    snprintf(msg, sizeof msg, "%s", message);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = 0;
    log_msg(LOG_DEBUG, "db notice", "conn", json_integer(c->idx), "message", json_string(msg),
            NULL);
}

/* Begins a non-blocking connection attempt. */
static void conn_start(db_conn *c)
{
    db_pool *p = c->pool;
    /* Our defaults first; the caller's connection string (expanded from
     * dbname) comes last, so anything it says wins. */
    const char *const kw[] = {
        "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count",          "gssencmode", "dbname",          NULL};
    const char *const val[] = {"switchboard", "1", "30", "10", "3", "disable", p->conninfo, NULL};
    c->pg = PQconnectStartParams(kw, val, 1);
    c->state = DBC_CONNECTING;
    c->dead = false;
    uv_timer_start(&c->timer, on_timer, DB_CONNECT_TIMEOUT_MS, 0);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_teardown(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, c);
    /* Just after PQconnectStart, behave as if PQconnectPoll said WRITING. */
    if (poll_open(c, UV_WRITABLE, on_connect_io) != 0) conn_teardown(c, "poll failed");
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

/* Sends q on the established connection c (q joins c's in-flight FIFO).
 * On a broken connection q gets "unavailable" along with the others. */
static void conn_send(db_conn *c, dbq *q, const char *sql, int nparams, const char *const *params)
{
    db_pool *p = c->pool;
    q->sent_ms = uv_now(p->loop);
    if (!PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0)) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            /* queue it so the teardown answers it with the rest */
            if (c->tail)
                c->tail->next = q;
            else
                c->head = q;
            c->tail = q;
            c->n++;
            conn_teardown(c, PQerrorMessage(c->pg));
            return;
        }
        log_msg(LOG_ERROR, "db query refused by libpq", "error", json_string(PQerrorMessage(c->pg)),
                NULL);
        fail_query(p, q);
        return;
    }
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->n++;
    if (!PQpipelineSync(c->pg)) {
        conn_teardown(c, PQerrorMessage(c->pg));
        return;
    }
    int f = PQflush(c->pg);
    if (f < 0) {
        conn_teardown(c, PQerrorMessage(c->pg));
    } else if (f == 1 && c->poll && !(c->poll_events & UV_WRITABLE)) {
        uv_poll_start(c->poll, UV_READABLE | UV_WRITABLE, on_io);
        c->poll_events = UV_READABLE | UV_WRITABLE;
    }
}

/* Sends every query that was waiting for the first connection on c. */
static void send_waiting(db_conn *c)
{
    db_pool *p = c->pool;
    while (p->wait_head && c->state == DBC_UP) {
        dbq *q = p->wait_head;
        p->wait_head = q->next;
        if (!p->wait_head) p->wait_tail = NULL;
        q->next = NULL;
        char *sql = q->sql;
        char **params = q->params;
        int np = q->nparams;
        q->sql = NULL;
        q->params = NULL;
        conn_send(c, q, sql, np, (const char *const *)params);
        for (int i = 0; i < np; i++)
            free(params[i]);
        free(params);
        free(sql);
    }
}

/* The established connection with the fewest queries in flight, or NULL. */
static db_conn *pick(db_pool *p)
{
    db_conn *best = NULL;
    for (int i = 0; i < p->size; i++) {
        db_conn *c = &p->conns[i];
        if (c->state == DBC_UP && !c->dead && (!best || c->n < best->n)) best = c;
    }
    return best;
}

/* Copies a query so it can wait for the first connection. */
static int dbq_copy(dbq *q, const char *sql, int nparams, const char *const *params)
{
    q->sql = strdup(sql);
    if (!q->sql) return -1;
    q->nparams = nparams;
    if (nparams > 0) {
        q->params = calloc((size_t)nparams, sizeof *q->params);
        if (!q->params) return -1;
        for (int i = 0; i < nparams; i++)
            if (params[i] && !(q->params[i] = strdup(params[i]))) return -1;
    }
    return 0;
}

int db_query(db_pool *p, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg)
{
    if (!p || p->closing || p->pending >= (size_t)p->pending_max) {
        cb(NULL, "unavailable", arg);
        return 0;
    }
    db_conn *c = pick(p);
    if (!c && !(p->starting && any_connecting(p))) {
        cb(NULL, "unavailable", arg);
        return 0;
    }
    dbq *q = calloc(1, sizeof *q);
    if (!q) {
        cb(NULL, "unavailable", arg);
        return 0;
    }
    q->cb = cb;
    q->arg = arg;
    p->pending++;
    if (c) {
        conn_send(c, q, sql, nparams, params);
        return 0;
    }
    if (dbq_copy(q, sql, nparams, params) != 0) {
        fail_query(p, q);
        return 0;
    }
    if (p->wait_tail)
        p->wait_tail->next = q;
    else
        p->wait_head = q;
    p->wait_tail = q;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Pool                                                                      */
/* ------------------------------------------------------------------------ */

/* Once a second: drop connections whose oldest query is overdue. */
static void on_watchdog(uv_timer_t *t)
{
    db_pool *p = t->data;
    uint64_t now = uv_now(p->loop);
    for (int i = 0; i < p->size; i++) {
        db_conn *c = &p->conns[i];
        if (c->state == DBC_UP && c->head && now - c->head->sent_ms > DB_QUERY_TIMEOUT_MS)
            conn_teardown(c, "query timeout: no answer from the server");
    }
}

db_pool *db_pool_new(struct reactor *r, const char *conninfo, int size)
{
    if (size < 1) size = 1;
    db_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->conns = calloc((size_t)size, sizeof *p->conns);
    p->conninfo = strdup(conninfo ? conninfo : "");
    if (!p->conns || !p->conninfo) {
        free(p->conns);
        free(p->conninfo);
        free(p);
        return NULL;
    }
    p->r = r;
    p->loop = &r->loop;
    p->size = size;
    p->pending_max = g_cfg.db_pending_max > 0 ? g_cfg.db_pending_max : DB_MAX_PENDING;
    p->starting = true;
    uv_timer_init(p->loop, &p->watchdog);
    p->watchdog.data = p;
    p->open_handles++;
    uv_timer_start(&p->watchdog, on_watchdog, 1000, 1000);
    uv_unref((uv_handle_t *)&p->watchdog);
    for (int i = 0; i < size; i++) {
        db_conn *c = &p->conns[i];
        c->pool = p;
        c->idx = i;
        uv_timer_init(p->loop, &c->timer);
        uv_unref((uv_handle_t *)&c->timer);
        c->timer.data = c;
        p->open_handles++;
    }
    for (int i = 0; i < size; i++)
        conn_start(&p->conns[i]);
    return p;
}

bool db_pool_ready(const db_pool *p)
{
    if (!p) return false;
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state == DBC_UP && !p->conns[i].dead) return true;
    return false;
}

/* Frees the pool once its last timer has closed. */
static void pool_handle_closed(uv_handle_t *h)
{
    db_pool *p = (db_pool *)h->data;
    if (--p->open_handles == 0) {
        free(p->conns);
        free(p->conninfo);
        free(p);
    }
}

void db_pool_close(db_pool *p)
{
    if (!p || p->closing) return;
    p->closing = true;
    p->starting = false;
    for (int i = 0; i < p->size; i++) {
        db_conn *c = &p->conns[i];
        conn_teardown(c, "pool closed");
        c->state = DBC_CLOSED;
    }
    while (p->wait_head) {
        dbq *q = p->wait_head;
        p->wait_head = q->next;
        fail_query(p, q);
    }
    p->wait_tail = NULL;
    p->watchdog.data = p;
    uv_close((uv_handle_t *)&p->watchdog, pool_handle_closed);
    for (int i = 0; i < p->size; i++) {
        p->conns[i].timer.data = p;
        uv_close((uv_handle_t *)&p->conns[i].timer, pool_handle_closed);
    }
}
