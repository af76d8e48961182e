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

struct sb_conn;

typedef void (*reactor_fn)(void *arg);

/* Slots: each module above the reactor that keeps per-reactor state (the
 * database pool, the topic table, long-poll sessions) gets one slot id at
 * registration and reads r->slot[id] through a small inline accessor in its
 * own header: as cheap as a field, and this header names none of them.
 * Slot 0 is reserved (always NULL). */
#define REACTOR_SLOTS 8

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
    uv_timer_t tick;           /* 1 s housekeeping: idle sweep, modules' tick hooks */
    uint64_t now_ms;           /* loop time of the current iteration */
    void *slot[REACTOR_SLOTS]; /* per-module state (reactor_register) */
    struct sb_conn *conns;     /* live connections (conn.c) */
    struct sb_conn *dirty;     /* connections with queued output to flush */
    uv_prepare_t flush_prepare;/* flushes before the loop blocks */
    uv_check_t flush_check;    /* flushes after I/O callbacks */
    uint64_t nconns;
    bool stopping;
    uint64_t stop_ms;          /* loop time when shutdown began */
    struct sb_conn *drain_next;/* shutdown: the next connection to send 1001 (conn.c) */
    uint64_t drain_total;      /* shutdown: connections to close over the drain window */
    uint64_t drain_done;       /* shutdown: how many of them were told so far */
    bool drained;              /* shutdown: its connections are all gone (or the deadline passed) */
    int linger;                /* shutdown, reactor 0: steps left after every reactor drained */
} reactor;

/* A module's hooks, each optional (NULL). They run on every reactor, in
 * registration order (exit: in reverse order):
 *   init:  in reactor_start_all, on the calling thread, before any reactor
 *          thread runs; 0, or -1 to make reactor_start_all fail (UV_ENOMEM);
 *   start: on r's thread, before its loop runs;
 *   tick:  on r's thread, once a second, after the idle-connection sweep;
 *   stop:  on r's thread, when shutdown begins: after the listeners close,
 *          before the connections are sent 1001;
 *   exit:  on r's thread, after its loop stopped, before its remaining
 *          handles are closed. */
typedef struct reactor_hooks {
    int (*init)(struct reactor *r);
    void (*start)(struct reactor *r);
    void (*tick)(struct reactor *r);
    void (*stop)(struct reactor *r);
    void (*exit)(struct reactor *r);
} reactor_hooks;

/* The running reactors (reactor_start_all): reactor_all[0..reactor_count-1]. */
extern reactor *reactor_all;
extern int reactor_count;

/* The reactor whose thread is running, or NULL on another thread. */
reactor *reactor_self(void);
/* Tells the reactors that `bytes` of large transient buffers (a burst of
 * presence_state frames) were freed: once such bursts stop, the next quiet
 * sweep gives the free memory back to the system (malloc_trim, conn.c).
 * Thread-safe. */
void reactor_trim_hint(size_t bytes);
/* A hint large enough for a trim at the next quiet second (the end of the
 * start-up: migrations and the sync window's backfill leave their results'
 * memory free in the arenas). */
#define REACTOR_TRIM_ANY ((size_t)1 << 32)
/* The sum of every reactor_trim_hint so far. */
uint64_t reactor_trim_hinted(void);
/* Makes r the calling thread's reactor, for a program that drives r's loop
 * itself instead of through reactor_start_all (the fuzz harnesses). */
void reactor_adopt(reactor *r);
/* Runs fn(arg) on reactor r's thread, soon (FIFO per reactor). Thread-safe;
 * callable from any thread, including r's own. Returns 0, or -1 when out of
 * memory (fn is then not called). */
int reactor_post(reactor *r, reactor_fn fn, void *arg);
/* Registers a module's hooks (h is kept, not copied) and hands out its slot
 * id: 1..REACTOR_SLOTS-1, or -1 when every slot is taken. Slot 0 is never
 * handed out and stays NULL: a module's id variable starting at 0 reads NULL
 * until the module registers (a module must register before it writes). Call before reactor_start_all, from one thread. */
int reactor_register(const reactor_hooks *h);
/* Runs every registered init hook on r, for a program that drives r itself
 * (the fuzz harnesses). Returns 0, or -1 when a hook failed. */
int reactor_init_modules(reactor *r);
/* Starts n reactors listening on host:port (port 0 picks one, shared by all).
 * Writes the bound port to *bound_port. Returns 0 or a negative uv error. */
int reactor_start_all(int n, const char *host, int port, const char *admin_host,
                      int admin_port, int *bound_port, int *bound_admin_port);
/* Begins graceful shutdown on every reactor: stop accepting (the listeners
 * close), run the modules' stop hooks, then tell the connections to close
 * (WebSockets: 1001) spread evenly over the drain window (SB_DRAIN_MS,
 * capped at SB_SHUTDOWN_MS - 1 s), so that their reconnects reach the other
 * nodes as a wave; the loops stop once every connection is gone, or at
 * SB_SHUTDOWN_MS, when what is left is closed at once. Thread-safe. */
void reactor_shutdown_all(void);
/* Sets fn to run once (on reactor 0's thread) when every reactor's
 * connections are gone during shutdown, or at the deadline: the Redis bus's
 * goodbye, so that it keeps carrying messages to the clients still
 * connected while they are drained. Reactor 0's loop runs a few more steps
 * after it. Call before reactor_start_all. */
void reactor_set_drained_hook(void (*fn)(void));
/* The drain window in effect: SB_DRAIN_MS capped at SB_SHUTDOWN_MS - 1 s
 * (0 when SB_SHUTDOWN_MS is 1 s or less: everything at once). */
uint64_t reactor_drain_ms(void);
/* Waits for every reactor thread to exit. */
void reactor_join_all(void);

#endif
