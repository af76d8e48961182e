/* reactor.c — reactor threads: one libuv loop, one SO_REUSEPORT listener
 * and one task queue each; graceful shutdown. */
#include "net/reactor.h"

#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "base/config.h"
#include "net/conn.h"
#include "base/log.h"

reactor *reactor_all;
int reactor_count;
static _Thread_local reactor *t_self;
/* registration order; module i owns slot i + 1 (slot 0 stays NULL) */
static const reactor_hooks *g_hooks[REACTOR_SLOTS - 1];
static int g_nhooks;

int reactor_register(const reactor_hooks *h)
{
    if (g_nhooks == REACTOR_SLOTS - 1) return -1;
    g_hooks[g_nhooks++] = h;
    return g_nhooks;
}

int reactor_init_modules(reactor *r)
{
    for (int i = 0; i < g_nhooks; i++)
        if (g_hooks[i]->init && g_hooks[i]->init(r) != 0) return -1;
    return 0;
}

reactor *reactor_self(void) { return t_self; }

void reactor_adopt(reactor *r) { t_self = r; }

static atomic_uint_fast64_t g_trim_hint;
void reactor_trim_hint(size_t bytes)
{
    atomic_fetch_add_explicit(&g_trim_hint, bytes, memory_order_relaxed);
}
uint64_t reactor_trim_hinted(void) { return atomic_load_explicit(&g_trim_hint, memory_order_relaxed); }

int reactor_post(reactor *r, reactor_fn fn, void *arg)
{
    reactor_task *t = malloc(sizeof *t);
    if (!t) return -1;
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&r->tasks_mu);
    if (r->tasks_tail) r->tasks_tail->next = t;
    else r->tasks_head = t;
    r->tasks_tail = t;
    pthread_mutex_unlock(&r->tasks_mu);
    uv_async_send(&r->wake);
    return 0;
}

static void on_wake(uv_async_t *a)
{
    reactor *r = a->data;
    pthread_mutex_lock(&r->tasks_mu);
    reactor_task *t = r->tasks_head;
    r->tasks_head = r->tasks_tail = NULL;
    pthread_mutex_unlock(&r->tasks_mu);
    r->now_ms = uv_now(&r->loop);
    while (t) {
        reactor_task *next = t->next;
        t->fn(t->arg);
        free(t);
        t = next;
    }
}

static void on_flush(uv_handle_t *h) { conn_flush_dirty(h->data); }
static void on_prepare(uv_prepare_t *p) { on_flush((uv_handle_t *)p); }
static void on_check(uv_check_t *c) { on_flush((uv_handle_t *)c); }

static void on_connection(uv_stream_t *server, int status)
{
    reactor *r = server->data;
    if (status < 0) return;
    conn_accept(r, server, (uv_tcp_t *)server == &r->admin_listener);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_tick(uv_timer_t *t)
{
    reactor *r = t->data;
    r->now_ms = uv_now(&r->loop);
    conn_sweep(r);
    for (int i = 0; i < g_nhooks; i++)
        if (g_hooks[i]->tick) g_hooks[i]->tick(r);
}

/* Binds a listening TCP socket with SO_REUSEPORT by hand (libuv 1.44 has
 * no flag for it) and hands it to uv_tcp_open. */
static int listen_on(uv_loop_t *loop, uv_tcp_t *h, const char *host, int port, bool reuseport,
                     int *bound)
{
    struct sockaddr_storage ss;
    int family;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(host, port, a4) == 0) family = AF_INET;
    else if (uv_ip6_addr(host, port, a6) == 0) family = AF_INET6;
    else return UV_EINVAL;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    socklen_t alen = family == AF_INET ? sizeof *a4 : sizeof *a6;
    if (bind(fd, (struct sockaddr *)&ss, alen) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (bound) {
        getsockname(fd, (struct sockaddr *)&ss, &alen);
        *bound = ntohs(family == AF_INET ? a4->sin_port : a6->sin6_port);
    }
    int rc = uv_tcp_init(loop, h);
    if (rc == 0) rc = uv_tcp_open(h, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)h, 4096, on_connection);
    if (rc != 0) close(fd);
    return rc;
}

static void *reactor_main(void *arg)
{
    reactor *r = arg;
    t_self = r;
    for (int i = 0; i < g_nhooks; i++)
        if (g_hooks[i]->start) g_hooks[i]->start(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    for (int i = g_nhooks - 1; i >= 0; i--)
        if (g_hooks[i]->exit) g_hooks[i]->exit(r);
    uv_walk(&r->loop, close_walk, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

int reactor_start_all(int n, const char *host, int port, const char *admin_host,
                      int admin_port, int *bound_port, int *bound_admin_port)
{
    reactor_all = calloc((size_t)n, sizeof *reactor_all);
    if (!reactor_all) return UV_ENOMEM;
    conn_init_spare();
    int rc;
    for (int i = 0; i < n; i++) {
        reactor *r = &reactor_all[i];
        r->id = i;
        uv_loop_init(&r->loop);
        pthread_mutex_init(&r->tasks_mu, NULL);
        uv_async_init(&r->loop, &r->wake, on_wake);
        r->wake.data = r;
        uv_timer_init(&r->loop, &r->tick);
        r->tick.data = r;
        uv_timer_start(&r->tick, on_tick, 1000, 1000);
        uv_prepare_init(&r->loop, &r->flush_prepare);
        r->flush_prepare.data = r;
        uv_prepare_start(&r->flush_prepare, on_prepare);
        uv_check_init(&r->loop, &r->flush_check);
        r->flush_check.data = r;
        uv_check_start(&r->flush_check, on_check);
        if (reactor_init_modules(r) != 0) return UV_ENOMEM;
        rc = listen_on(&r->loop, &r->listener, host, port, true, i == 0 ? &port : NULL);
        if (rc != 0) return rc;
        r->listener.data = r;
        if (i == 0) *bound_port = port;
        if (i == 0 && admin_port >= 0) {
            rc = listen_on(&r->loop, &r->admin_listener, admin_host, admin_port, false,
                           bound_admin_port);
            if (rc != 0) return rc;
            r->admin_listener.data = r;
            r->has_admin = true;
        }
    }
    reactor_count = n;
    for (int i = 0; i < n; i++) pthread_create(&reactor_all[i].thread, NULL, reactor_main, &reactor_all[i]);
    return 0;
}

/* ---- shutdown ---- */

static void (*g_drained_hook)(void);
static atomic_int g_ndrained; /* reactors whose connections are all gone */

void reactor_set_drained_hook(void (*fn)(void)) { g_drained_hook = fn; }

static void drained_task(void *arg)
{
    (void)arg;
    if (g_drained_hook) g_drained_hook();
}

uint64_t reactor_drain_ms(void)
{
    uint64_t cap = g_config.shutdown_ms > 1000 ? g_config.shutdown_ms - 1000 : 0;
    return g_config.drain_ms < cap ? g_config.drain_ms : cap;
}

/* Every DRAIN_STEP_MS during shutdown: tells the connections due by now to
 * close (an even share of the window each step), then stops the loop when
 * none is left or the shutdown deadline passed. */
#define DRAIN_STEP_MS 10
static void stop_when_done(uv_timer_t *t)
{
    reactor *r = t->data;
    uint64_t now = uv_now(&r->loop), elapsed = now - r->stop_ms, drain = reactor_drain_ms();
    if (r->drain_done < r->drain_total) {
        uint64_t due = elapsed >= drain ? r->drain_total : r->drain_total * elapsed / drain;
        if (due > r->drain_done) {
            uint64_t n = conn_shutdown_next(r, due - r->drain_done);
            r->drain_done = n < due - r->drain_done ? r->drain_total : due; /* none left: done */
        }
        if (r->drain_done >= r->drain_total) conn_shutdown_all(r); /* any the walk missed */
    }
    bool deadline = elapsed >= g_config.shutdown_ms;
    if (!r->drained && ((r->nconns == 0 && r->drain_done >= r->drain_total) || deadline)) {
        r->drained = true;
        r->linger = 5; /* reactor 0: a few steps for the hook's work (the bus's goodbye) to go out */
        if (atomic_fetch_add(&g_ndrained, 1) + 1 == reactor_count) reactor_post(&reactor_all[0], drained_task, NULL);
    }
    bool done = r->drained && (r->id != 0 || (atomic_load(&g_ndrained) == reactor_count && r->linger-- <= 0));
    if (done || deadline) {
        if (deadline)
            for (sb_conn *c = r->conns, *next; c; c = next) {
                next = c->next;
                conn_close(c);
            }
        uv_timer_stop(t);
        uv_stop(&r->loop);
    }
}

static void shutdown_task(void *arg)
{
    reactor *r = arg;
    if (r->stopping) return;
    r->stopping = true;
    r->stop_ms = uv_now(&r->loop);
    uv_close((uv_handle_t *)&r->listener, NULL);
    if (r->has_admin) uv_close((uv_handle_t *)&r->admin_listener, NULL);
    for (int i = 0; i < g_nhooks; i++)
        if (g_hooks[i]->stop) g_hooks[i]->stop(r);
    r->drain_next = r->conns;
    r->drain_total = r->nconns;
    r->drain_done = 0;
    if (r->id == 0)
        log_msg(LOG_INFO, "draining", "drain_ms", json_integer((json_int_t)reactor_drain_ms()),
                "connections", json_integer((json_int_t)r->nconns), "reactor", json_integer(r->id), NULL);
    if (reactor_drain_ms() == 0) {
        conn_shutdown_all(r);
        r->drain_done = r->drain_total;
    }
    static _Thread_local uv_timer_t t;
    uv_timer_init(&r->loop, &t);
    t.data = r;
    uv_timer_start(&t, stop_when_done, 0, DRAIN_STEP_MS);
}

void reactor_shutdown_all(void)
{
    for (int i = 0; i < reactor_count; i++) reactor_post(&reactor_all[i], shutdown_task, &reactor_all[i]);
}

void reactor_join_all(void)
{
    for (int i = 0; i < reactor_count; i++) pthread_join(reactor_all[i].thread, NULL);
}
