/* db.h — asynchronous Postgres access, one bounded pool per reactor.
 *
 * Connections are libpq non-blocking connections watched by uv_poll on the
 * reactor's loop, in pipeline mode: queries from many requests are sent
 * back-to-back on one connection without waiting for each other's results.
 * SQL is always parameterised. While Postgres is unreachable, db_query fails
 * at once (callback with res NULL, err "unavailable") and the pool reconnects
 * with backoff by itself. */
#ifndef SB_DB_H
#define SB_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include "net/reactor.h"

typedef struct db_pool db_pool;

/* The reactor slot holding each reactor's pool (db_register). */
extern int db_reactor_slot;

/* Reactor r's pool, or NULL (no database configured, or not yet made). */
static inline db_pool *db_of(const reactor *r) { return (db_pool *)r->slot[db_reactor_slot]; }

/* Called once per query on the reactor's thread. On success res is the
 * result (PGRES_TUPLES_OK / PGRES_COMMAND_OK, owned by the pool: valid only
 * during the callback) and err NULL. On failure res may be NULL (connection
 * lost or pool down: err = "unavailable") or an error result (err = the
 * server's message; sqlstate in PQresultErrorField(res, PG_DIAG_SQLSTATE)). */
typedef void (*db_cb)(const PGresult *res, const char *err, void *arg);

/* Creates the pool for reactor r with up to `size` connections to conninfo
 * and starts connecting. Returns NULL on allocation failure. */
db_pool *db_pool_new(reactor *r, const char *conninfo, int size);
/* Queues a parameterised query (text params, NULL = SQL NULL). The callback
 * always runs exactly once, possibly before db_query returns when the pool
 * is down. Returns 0 if queued or answered. */
int db_query(db_pool *p, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg);
/* A statement prepared once per connection: a static object whose name is
 * unique in the process (Postgres's prepared-statement name), its SQL and
 * its number of parameters. */
typedef struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
} db_stmt;
/* Queues statement st (params as for db_query) on one of the first
 * `within` established connections of the pool (all when within <= 0): a
 * class of heavy queries (searches) is kept to a few backends, so that it
 * never occupies every connection nor runs more statements at once than the
 * machine has cores. On each connection st is prepared once (a Parse of its
 * own, pipelined just before its first use there) and then executed by
 * name, so Postgres parses and plans it once per connection instead of once
 * per query. A query that waits for the first connection goes as text.
 * Same callback contract as db_query. */
int db_query_prepared(db_pool *p, int within, const db_stmt *st, const char *const *params, db_cb cb,
                      void *arg);
/* True while at least one connection is up. */
bool db_pool_ready(const db_pool *p);
/* Closes every connection; pending callbacks get "unavailable". */
void db_pool_close(db_pool *p);
/* Registers the pools with the reactors (before reactor_start_all): each
 * reactor makes its pool of `size` connections to conninfo (kept, not
 * copied) when its thread starts, unless conninfo is empty, and closes it
 * when its loop ends. Returns 0, or -1 when no reactor slot is left. */
int db_register(const char *conninfo, int size);

#endif
