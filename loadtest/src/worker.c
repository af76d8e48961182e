/* worker.c — one worker process: its libuv loop, the command channel from
 * the parent, periodic status reports and the orderly stop. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ipc.h"
#include "sbload.h"

worker *g_w;

#define TICK_MS 250

int worker_send(worker *w, uint32_t type, const void *body, size_t len)
{
    ipc_hdr h = {type, (uint32_t)len};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)body, len}};
    size_t total = sizeof h + len, done = 0;
    while (done < total) {
        /* writev from where we are */
        struct iovec v[2];
        int nv = 0;
        size_t skip = done;
        for (int i = 0; i < 2; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            v[nv].iov_base = (char *)iov[i].iov_base + skip;
            v[nv].iov_len = iov[i].iov_len - skip;
            skip = 0;
            nv++;
        }
        ssize_t r = writev(w->ctl_fd, v, nv);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {w->ctl_fd, POLLOUT, 0};
                poll(&pf, 1, 1000);
                continue;
            }
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

static void fill_status(worker *w, ipc_status *st)
{
    memcpy(st->ctr, w->ctr, sizeof st->ctr);
    st->tm = w->tm;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) st->tm.worker_rss_kb = (uint64_t)ru.ru_maxrss;
}

void worker_check_ready(worker *w)
{
    if (w->phase != PH_CONNECT) return;
    if (w->next_new < w->n || w->rq_len || w->inflight) return;
    w->phase = PH_READY;
    ipc_status st;
    fill_status(w, &st);
    worker_send(w, M_READY, &st, sizeof st);
}

static void worker_stop(worker *w)
{
    if (w->phase == PH_STOP) return;
    ipc_final *fin = calloc(1, sizeof *fin);
    fill_status(w, &fin->st); /* joined_now as held, before closing */
    w->phase = PH_STOP;
    if (g_scen->w_stop) g_scen->w_stop(w);
    memcpy(fin->st.ctr, w->ctr, sizeof fin->st.ctr);
    memcpy(fin->h, w->h, sizeof fin->h);
    memcpy(fin->jps, w->jps, sizeof fin->jps);
    /* the report first: closing 19,000 sockets while 50 other workers and
     * the servers do the same can outlast the parent's 15 s stop deadline */
    worker_send(w, M_FINAL, fin, sizeof *fin);
    free(fin);
    net_stop_all(w);
    /* The kernel closes the sockets; nothing else to release. */
    _exit(0);
}

static void on_ctl(uv_poll_t *h, int status, int events)
{
    worker *w = h->data;
    (void)events;
    if (status < 0) {
        worker_stop(w);
        return;
    }
    char cmd[64];
    ssize_t r = read(w->ctl_fd, cmd, sizeof cmd);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) { /* parent gone */
        worker_stop(w);
        return;
    }
    for (ssize_t i = 0; i < r; i++) {
        if (cmd[i] == CMD_GO && w->phase < PH_RUN) {
            w->phase = PH_RUN;
            w->joined_at_go = (uint32_t)w->tm.joined_now;
            if (g_scen->w_go) g_scen->w_go(w);
        } else if (cmd[i] == CMD_STOP) {
            worker_stop(w);
            return;
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    worker *w = t->data;
    uint64_t now = now_ns();
    net_tick(w, now);
    if (g_scen->w_tick) g_scen->w_tick(w, now);
    if (now - w->last_status >= 240000000ull) { /* ~every tick */
        w->last_status = now;
        ipc_status st;
        fill_status(w, &st);
        worker_send(w, M_STATUS, &st, sizeof st);
    }
    /* Safety net if the parent cannot stop us: duration + 30 s. */
    if (now - w->t0 > (uint64_t)((g_opt.duration + 30) * 1e9)) worker_stop(w);
}

int worker_main(int id, int nprocs, int ctl_fd, uint64_t t0)
{
    signal(SIGINT, SIG_IGN); /* the parent coordinates the stop */
    signal(SIGPIPE, SIG_IGN);
    worker *w = calloc(1, sizeof *w);
    if (!w) return 1;
    g_w = w;
    w->loop = uv_default_loop();
    w->id = id;
    w->nprocs = nprocs;
    w->total = g_opt.conns;
    w->lo = (uint32_t)((uint64_t)g_opt.conns * (uint64_t)id / (uint64_t)nprocs);
    w->hi = (uint32_t)((uint64_t)g_opt.conns * (uint64_t)(id + 1) / (uint64_t)nprocs);
    w->n = w->hi - w->lo;
    w->ctl_fd = ctl_fd;
    w->t0 = t0;
    w->start_ns = now_ns();
    w->rng = (w->start_ns ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull) | 1;
    for (int i = 0; i < H__N; i++) hist_init(&w->h[i]);
    if (net_worker_init(w) < 0) {
        const char *m = "out of memory";
        worker_send(w, M_LOG, m, strlen(m));
        return 1;
    }
    if (g_scen->w_init) g_scen->w_init(w);
    w->ctl_poll.data = w;
    uv_poll_init(w->loop, &w->ctl_poll, ctl_fd);
    uv_poll_start(&w->ctl_poll, UV_READABLE, on_ctl);
    uv_timer_init(w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    net_start(w);
    worker_check_ready(w);
    uv_run(w->loop, UV_RUN_DEFAULT);
    worker_stop(w);
    return 0;
}
