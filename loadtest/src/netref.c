/* netref.c — `sbload --net-ref connect|write`: what this machine's kernel
 * does on loopback with no server logic at all, the floor under P2 and P3.
 *
 *   connect  connector processes open --conns TCP connections (from the
 *            --sources addresses) to acceptor processes that accept them and
 *            keep them open; with --exchange each connection also carries a
 *            join-shaped exchange (client 300 B, server 130 B, client 100 B,
 *            server 100 B: an HTTP upgrade and a phx_join with their answers).
 *            Prints connections/s and the CPU per connection on each side.
 *   write    one process writes --rounds rounds of one --size-byte frame
 *            (--batch frames per write()) to each of --conns loopback
 *            sockets, another reads them: write()s/s, frames/s, and the time
 *            one round takes, i.e. the least time in which every subscriber
 *            of a broadcast can get it with one write per subscriber.
 *
 * Plain epoll, no libuv: the point is the kernel's cost. Bounded: every
 * process stops after --timeout seconds whatever happens. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NR_MAX_PROCS 8
#define NR_FD_MAX 19000 /* descriptors a process may use here (limit 20,000) */
#define NR_FDS 65536

typedef struct nr_opts {
    const char *mode;
    int conns, procs, exchange, rounds, size, batch;
    double timeout;
    struct sockaddr_in src[256];
    int nsrc;
} nr_opts;

static nr_opts o;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CPU seconds (user + system) this process has used. */
static double self_cpu(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

/* CPU seconds another process has used so far (/proc/PID/stat), -1 if unknown. */
static double proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Parses "A-B" (last octet range) or "A,B,..." into o.src; 0 on success. */
static int parse_sources(const char *s)
{
    char a[64], b[64];
    o.nsrc = 0;
    if (sscanf(s, "%63[0-9.]-%63[0-9.]", a, b) == 2) {
        struct in_addr x, y;
        if (!inet_aton(a, &x) || !inet_aton(b, &y)) return -1;
        for (uint32_t i = ntohl(x.s_addr); i <= ntohl(y.s_addr) && o.nsrc < 256; i++) {
            o.src[o.nsrc].sin_family = AF_INET;
            o.src[o.nsrc++].sin_addr.s_addr = htonl(i);
        }
        return o.nsrc ? 0 : -1;
    }
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", s);
    for (char *t = strtok(tmp, ","); t && o.nsrc < 256; t = strtok(NULL, ",")) {
        o.src[o.nsrc].sin_family = AF_INET;
        if (!inet_aton(t, &o.src[o.nsrc++].sin_addr)) return -1;
    }
    return o.nsrc ? 0 : -1;
}

/* One nonblocking connect from source i % nsrc to dst; the socket or -1. */
static int start_connect(const struct sockaddr_in *dst, int i)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0) return -1;
    int one = 1;
    setsockopt(s, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
    if (o.nsrc) {
        setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(s, (const struct sockaddr *)&o.src[i % o.nsrc], sizeof o.src[0]) != 0) {
            close(s);
            return -1;
        }
    }
    if (connect(s, (const struct sockaddr *)dst, sizeof *dst) != 0 && errno != EINPROGRESS) {
        close(s);
        return -1;
    }
    return s;
}

/* A listening socket on 127.0.0.1 and a port the kernel picks (written to
 * *a); -1 after printing why. */
static int open_listener(struct sockaddr_in *a)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    *a = (struct sockaddr_in){.sin_family = AF_INET};
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof *a;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)a, sizeof *a) || listen(ls, 65535) ||
        getsockname(ls, (struct sockaddr *)a, &al)) {
        perror("net-ref: listen");
        if (ls >= 0) close(ls);
        return -1;
    }
    return ls;
}

static char g_zero[65536];

/* ---- connect ----------------------------------------------------------------------- */

/* Acceptor: accepts until it holds NR_FD_MAX or is killed; in exchange mode
 * answers 130 B after 300 B received and 100 B after 400 B. */
static void acceptor(int ls)
{
    static uint16_t got[NR_FDS];
    int ep = epoll_create1(0), held = 0;
    struct epoll_event e = {.events = EPOLLIN, .data.fd = -1}, ev[512];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
    double end = now_s() + o.timeout;
    char buf[4096];
    while (now_s() < end) {
        int n = epoll_wait(ep, ev, 512, 200);
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd < 0) {
                while (held < NR_FD_MAX) {
                    int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) break;
                    held++;
                    if (c >= NR_FDS) { close(c); continue; }
                    got[c] = 0;
                    if (o.exchange) {
                        struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                    }
                }
                if (held >= NR_FD_MAX) epoll_ctl(ep, EPOLL_CTL_DEL, ls, NULL);
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                continue;
            }
            unsigned before = got[fd];
            got[fd] = (uint16_t)(got[fd] + r);
            if (before < 300 && got[fd] >= 300) (void)!write(fd, g_zero, 130);
            if (before < 400 && got[fd] >= 400) {
                (void)!write(fd, g_zero, 100);
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            }
        }
    }
    _exit(0);
}

/* Connector: opens `count` connections (256 in flight), each finished when
 * connected (or, with exchange, after its second answer). Writes its elapsed
 * seconds, CPU seconds and finished count to `out`. */
static void connector(const struct sockaddr_in *dst, int first, int count, int start_fd, int out)
{
    static uint16_t got[NR_FDS];
    char go;
    if (read(start_fd, &go, 1) != 1) _exit(1);
    int ep = epoll_create1(0), started = 0, done = 0, inflight = 0, failed = 0;
    struct epoll_event ev[512];
    double t0 = now_s(), c0 = self_cpu(), end = t0 + o.timeout;
    char buf[4096];
    while (done + failed < count && now_s() < end) {
        while (inflight < 256 && started < count) {
            int s = start_connect(dst, first + started++);
            if (s < 0 || s >= NR_FDS) {
                if (s >= 0) close(s);
                failed++;
                continue;
            }
            got[s] = 0;
            struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.fd = s};
            epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
            inflight++;
        }
        int n = epoll_wait(ep, ev, 512, 200);
        for (int i = 0; i < n; i++) {
            int s = ev[i].data.fd;
            if (ev[i].events & (EPOLLERR | EPOLLHUP)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
                inflight--, failed++;
                continue;
            }
            if (ev[i].events & EPOLLOUT) {
                if (!o.exchange) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
                    inflight--, done++;
                    continue;
                }
                struct epoll_event e = {.events = EPOLLIN, .data.fd = s};
                epoll_ctl(ep, EPOLL_CTL_MOD, s, &e);
                (void)!write(s, g_zero, 300);
                continue;
            }
            ssize_t r = read(s, buf, sizeof buf);
            if (r <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
                inflight--, failed++;
                continue;
            }
            unsigned before = got[s];
            got[s] = (uint16_t)(got[s] + r);
            if (before < 130 && got[s] >= 130) (void)!write(s, g_zero, 100);
            if (got[s] >= 230) {
                epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
                inflight--, done++;
            }
        }
    }
    double rep[3] = {now_s() - t0, self_cpu() - c0, (double)done};
    (void)!write(out, rep, sizeof rep);
    pause(); /* hold the connections until the parent ends the run */
    _exit(0);
}

static int run_connect(void)
{
    struct sockaddr_in a;
    int ls = open_listener(&a);
    if (ls < 0) return 1;
    fcntl(ls, F_SETFL, O_NONBLOCK);
    pid_t acc[NR_MAX_PROCS], con[NR_MAX_PROCS];
    int start[2], res[2];
    if (pipe(start) || pipe(res)) return 1;
    for (int i = 0; i < o.procs; i++)
        if ((acc[i] = fork()) == 0) acceptor(ls);
    close(ls);
    int per = (o.conns + o.procs - 1) / o.procs;
    for (int i = 0; i < o.procs; i++)
        if ((con[i] = fork()) == 0) {
            int first = i * per, n = first + per > o.conns ? o.conns - first : per;
            connector(&a, first, n, start[0], res[1]);
        }
    usleep(200000);
    double acc0 = 0;
    for (int i = 0; i < o.procs; i++) acc0 += proc_cpu(acc[i]);
    double t0 = now_s();
    for (int i = 0; i < o.procs; i++) (void)!write(start[1], "g", 1);
    double wall = 0, ccpu = 0, done = 0;
    for (int i = 0; i < o.procs; i++) {
        double rep[3];
        if (read(res[0], rep, sizeof rep) != sizeof rep) break;
        if (rep[0] > wall) wall = rep[0];
        ccpu += rep[1];
        done += rep[2];
    }
    double elapsed = now_s() - t0, acc1 = 0;
    for (int i = 0; i < o.procs; i++) acc1 += proc_cpu(acc[i]);
    for (int i = 0; i < o.procs; i++) kill(con[i], SIGKILL), kill(acc[i], SIGKILL);
    while (wait(NULL) > 0) {}
    if (wall <= 0) wall = elapsed;
    double rate = done / wall, cu = done ? ccpu * 1e6 / done : 0, au = done ? (acc1 - acc0) * 1e6 / done : 0;
    printf("net-ref connect%s: %.0f of %d connections in %.3f s = %.0f /s (%d connector + %d acceptor "
           "processes); CPU per connection: connector %.1f us, acceptor %.1f us, total %.1f us\n",
           o.exchange ? " + join-shaped exchange" : "", done, o.conns, wall, rate, o.procs,
           o.procs, cu, au, cu + au);
    printf("RESULT {\"ref\":\"connect\",\"exchange\":%s,\"conns\":%d,\"done\":%.0f,\"seconds\":%.4f,"
           "\"per_s\":%.1f,\"procs\":%d,\"cpu_us_connector\":%.2f,\"cpu_us_acceptor\":%.2f}\n",
           o.exchange ? "true" : "false", o.conns, done, wall, rate, o.procs, cu, au);
    return done == o.conns ? 0 : 1;
}

/* ---- write --------------------------------------------------------------------------- */

static int run_write(void)
{
    if (o.conns > NR_FD_MAX - 16) o.conns = NR_FD_MAX - 16;
    struct sockaddr_in a;
    int ls = open_listener(&a);
    if (ls < 0) return 1;
    int res[2];
    if (pipe(res)) return 1;
    long long expect = (long long)o.conns * o.rounds * o.size * o.batch;
    pid_t reader = fork();
    if (reader == 0) { /* accepts every connection, then reads until all bytes are in */
        int ep = epoll_create1(0), n = 0;
        while (n < o.conns) {
            int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
            if (c < 0) _exit(1);
            struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
            n++;
        }
        (void)!write(res[1], "r", 1);
        long long got = 0;
        struct epoll_event ev[512];
        char buf[65536];
        double end = now_s() + o.timeout, t_first = 0, c0 = self_cpu();
        while (got < expect && now_s() < end) {
            int k = epoll_wait(ep, ev, 512, 200);
            for (int i = 0; i < k; i++) {
                ssize_t r = read(ev[i].data.fd, buf, sizeof buf);
                if (r > 0) {
                    if (!t_first) t_first = now_s();
                    got += r;
                }
            }
        }
        double rep[3] = {now_s(), self_cpu() - c0, (double)got};
        (void)!write(res[1], rep, sizeof rep);
        _exit(0);
    }
    close(ls);
    int *fd = calloc((size_t)o.conns, sizeof *fd);
    for (int i = 0; i < o.conns; i++) {
        fd[i] = start_connect(&a, i);
        if (fd[i] < 0) { fprintf(stderr, "net-ref: connect failed at %d\n", i); return 1; }
    }
    char r;
    if (read(res[0], &r, 1) != 1) return 1;
    for (int i = 0; i < o.conns; i++) { /* connected: blocking writes from here */
        int fl = fcntl(fd[i], F_GETFL);
        fcntl(fd[i], F_SETFL, fl & ~O_NONBLOCK);
    }
    size_t len = (size_t)o.size * (size_t)o.batch;
    if (len > sizeof g_zero) len = sizeof g_zero;
    double t0 = now_s(), c0 = self_cpu();
    long long writes = 0;
    for (int k = 0; k < o.rounds && now_s() < t0 + o.timeout; k++)
        for (int i = 0; i < o.conns; i++)
            if (write(fd[i], g_zero, len) == (ssize_t)len) writes++;
    double wcpu = self_cpu() - c0;
    double rep[3];
    if (read(res[0], rep, sizeof rep) != sizeof rep) return 1;
    waitpid(reader, NULL, 0);
    double secs = rep[0] - t0, wps = (double)writes / secs;
    printf("net-ref write: %lld write()s of %d frame(s) of %d B to %d sockets (%d rounds) in %.3f s = "
           "%.0f writes/s, %.0f frames/s; one round (every socket once) %.1f ms; CPU per write: "
           "writer %.2f us, reader %.2f us%s\n",
           writes, o.batch, o.size, o.conns, o.rounds, secs, wps, wps * o.batch,
           1e3 * o.conns / wps, wcpu * 1e6 / (double)writes, rep[1] * 1e6 / (double)writes,
           (long long)rep[2] == expect ? "" : " (INCOMPLETE)");
    printf("RESULT {\"ref\":\"write\",\"conns\":%d,\"rounds\":%d,\"size\":%d,\"batch\":%d,\"seconds\":%.4f,"
           "\"writes_per_s\":%.1f,\"frames_per_s\":%.1f,\"round_ms\":%.3f,\"complete\":%s}\n",
           o.conns, o.rounds, o.size, o.batch, secs, wps, wps * o.batch, 1e3 * o.conns / wps,
           (long long)rep[2] == expect ? "true" : "false");
    for (int i = 0; i < o.conns; i++) close(fd[i]);
    free(fd);
    return (long long)rep[2] == expect ? 0 : 1;
}

/* Entry of `sbload --net-ref MODE [options]`; argv[0] is "--net-ref". */
int netref_main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"conns", 1, 0, 'n'}, {"procs", 1, 0, 'p'}, {"exchange", 0, 0, 'x'},
        {"rounds", 1, 0, 'r'}, {"size", 1, 0, 's'}, {"batch", 1, 0, 'b'},
        {"sources", 1, 0, 'S'}, {"timeout", 1, 0, 't'}, {0, 0, 0, 0}};
    if (argc < 2) goto usage;
    o = (nr_opts){.mode = argv[1], .conns = 36000, .procs = 2, .rounds = 20, .size = 120,
                  .batch = 1, .timeout = 60};
    parse_sources("127.0.0.2-127.0.0.50");
    optind = 2;
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (c) {
        case 'n': o.conns = atoi(optarg); break;
        case 'p': o.procs = atoi(optarg); break;
        case 'x': o.exchange = 1; break;
        case 'r': o.rounds = atoi(optarg); break;
        case 's': o.size = atoi(optarg); break;
        case 'b': o.batch = atoi(optarg); break;
        case 'S': if (parse_sources(optarg)) goto usage; break;
        case 't': o.timeout = atof(optarg); break;
        default: goto usage;
        }
    }
    if (o.conns < 1 || o.procs < 1 || o.procs > NR_MAX_PROCS || o.rounds < 1 || o.size < 1 ||
        o.batch < 1 || o.timeout <= 0 || o.conns > o.procs * NR_FD_MAX)
        goto usage;
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(o.mode, "connect")) return run_connect();
    if (!strcmp(o.mode, "write")) return run_write();
usage:
    fprintf(stderr,
            "usage: sbload --net-ref connect [--conns N] [--procs P] [--exchange] [--sources A-B]\n"
            "       sbload --net-ref write [--conns N] [--rounds R] [--size B] [--batch K]\n"
            "  (conns <= procs x %d; every process stops after --timeout s, default 60)\n",
            NR_FD_MAX);
    return 2;
}
