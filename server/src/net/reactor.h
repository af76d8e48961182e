/* reactor.h — N event loops, one thread each, each with its own SO_REUSEPORT
 * listener. A connection lives and dies on one reactor, so nothing on the
 * per-connection path takes a lock. Work crosses reactors only as closures
 * posted to a reactor's queue (reactor_post), which wakes it with uv_async. */
#ifndef SB_REACTOR_H
#define SB_REACTOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct db_pool;
struct sb_conn;
struct pubsub_local;

typedef void (*reactor_fn)(void *arg);

typedef struct reactor_task {
    struct reactor_task *next;
    reactor_fn fn;
    void *arg;
} reactor_task;

typedef struct reactor {
    int id;                    /* 0..n-1 */
    uv_loop_t loop;
    pthread_t thread;
    uv_tcp_t listener;         /* public HTTP/WebSocket port */
    uv_tcp_t admin_listener;   /* admin port (reactor 0 only) */
    bool has_admin;
    uv_async_t wake;           /* drains `tasks` */
    pthread_mutex_t tasks_mu;
    reactor_task *tasks_head, *tasks_tail;
    uv_timer_t tick;           /* 1 s housekeeping: idle sweeps, long-poll expiry */
    uint64_t now_ms;           /* loop time of the current iteration */
    struct db_pool *db;        /* this reactor's Postgres pool (may be NULL) */
    struct pubsub_local *ps;   /* this reactor's topic -> subscribers table */
    struct sb_conn *conns;     /* live connections (conn.c) */
    struct sb_conn *dirty;     /* connections with queued output to flush */
    uv_prepare_t flush_prepare;/* flushes before the loop blocks */
    uv_check_t flush_check;    /* flushes after I/O callbacks */
    void *lp;                  /* long-poll sessions owned by this reactor (longpoll.c) */
    uint64_t nconns;
    bool stopping;
    uint64_t stop_ms;          /* loop time when shutdown began */
} reactor;

extern reactor *g_reactors;
extern int g_nreactors;

/* The reactor whose thread is running, or NULL on another thread. */
reactor *reactor_self(void);
/* Makes r the calling thread's reactor, for a program that drives r's loop
 * itself instead of through reactors_start (the fuzz harnesses). */
void reactor_adopt(reactor *r);
/* Runs fn(arg) on reactor r's thread, soon (FIFO per reactor). Thread-safe;
 * callable from any thread, including r's own. Returns 0, or -1 when out of
 * memory (fn is then not called). */
int reactor_post(reactor *r, reactor_fn fn, void *arg);
/* Starts n reactors listening on host:port (port 0 picks one, shared by all).
 * Writes the bound port to *bound_port. Returns 0 or a negative uv error. */
int reactors_start(int n, const char *host, int port, const char *admin_host, int admin_port,
                   int *bound_port, int *bound_admin_port);
/* Begins graceful shutdown on every reactor: stop accepting, close sockets
 * with 1001, then stop the loops. Thread-safe. */
void reactors_shutdown(void);
/* Waits for every reactor thread to exit. */
void reactors_join(void);

#endif
