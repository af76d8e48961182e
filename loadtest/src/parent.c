/* parent.c — forks the workers, follows their progress, runs the
 * scenario's phase changes, reads the server's RSS and prints the result. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.h"
#include "report.h"
#include "sbload.h"

typedef struct pworker {
    pid_t pid;
    int fd;
    char *buf;
    size_t len, cap;
    int ready, final, eof, reaped;
    ipc_status last;
    ipc_final *fin;
} pworker;

static volatile sig_atomic_t g_sig;
static void on_signal(int s) { g_sig = s; }

uint64_t server_rss_kb(void)
{
    uint64_t sum = 0;
    for (int i = 0; i < g_opt.nserver_pids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)g_opt.server_pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) return 0;
        while (fgets(line, sizeof line, f)) {
            unsigned long long kb;
            if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
                sum += kb;
                break;
            }
        }
        fclose(f);
    }
    return sum;
}

void parent_send_all(parent *p, char cmd)
{
    for (int i = 0; i < p->nprocs; i++) {
        pworker *pw = &p->pw[i];
        if (pw->eof || pw->final) continue;
        ssize_t r;
        do r = write(pw->fd, &cmd, 1);
        while (r < 0 && errno == EINTR);
    }
}

void parent_request_stop(parent *p) { p->stop_requested = 1; }

static void sample_rss(parent *p, uint64_t now)
{
    if (!g_opt.nserver_pids) return;
    if (p->t_last_rss && (double)(now - p->t_last_rss) < p->rss_sample_every * 1e9) return;
    p->t_last_rss = now;
    uint64_t kb = server_rss_kb();
    if (!kb) return;
    if (kb > p->rss_max) p->rss_max = kb;
    if (p->phase != PH_RUN) return;
    if (p->nrss == sizeof p->rss_samples / sizeof p->rss_samples[0]) {
        for (uint32_t i = 0; i < p->nrss / 2; i++) p->rss_samples[i] = p->rss_samples[2 * i];
        p->nrss /= 2;
        p->rss_sample_every *= 2;
    }
    p->rss_samples[p->nrss++] = kb;
}

static void sum_status(parent *p, uint64_t *ctr, sbl_times *tm)
{
    memset(ctr, 0, sizeof(uint64_t) * CTR__N);
    memset(tm, 0, sizeof *tm);
    for (int i = 0; i < p->nprocs; i++) {
        const ipc_status *st = p->pw[i].fin ? &p->pw[i].fin->st : &p->pw[i].last;
        for (int k = 0; k < CTR__N; k++) ctr[k] += st->ctr[k];
        times_merge(tm, &st->tm);
    }
}

static void handle_msg(parent *p, int wid, uint32_t type, const char *body, size_t len)
{
    pworker *pw = &p->pw[wid];
    switch (type) {
    case M_STATUS:
    case M_READY:
        if (len == sizeof(ipc_status)) memcpy(&pw->last, body, len);
        if (type == M_READY) pw->ready = 1;
        break;
    case M_FINAL:
        if (len == sizeof(ipc_final)) {
            pw->fin = malloc(sizeof *pw->fin);
            if (pw->fin) memcpy(pw->fin, body, len);
        }
        pw->final = 1;
        break;
    case M_LOG:
        if (!g_opt.quiet) fprintf(stderr, "[worker %d] %.*s\n", wid, (int)len, body);
        break;
    default:
        if (g_scen->p_msg) g_scen->p_msg(p, wid, type, body, len);
        break;
    }
}

static void read_worker(parent *p, int wid)
{
    pworker *pw = &p->pw[wid];
    for (;;) {
        if (pw->cap - pw->len < 65536) {
            size_t nc = pw->cap ? pw->cap * 2 : 262144;
            char *nb = realloc(pw->buf, nc);
            if (!nb) {
                pw->eof = 1;
                return;
            }
            pw->buf = nb;
            pw->cap = nc;
        }
        ssize_t r = read(pw->fd, pw->buf + pw->len, pw->cap - pw->len);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            pw->eof = 1;
            break;
        }
        if (r == 0) {
            pw->eof = 1;
            break;
        }
        pw->len += (size_t)r;
    }
    size_t off = 0;
    while (pw->len - off >= sizeof(ipc_hdr)) {
        ipc_hdr h;
        memcpy(&h, pw->buf + off, sizeof h);
        if (pw->len - off - sizeof h < h.len) break;
        handle_msg(p, wid, h.type, pw->buf + off + sizeof h, h.len);
        off += sizeof h + h.len;
    }
    memmove(pw->buf, pw->buf + off, pw->len - off);
    pw->len -= off;
    if (pw->cap > (4u << 20) && pw->len < pw->cap / 8) { /* shrink after a FINAL */
        char *nb = realloc(pw->buf, pw->cap / 4);
        if (nb) {
            pw->buf = nb;
            pw->cap /= 4;
        }
    }
}

static void progress(parent *p, uint64_t now, uint64_t *prev_joined, uint64_t *prev_deliv,
                     uint64_t *prev_acks, uint64_t *prev_t)
{
    uint64_t ctr[CTR__N];
    sbl_times tm;
    sum_status(p, ctr, &tm);
    double dt = (double)(now - *prev_t) / 1e9;
    if (dt <= 0) return;
    double jr = (double)(ctr[CTR_joined] - *prev_joined) / dt;
    uint64_t errs = report_errors_total(ctr);
    if (g_opt.progress > 0 && !g_opt.quiet) {
        fprintf(stderr,
                "[%6.1fs] %-7s joined %llu/%u (+%.0f/s) errors %llu", (double)(now - p->t0) / 1e9,
                p->phase == PH_CONNECT ? "connect" : p->phase == PH_RUN ? "run" : "stop",
                (unsigned long long)tm.joined_now, g_opt.conns, jr, (unsigned long long)errs);
        if (ctr[CTR_deliveries])
            fprintf(stderr, " deliveries %.0f/s",
                    (double)(ctr[CTR_deliveries] - *prev_deliv) / dt);
        if (ctr[CTR_acks]) fprintf(stderr, " acks %.0f/s", (double)(ctr[CTR_acks] - *prev_acks) / dt);
        uint64_t kb = g_opt.nserver_pids ? server_rss_kb() : 0;
        if (kb) fprintf(stderr, " server RSS %.1f MiB", (double)kb / 1024);
        fputc('\n', stderr);
    }
    *prev_joined = ctr[CTR_joined];
    *prev_deliv = ctr[CTR_deliveries];
    *prev_acks = ctr[CTR_acks];
    *prev_t = now;
}

int parent_main(void)
{
    parent P;
    memset(&P, 0, sizeof P);
    parent *p = &P;
    p->nprocs = g_opt.procs;
    p->pw = calloc((size_t)p->nprocs, sizeof *p->pw);
    /* about 200 samples over the run, every 0.25 .. 5 s */
    p->rss_sample_every = g_opt.run / 200 < 0.25 ? 0.25 : g_opt.run / 200 > 5 ? 5 : g_opt.run / 200;
    for (int i = 0; i < H__N; i++) hist_init(&p->h[i]);
    p->rss_baseline = server_rss_kb();
    if (g_opt.nserver_pids && !p->rss_baseline)
        fprintf(stderr, "sbload: cannot read VmRSS of the --server-pid process(es)\n");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    fflush(stdout);
    fflush(stderr);
    p->t0 = now_ns();
    for (int i = 0; i < p->nprocs; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            perror("socketpair");
            return 2;
        }
        int sz = 4 << 20;
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            for (int j = 0; j < i; j++) close(p->pw[j].fd);
            close(sv[0]);
            int rc = worker_main(i, p->nprocs, sv[1], p->t0);
            _exit(rc);
        }
        close(sv[1]);
        p->pw[i].pid = pid;
        p->pw[i].fd = sv[0];
        fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    }
    if (g_scen->p_init) g_scen->p_init(p);

    struct pollfd *pfd = calloc((size_t)p->nprocs, sizeof *pfd);
    uint64_t prev_joined = 0, prev_deliv = 0, prev_acks = 0, prev_t = p->t0, next_prog = p->t0;
    uint64_t stop_deadline = 0;
    for (;;) {
        int n = 0;
        for (int i = 0; i < p->nprocs; i++) {
            pfd[i].fd = p->pw[i].eof ? -1 : p->pw[i].fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
            n++;
        }
        int r = poll(pfd, (nfds_t)n, 50);
        if (r < 0 && errno != EINTR) break;
        for (int i = 0; i < p->nprocs; i++)
            if (pfd[i].revents) read_worker(p, i);
        uint64_t now = now_ns();
        if (g_sig && !p->stop_requested) {
            p->interrupted = 1;
            p->stop_requested = 1;
            fprintf(stderr, "sbload: interrupted, stopping\n");
        }
        if (!p->stop_requested && (double)(now - p->t0) > g_opt.duration * 1e9) {
            p->timed_out = 1;
            p->stop_requested = 1;
            fprintf(stderr, "sbload: --duration %.0fs reached, stopping\n", g_opt.duration);
        }
        sample_rss(p, now);
        if (g_opt.nserver_pids && p->phase != PH_STOP && !p->stop_requested &&
            p->ncurve < sizeof p->curve / sizeof p->curve[0] &&
            now - p->t_last_curve >= 250000000ull) {
            uint64_t ctr[CTR__N];
            sbl_times tm;
            sum_status(p, ctr, &tm);
            uint64_t kb = server_rss_kb();
            p->t_last_curve = now;
            if (kb) {
                p->curve[p->ncurve][0] = tm.joined_now;
                p->curve[p->ncurve][1] = kb;
                p->ncurve++;
            }
        }
        if (now >= next_prog) {
            progress(p, now, &prev_joined, &prev_deliv, &prev_acks, &prev_t);
            next_prog = now + (uint64_t)((g_opt.progress > 0 ? g_opt.progress : 1) * 1e9);
        }
        int all_ready = 1, all_done = 1;
        for (int i = 0; i < p->nprocs; i++) {
            if (!p->pw[i].ready && !p->pw[i].eof && !p->pw[i].final) all_ready = 0;
            if (!p->pw[i].final && !p->pw[i].eof) all_done = 0;
        }
        if (p->phase == PH_CONNECT && all_ready && !p->stop_requested) {
            p->phase = PH_RUN;
            p->t_ready = now;
            uint64_t ctr[CTR__N];
            sbl_times tm;
            sum_status(p, ctr, &tm);
            p->ready_joined = tm.joined_now;
            p->tm = tm;
            p->tm_ready = tm;
            p->rss_ready = server_rss_kb();
            if (g_scen->p_ready)
                g_scen->p_ready(p);
            else
                scen_common_ready(p);
            now = now_ns();
        }
        if (p->phase == PH_RUN && !p->stop_requested) {
            if (g_scen->p_tick)
                g_scen->p_tick(p, now);
            else
                scen_common_tick(p, now);
        }
        if (p->stop_requested && p->phase != PH_STOP) {
            p->rss_end = server_rss_kb();
            if (p->rss_end > p->rss_max) p->rss_max = p->rss_end;
            p->phase = PH_STOP;
            p->t_stop = now;
            parent_send_all(p, CMD_STOP);
            stop_deadline = now + 15000000000ull;
        }
        if (all_done) break;
        if (p->phase == PH_STOP && now > stop_deadline) {
            for (int i = 0; i < p->nprocs; i++)
                if (!p->pw[i].final && !p->pw[i].eof) {
                    fprintf(stderr, "sbload: worker %d did not report, killing it\n", i);
                    kill(p->pw[i].pid, SIGKILL);
                    p->pw[i].eof = 1;
                }
            break;
        }
    }
    uint64_t t_end = now_ns();
    for (int i = 0; i < p->nprocs; i++) {
        int st;
        waitpid(p->pw[i].pid, &st, 0);
        if (!p->pw[i].final)
            fprintf(stderr, "sbload: worker %d exited without a final report\n", i);
    }
    /* Aggregate. */
    sum_status(p, p->sum_ctr, &p->tm);
    for (int i = 0; i < p->nprocs; i++)
        if (p->pw[i].fin)
            for (int k = 0; k < H__N; k++) hist_merge(&p->h[k], &p->pw[i].fin->h[k]);
    for (int i = 0; i < p->nprocs; i++)
        if (p->pw[i].fin)
            for (int k = 0; k < SBL_SECS; k++) p->jps[k] += p->pw[i].fin->jps[k];
    /* Peak: the best whole second of the connect phase (its average if shorter). */
    if (p->tm_ready.last_join > p->t0) {
        uint64_t whole = (p->tm_ready.last_join - p->t0) / 1000000000ull;
        p->peak_join_rate = 0;
        for (uint64_t k = 0; k < whole && k < SBL_SECS; k++)
            if ((double)p->jps[k] > p->peak_join_rate) p->peak_join_rate = (double)p->jps[k];
        if (whole == 0)
            p->peak_join_rate = (double)p->ready_joined * 1e9 / (double)(p->tm_ready.last_join - p->t0);
    }
    if (g_scen->p_finish) g_scen->p_finish(p);

    json_t *res = json_object();
    report_common(p, res, t_end);
    if (g_scen->p_result) g_scen->p_result(p, res);
    char *js = json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    printf("RESULT %s\n", js ? js : "{}");
    fflush(stdout);
    free(js);
    json_decref(res);
    int bad = p->ready_joined == 0 && g_opt.conns > 0;
    return bad ? 1 : 0;
}
