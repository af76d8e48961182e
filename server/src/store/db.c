/* db.c — per-reactor pools of non-blocking, pipelined libpq connections
 * (see db.h).
 *
 * Each connection is driven by uv_poll on the reactor's loop. Queries are sent
 * with PQsendQueryParams (or PQsendQueryPrepared for a db_stmt, after one
 * PQsendPrepare per connection, a segment of its own) followed by
 * PQpipelineSync, so every query is its own
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
 * Connection set-up, backoff, flushing and polling are pg_conn's (shared
 * with the event tailer); this file keeps the pool: query FIFOs, pipeline
 * results, the first-connection wait and the watchdog. */
#include "store/db.h"
#include "base/metrics.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "base/config.h"
#include "base/log.h"
#include "net/reactor.h"
#include "store/pg_conn.h"

#define DB_MAX_PENDING 4096       /* queries queued or in flight, per pool (default) */
#define DB_QUERY_TIMEOUT_MS 30000 /* oldest in-flight query before the connection is dropped */
#define DB_PREPARED_MAX 16        /* db_stmts prepared per connection (more go as text) */

typedef struct dbq {
    struct dbq *next;
    db_cb cb;
    void *arg;
    uint64_t sent_ms;
    uint64_t sent_ns; /* uv_hrtime at send: sb_db_query_seconds */
    bool delivered; /* its callback has run */
    bool ended;     /* the NULL after its results was seen */
    PGresult *held; /* its result, handed over at the sync: after the commit */
    /* a Parse of db_query_prepared's (its callback is prepared_done) */
    const db_stmt *prepares;
    struct db_conn *on;
    /* while waiting for the first connection: copies of the query */
    char *sql;
    int nparams;
    char **params;
} dbq;

typedef struct db_conn {
    pg_conn pc; /* the libpq connection, its set-up, backoff and polling */
    db_pool *pool;
    int idx;
    dbq *head, *tail; /* in flight, in send order */
    size_t n;
    int busy;      /* > 0 while its callbacks run */
    bool dead;     /* broke while busy: tear down when idle */
    const db_stmt *prepared[DB_PREPARED_MAX]; /* sent a Parse in this session */
    int nprepared;
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

static void db_teardown(db_conn *c, const char *why);
static void send_waiting(db_conn *c);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* True while c takes queries: up, and not broken while its callbacks run. */
static bool usable(const db_conn *c)
{
    return c->pc.state == PG_CONN_UP && !c->dead;
}

/* True for errors that mean the connection or server is going away (the
 * query is then reported "unavailable" rather than as a query error). */
static bool db_error_is_unavailable(const char *sqlstate)
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
        if (p->conns[i].pc.state == PG_CONN_CONNECTING) return true;
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

/* metrics (docs/operations.md) */
static metrics_id m_refused, m_waits;
static metrics_hist m_query_latency;
static const int64_t k_db_bounds[] = {250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000};
__attribute__((constructor)) static void db_metrics(void)
{
    metrics_histogram(&m_query_latency, "sb_db_query_seconds",
                      "Postgres query latency, from send to the pipeline sync (commit).", NULL, k_db_bounds,
                      (int)(sizeof k_db_bounds / sizeof k_db_bounds[0]), 1e6);
    m_waits = metrics_counter("sb_db_pool_waits_total", "Queries that waited for a pool connection to come up.", NULL);
    m_refused = metrics_counter("sb_db_queries_refused_total",
                                "Queries refused at once: pool down, closing or at its pending limit.", NULL);
}

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
        if (db_error_is_unavailable(state)) {
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
    while (usable(c) && c->head) {
        if (PQstatus(c->pc.pg) == CONNECTION_BAD) break;
        if (PQisBusy(c->pc.pg)) break;
        dbq *q = c->head;
        PGresult *res = PQgetResult(c->pc.pg);
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
            metrics_observe(&m_query_latency, (int64_t)((uv_hrtime() - q->sent_ns) / 1000));
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
            db_teardown(c, c->why);
        else if (c->pc.state == PG_CONN_UP && PQstatus(c->pc.pg) == CONNECTION_BAD)
            db_teardown(c, PQerrorMessage(c->pc.pg));
    }
}

/* ------------------------------------------------------------------------ */
/* Connection life cycle                                                     */
/* ------------------------------------------------------------------------ */

/* Drops c's connection: fails its in-flight queries with "unavailable" and
 * schedules a reconnect (none while the pool closes). Deferred while c's
 * callbacks run: c is then marked dead and takes no new queries. */
static void db_teardown(db_conn *c, const char *why)
{
    db_pool *p = c->pool;
    if (c->busy) {
        if (!c->dead) {
            c->dead = true;
            snprintf(c->why, sizeof c->why, "%s", why ? why : "");
        }
        return;
    }
    c->dead = false;
    size_t in_flight = c->n;
    char msg[PG_CONN_WHY];
    int report = pg_conn_drop(&c->pc, why, !p->closing, msg);
    if (p->closing) {
        /* closing on purpose: nothing to report */
    } else if (report == PG_CONN_LOST) {
        log_msg(LOG_WARN, "db connection lost", "reactor", json_integer(p->r ? p->r->id : -1),
                "conn", json_integer(c->idx), "error", json_string(msg), "in_flight",
                json_integer((json_int_t)in_flight), NULL);
    } else if (report == PG_CONN_CONNECT_FAILED) {
        log_msg(LOG_WARN, "db connect failed", "reactor", json_integer(p->r ? p->r->id : -1),
                "conn", json_integer(c->idx), "error", json_string(msg), NULL);
    }
    dbq *q = c->head;
    c->head = c->tail = NULL;
    c->n = 0;
    c->busy++;
    while (q) {
        dbq *next = q->next;
        fail_query(p, q);
        q = next;
    }
    c->busy--;
    maybe_end_starting(p);
}

/* pg_conn hook: the connection failed. */
static void db_on_fail(pg_conn *pc, const char *why)
{
    db_teardown(pc->owner, why);
}

/* pg_conn hook: input arrived on an established connection. */
static void db_on_readable(pg_conn *pc)
{
    db_conn *c = pc->owner;
    if (!PQconsumeInput(c->pc.pg)) {
        char why[PG_CONN_WHY];
        snprintf(why, sizeof why, "%s", PQerrorMessage(c->pc.pg));
        /* hand over whatever complete results arrived before the break
         * (drain may tear the connection down itself) */
        drain(c);
        if (c->pc.state == PG_CONN_UP || c->dead) db_teardown(c, why);
        return;
    }
    drain(c);
}

/* pg_conn hook: the connection is up in pipeline mode: start serving. */
static void db_on_up(pg_conn *pc, bool restored)
{
    db_conn *c = pc->owner;
    db_pool *p = c->pool;
    if (restored)
        log_msg(LOG_INFO, "db connection restored", "reactor", json_integer(p->r ? p->r->id : -1),
                "conn", json_integer(c->idx), NULL);
    p->starting = false;
    c->nprepared = 0; /* a new session: nothing prepared yet */
    send_waiting(c);
}

/* pg_conn hook: server notices (and errors that arrive outside any query,
 * such as the FATAL sent when the server shuts down) go to the log, not to
 * stderr. */
static void db_on_notice(pg_conn *pc, const char *message)
{
    db_conn *c = pc->owner;
    char msg[200];
    snprintf(msg, sizeof msg, "%s", message);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = 0;
    log_msg(LOG_DEBUG, "db notice", "conn", json_integer(c->idx), "message", json_string(msg),
            NULL);
}

static const pg_conn_hooks db_hooks = {
    .up = db_on_up,
    .readable = db_on_readable,
    .fail = db_on_fail,
    .notice = db_on_notice,
};

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

/* Appends q to c's in-flight FIFO (send order). */
static void in_flight_push(db_conn *c, dbq *q)
{
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->n++;
}

/* Sends q on the established connection c (q joins c's in-flight FIFO): as
 * the prepared statement st when st is prepared on c, else as text.
 * On a broken connection q gets "unavailable" along with the others. */
static void db_send(db_conn *c, dbq *q, const db_stmt *st, const char *sql, int nparams,
                    const char *const *params)
{
    db_pool *p = c->pool;
    PGconn *pg = c->pc.pg;
    q->sent_ms = uv_now(p->loop);
    q->sent_ns = uv_hrtime();
    bool sent = st ? PQsendQueryPrepared(pg, st->name, nparams, params, NULL, NULL, 0)
                   : PQsendQueryParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    if (!sent && PQstatus(pg) != CONNECTION_BAD) {
        log_msg(LOG_ERROR, "db query refused by libpq", "error", json_string(PQerrorMessage(pg)),
                NULL);
        fail_query(p, q);
        return;
    }
    /* queued even on a broken connection: the teardown answers it with the rest */
    in_flight_push(c, q);
    if (!sent || !PQpipelineSync(pg) || pg_conn_flush(&c->pc) != 0)
        db_teardown(c, PQerrorMessage(pg));
}

/* The index of st among the statements prepared on c, or -1. */
static int prepared_at(const db_conn *c, const db_stmt *st)
{
    for (int i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == st) return i;
    return -1;
}

/* A Parse's answer: on an error (not a lost connection, which starts a new
 * session anyway) the statement is forgotten on its connection, so the
 * next use prepares it again; the query sent after it fails on its own. */
static void prepared_done(const PGresult *res, const char *err, void *arg)
{
    dbq *q = arg;
    if (!err || !strcmp(err, "unavailable")) return;
    log_msg(LOG_ERROR, "db prepare failed", "statement", json_string(q->prepares->name), "error",
            json_string(err), NULL);
    db_conn *c = q->on;
    int i = prepared_at(c, q->prepares);
    if (i >= 0) c->prepared[i] = c->prepared[--c->nprepared];
}

/* Sends a Parse of st on c (a pipeline segment of its own, answered to
 * prepared_done) and notes st as prepared there. False when c has no room
 * for another statement, or on allocation failure: st then goes as text. */
static bool prepare_on(db_conn *c, const db_stmt *st)
{
    db_pool *p = c->pool;
    if (c->nprepared >= DB_PREPARED_MAX) return false;
    dbq *q = calloc(1, sizeof *q);
    if (!q) return false;
    q->cb = prepared_done;
    q->arg = q;
    q->prepares = st;
    q->on = c;
    q->sent_ms = uv_now(p->loop);
    q->sent_ns = uv_hrtime();
    c->prepared[c->nprepared++] = st;
    p->pending++;
    bool sent = PQsendPrepare(c->pc.pg, st->name, st->sql, st->nparams, NULL);
    if (!sent && PQstatus(c->pc.pg) != CONNECTION_BAD) {
        c->nprepared--;
        fail_query(p, q);
        return false;
    }
    in_flight_push(c, q);
    if (!sent || !PQpipelineSync(c->pc.pg)) db_teardown(c, PQerrorMessage(c->pc.pg));
    return true;
}

/* Sends every query that was waiting for the first connection on c. */
static void send_waiting(db_conn *c)
{
    db_pool *p = c->pool;
    while (p->wait_head && usable(c)) {
        dbq *q = p->wait_head;
        p->wait_head = q->next;
        if (!p->wait_head) p->wait_tail = NULL;
        q->next = NULL;
        char *sql = q->sql;
        char **params = q->params;
        int np = q->nparams;
        q->sql = NULL;
        q->params = NULL;
        db_send(c, q, NULL, sql, np, (const char *const *)params);
        for (int i = 0; i < np; i++)
            free(params[i]);
        free(params);
        free(sql);
    }
}

/* The established connection with the fewest queries in flight among the
 * first `within` established ones in pool order (all when within <= 0), or
 * NULL. */
static db_conn *pick(db_pool *p, int within)
{
    db_conn *best = NULL;
    int seen = 0;
    for (int i = 0; i < p->size && (within <= 0 || seen < within); i++) {
        db_conn *c = &p->conns[i];
        if (!usable(c)) continue;
        seen++;
        if (!best || c->n < best->n) best = c;
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

/* db_query and db_query_prepared (st NULL: sql as text, on any connection
 * when within <= 0). */
static int query(db_pool *p, int within, const db_stmt *st, const char *sql, int nparams,
                 const char *const *params, db_cb cb, void *arg)
{
    if (!p || p->closing || p->pending >= (size_t)p->pending_max) {
        metrics_inc(m_refused);
        cb(NULL, "unavailable", arg);
        return 0;
    }
    db_conn *c = pick(p, within);
    if (!c && !(p->starting && any_connecting(p))) {
        metrics_inc(m_refused);
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
        if (st && prepared_at(c, st) < 0 && !prepare_on(c, st)) st = NULL;
        if (!usable(c)) { /* sending the Parse broke the connection */
            fail_query(p, q);
            return 0;
        }
        db_send(c, q, st, sql, nparams, params);
        return 0;
    }
    if (dbq_copy(q, sql, nparams, params) != 0) {
        fail_query(p, q);
        return 0;
    }
    metrics_inc(m_waits);
    if (p->wait_tail)
        p->wait_tail->next = q;
    else
        p->wait_head = q;
    p->wait_tail = q;
    return 0;
}

int db_query(db_pool *p, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg)
{
    return query(p, 0, NULL, sql, nparams, params, cb, arg);
}

int db_query_prepared(db_pool *p, int within, const db_stmt *st, const char *const *params, db_cb cb,
                      void *arg)
{
    return query(p, within, st, st->sql, st->nparams, params, cb, arg);
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
        if (usable(c) && c->head && now - c->head->sent_ms > DB_QUERY_TIMEOUT_MS)
            db_teardown(c, "query timeout: no answer from the server");
    }
}

db_pool *db_pool_new(reactor *r, const char *conninfo, int size)
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
    p->pending_max = g_config.db_pending_max > 0 ? g_config.db_pending_max : DB_MAX_PENDING;
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
        pg_conn_init(&c->pc, p->loop, &db_hooks, c, p->conninfo, "switchboard", true);
        p->open_handles++;
    }
    for (int i = 0; i < size; i++)
        pg_conn_start(&p->conns[i].pc);
    return p;
}

bool db_pool_ready(const db_pool *p)
{
    if (!p) return false;
    for (int i = 0; i < p->size; i++)
        if (usable(&p->conns[i])) return true;
    return false;
}

/* Frees the pool once its last timer has closed. */
static void pool_release(db_pool *p)
{
    if (--p->open_handles == 0) {
        free(p->conns);
        free(p->conninfo);
        free(p);
    }
}

/* Close callback of the watchdog. */
static void pool_handle_closed(uv_handle_t *h)
{
    pool_release(h->data);
}

/* Close callback of a connection's timer (its data is the pg_conn). */
static void conn_timer_closed(uv_handle_t *h)
{
    pg_conn *pc = h->data;
    db_conn *c = pc->owner;
    pool_release(c->pool);
}

void db_pool_close(db_pool *p)
{
    if (!p || p->closing) return;
    p->closing = true;
    p->starting = false;
    for (int i = 0; i < p->size; i++) {
        db_conn *c = &p->conns[i];
        db_teardown(c, "pool closed");
        pg_conn_close(&c->pc, conn_timer_closed);
    }
    while (p->wait_head) {
        dbq *q = p->wait_head;
        p->wait_head = q->next;
        fail_query(p, q);
    }
    p->wait_tail = NULL;
    p->watchdog.data = p;
    uv_close((uv_handle_t *)&p->watchdog, pool_handle_closed);
}

/* ---- one pool per reactor ---- */

int db_reactor_slot; /* 0 (always NULL) until db_register */
static const char *g_conninfo;
static int g_size;

static void pool_start(reactor *r)
{
    if (g_conninfo[0]) r->slot[db_reactor_slot] = db_pool_new(r, g_conninfo, g_size);
}

static void pool_exit(reactor *r)
{
    db_pool *p = db_of(r);
    if (p) db_pool_close(p);
}

static const reactor_hooks g_pool_hooks = {.start = pool_start, .exit = pool_exit};

int db_register(const char *conninfo, int size)
{
    g_conninfo = conninfo;
    g_size = size;
    int id = reactor_register(&g_pool_hooks);
    if (id < 0) return -1;
    db_reactor_slot = id;
    return 0;
}
