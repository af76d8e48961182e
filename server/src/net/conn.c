/* conn.c — TCP connections: accept, read, bounded coalescing writes, close. */
#include "net/conn.h"
#include "base/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/config.h"
#include "base/log.h"
#include "net/tls.h"

#define READ_BUF_SIZE 65536
#define MAX_IOV 64
#define DRAIN_MS 2000         /* after our FIN: how long we wait for the peer's */
#define FLUSH_LINGER_MS 10000 /* closing: how long a peer that does not read may hold its last frames */

static _Thread_local char t_readbuf[READ_BUF_SIZE];
/* A descriptor held in reserve: when accept fails with EMFILE we release it,
 * accept the connection, close it, and take the reserve back, so the
 * listener never spins on a connection it cannot take. */
static int g_spare_fd = -1;
static pthread_mutex_t g_spare_mu = PTHREAD_MUTEX_INITIALIZER;
/* Connections closed since start (all reactors), for trim_after_closes. */
static atomic_uint_fast64_t g_closed;
/* What an accepted connection starts with (set once by main.c). */
static conn_open_fn g_open;

void conn_set_opener(conn_open_fn open) { g_open = open; }


/* metrics (docs/operations.md) */
static metrics_id m_accepted, m_open, m_admin_accepted, m_qbytes;
__attribute__((constructor)) static void conn_metrics(void)
{
    m_accepted = metrics_counter("sb_connections_accepted_total", "TCP connections accepted on the public port.", NULL);
    m_admin_accepted = metrics_counter("sb_admin_connections_accepted_total", "TCP connections accepted on the admin port.", NULL);
    m_open = metrics_gauge("sb_connections_open", "TCP connections open (public and admin ports).", NULL);
    m_qbytes = metrics_gauge("sb_outbound_queue_bytes", "Bytes queued for sending on every connection, not yet written.", NULL);
}

static void on_close(uv_handle_t *h);
static void flush(sb_conn *c);
static void mark_dirty(sb_conn *c);

static void list_add(reactor *r, sb_conn *c)
{
    c->prev = NULL;
    c->next = r->conns;
    if (c->next) c->next->prev = c;
    r->conns = c;
    r->nconns++;
    metrics_gauge_add(m_open, 1);
}

static void list_del(reactor *r, sb_conn *c)
{
    if (r->drain_next == c) r->drain_next = c->next;
    if (c->prev) c->prev->next = c->next;
    else r->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    r->nconns--;
    metrics_gauge_add(m_open, -1);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = t_readbuf;
    buf->len = READ_BUF_SIZE;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    sb_conn *c = s->data;
    if (n == 0) return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->last_rx_ms = c->r->now_ms = uv_now(&c->r->loop);
    if (c->closing) return;
    if (c->tls) { /* ciphertext: tls.c decrypts and hands the plaintext on */
        tls_on_read(c, buf->base, (size_t)n);
        return;
    }
    if (!c->draining) c->h->on_data(c, buf->base, (size_t)n); /* draining: discard until the peer's FIN */
}

static void shed(uv_stream_t *server)
{
    /* Out of descriptors: use the spare to accept and close at once. */
    pthread_mutex_lock(&g_spare_mu);
    if (g_spare_fd >= 0) {
        close(g_spare_fd);
        int fd = accept(((uv_tcp_t *)server)->io_watcher.fd, NULL, NULL);
        if (fd >= 0) close(fd);
        g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    pthread_mutex_unlock(&g_spare_mu);
}

void conn_accept(reactor *r, uv_stream_t *server, bool admin)
{
    if (r->stopping) return;
    sb_conn *c = calloc(1, sizeof *c);
    if (!c) {
        shed(server);
        return;
    }
    uv_tcp_init(&r->loop, &c->tcp);
    c->tcp.data = c;
    c->r = r;
    c->admin = admin;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc != 0) {
        if (rc == UV_EMFILE || rc == UV_ENFILE) {
            shed(server);
            log_msg(LOG_WARN, "accept_shed", "error", json_string(uv_strerror(rc)), NULL);
        }
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    metrics_inc(admin ? m_admin_accepted : m_accepted);
    c->last_rx_ms = c->mark_ms = uv_now(&r->loop);
    list_add(r, c);
    if (!g_open || g_open(c) != 0 || (!admin && tls_enabled() && tls_conn_start(c) != 0)) {
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

void conn_pause_read(sb_conn *c)
{
    if (!c->read_paused && !c->closing) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->read_paused = true;
    }
}

void conn_resume_read(sb_conn *c)
{
    if (c->read_paused && !c->closing) {
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
        c->read_paused = false;
    }
}

void conn_mark_dirty(sb_conn *c) { mark_dirty(c); }

static void mark_dirty(sb_conn *c)
{
    if (c->dirty || c->closing) return;
    c->dirty = true;
    c->dirty_next = c->r->dirty;
    c->r->dirty = c;
}

int conn_send(sb_conn *c, sb_buf *b, size_t cap)
{
    if (c->closing) return 0;
    if (cap && (size_t)c->qbytes + b->len > cap) return -1;
    if ((size_t)c->qbytes + b->len > UINT32_MAX) return -1;
    if (c->qcap == 0) { /* the first frame goes to the inline slot */
        c->q = &c->q1;
        c->qcap = 1;
        c->qhead = 0;
    }
    if (c->qlen == c->qcap) {
        uint32_t ncap = c->qcap < 4 ? 4 : c->qcap * 2;
        sb_buf **nq = malloc(ncap * sizeof *nq);
        if (!nq) return -1;
        for (uint32_t i = 0; i < c->qlen; i++) nq[i] = c->q[(c->qhead + i) % c->qcap];
        if (c->q != &c->q1) free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = sb_buf_ref(b);
    c->qlen++;
    c->qbytes += b->len;
    metrics_gauge_add(m_qbytes, (int64_t)b->len);
    mark_dirty(c);
    return 0;
}

void conn_on_drain(sb_conn *c, size_t below, void (*fn)(sb_conn *c, void *arg), void *arg)
{
    c->on_drain = fn;
    c->drain_arg = arg;
    c->drain_below = below > UINT32_MAX ? UINT32_MAX : (uint32_t)below;
    if (fn) mark_dirty(c); /* the next flush calls it if already drained */
}

/* Calls the drain callback once the queue is low enough (after writes). */
static void maybe_drained(sb_conn *c)
{
    if (!c->on_drain || c->closing || c->qbytes > c->drain_below) return;
    void (*fn)(sb_conn *, void *) = c->on_drain;
    c->on_drain = NULL;
    fn(c, c->drain_arg);
}

/* Drops `bytes` written bytes from the head of the queue. */
static void consume(sb_conn *c, size_t bytes)
{
    c->qbytes -= bytes;
    metrics_gauge_add(m_qbytes, -(int64_t)bytes);
    while (bytes > 0 && c->qlen > 0) {
        sb_buf *b = c->q[c->qhead];
        size_t left = b->len - c->qoff;
        if (bytes < left) {
            c->qoff += (uint32_t)bytes;
            return;
        }
        bytes -= left;
        sb_buf_unref(b);
        c->qoff = 0;
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        if (c->inflight) c->inflight--;
    }
    if (c->qlen == 0 && c->qcap > 16) { /* give back a ring grown by a burst */
        free(c->q);
        c->q = NULL;
        c->qcap = c->qhead = 0;
    }
}

static void after_shutdown(uv_shutdown_t *req, int status)
{
    sb_conn *c = req->data;
    free(req);
    if (status < 0 || c->closing) {
        if (!c->closing) conn_close(c);
        return;
    }
    /* wait for the peer's FIN (read_cb closes on EOF) or the drain timeout */
    c->draining = true;
    c->mark_ms = uv_now(&c->r->loop);
    conn_resume_read(c);
}

static void start_close_after_flush(sb_conn *c)
{
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || c->closing) {
        free(req);
        conn_close(c);
        return;
    }
    req->data = c;
    c->close_after_flush = false;
    if (c->tls) tls_close_notify(c);
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, after_shutdown) != 0) {
        free(req);
        conn_close(c);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    sb_conn *c = req->data;
    free(req);
    c->wreq = NULL;
    if (status < 0) {
        /* the handle is closing or the peer went away */
        uint32_t n = c->inflight;
        c->inflight = 0;
        while (n-- && c->qlen) {
            c->qbytes -= c->q[c->qhead]->len - c->qoff;
            metrics_gauge_add(m_qbytes, -(int64_t)(c->q[c->qhead]->len - c->qoff));
            sb_buf_unref(c->q[c->qhead]);
            c->qoff = 0;
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qlen--;
        }
        if (!c->closing) conn_close(c);
        return;
    }
    /* everything owned by the write has been written */
    size_t done = 0;
    for (uint32_t i = 0; i < c->inflight; i++) {
        sb_buf *b = c->q[(c->qhead + i) % c->qcap];
        done += b->len - (i == 0 ? c->qoff : 0);
    }
    c->inflight = 0;
    consume(c, done);
    if (c->closing) return;
    maybe_drained(c); /* may queue more */
    if (c->closing) return;
    if (c->qlen) flush(c);
    else if (c->close_after_flush) start_close_after_flush(c);
}

static void flush(sb_conn *c)
{
    if (c->wreq || c->closing) return;
    while (c->qlen) {
        uv_buf_t iov[MAX_IOV];
        uint32_t n = c->qlen < MAX_IOV ? c->qlen : MAX_IOV;
        size_t total = 0;
        for (uint32_t i = 0; i < n; i++) {
            sb_buf *b = c->q[(c->qhead + i) % c->qcap];
            uint32_t off = i == 0 ? c->qoff : 0;
            iov[i] = uv_buf_init((char *)sb_buf_bytes(b) + off, b->len - off);
            total += b->len - off;
        }
        int w = c->tls ? tls_try_write(c, iov, n) : uv_try_write((uv_stream_t *)&c->tcp, iov, n);
        if (w == (int)total) {
            consume(c, total);
            continue;
        }
        if (w < 0 && w != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        if (w > 0) consume(c, (size_t)w);
        if (c->tls) return; /* tls.c marks c dirty once its ciphertext drains */
        /* the socket is full: hand the rest of this batch to uv_write */
        n = c->qlen < MAX_IOV ? c->qlen : MAX_IOV;
        for (uint32_t i = 0; i < n; i++) {
            sb_buf *b = c->q[(c->qhead + i) % c->qcap];
            uint32_t off = i == 0 ? c->qoff : 0;
            iov[i] = uv_buf_init((char *)sb_buf_bytes(b) + off, b->len - off);
        }
        c->wreq = malloc(sizeof *c->wreq);
        if (!c->wreq) {
            conn_close(c);
            return;
        }
        c->wreq->data = c;
        c->inflight = n;
        if (uv_write(c->wreq, (uv_stream_t *)&c->tcp, iov, n, write_cb) != 0) {
            free(c->wreq);
            c->wreq = NULL;
            c->inflight = 0;
            conn_close(c);
        }
        return;
    }
    if (c->close_after_flush) start_close_after_flush(c);
    else if (c->on_drain) maybe_drained(c); /* queues more: flushed on the next pass */
}

void conn_flush_dirty(reactor *r)
{
    sb_conn *c = r->dirty;
    r->dirty = NULL;
    while (c) {
        sb_conn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (!c->closing && !c->draining && c->h->before_flush) c->h->before_flush(c);
        if (!c->closing) flush(c);
        c = next;
    }
}

void conn_drop_unsent(sb_conn *c)
{
    uint32_t keep = c->inflight ? c->inflight : (c->qoff ? 1 : 0);
    /* the pieces of a frame already begun stay with it (else the close
     * frame would land in the middle of a message) */
    while (keep < c->qlen && c->q[(c->qhead + keep) % c->qcap]->cont) keep++;
    while (c->qlen > keep) {
        uint32_t i = (c->qhead + c->qlen - 1) % c->qcap;
        c->qbytes -= c->q[i]->len;
        metrics_gauge_add(m_qbytes, -(int64_t)c->q[i]->len);
        sb_buf_unref(c->q[i]);
        c->qlen--;
    }
}

void conn_close_after_flush(sb_conn *c)
{
    if (c->closing || c->draining) return;
    c->close_after_flush = true;
    c->mark_ms = uv_now(&c->r->loop);
    conn_pause_read(c);
    if (!c->wreq && c->qlen == 0) start_close_after_flush(c);
    else mark_dirty(c);
}

void conn_close(sb_conn *c)
{
    if (c->closing) return;
    c->closing = true;
    if (c->h) c->h->gone(c);
    if (c->tls) tls_conn_gone(c);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_close(uv_handle_t *h)
{
    sb_conn *c = h->data;
    reactor *r = c->r;
    /* unlink from the dirty list if present */
    if (c->dirty) {
        sb_conn **pp = &r->dirty;
        while (*pp && *pp != c) pp = &(*pp)->dirty_next;
        if (*pp) *pp = c->dirty_next;
    }
    list_del(r, c);
    metrics_gauge_add(m_qbytes, -(int64_t)c->qbytes);
    while (c->qlen) {
        sb_buf_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    if (c->q != &c->q1) free(c->q);
    free(c);
    atomic_fetch_add_explicit(&g_closed, 1, memory_order_relaxed);
}

/* Memory back to the system after a disconnect storm or a burst of large
 * transient buffers. glibc keeps freed chunks in its arenas (and the top of
 * each heap only shrinks when the highest chunk is free), so after thousands
 * of sockets close, or a join storm's presence_state frames are written, the
 * process would stay at its high-water mark. Once a second (reactor 0's
 * sweep): when at least TRIM_MIN_CLOSES connections have closed (or
 * TRIM_MIN_BYTES of large buffers were freed, reactor_trim_hint) since the last
 * trim and the last second saw neither (the burst is over), or
 * TRIM_MAX_CLOSES have closed under steady churn, malloc_trim(0) returns the
 * free pages of every arena (a few ms for a heap of 100 MB). */
#define TRIM_MIN_CLOSES 512
#define TRIM_MAX_CLOSES 65536
#define TRIM_MIN_BYTES (4u << 20)

static void trim_after_closes(void)
{
    static uint64_t last_trim, last_seen, last_bytes_trim, last_bytes_seen;
    uint64_t now = atomic_load_explicit(&g_closed, memory_order_relaxed);
    uint64_t bytes = reactor_trim_hinted();
    uint64_t since = now - last_trim, since_bytes = bytes - last_bytes_trim;
    bool quiet = now == last_seen && bytes == last_bytes_seen;
    last_seen = now;
    last_bytes_seen = bytes;
    if (since >= TRIM_MAX_CLOSES ||
        ((since >= TRIM_MIN_CLOSES || since_bytes >= TRIM_MIN_BYTES) && quiet)) {
        last_trim = now;
        last_bytes_trim = bytes;
        malloc_trim(0);
    }
}

void conn_sweep(reactor *r)
{
    uint64_t now = uv_now(&r->loop);
    for (sb_conn *c = r->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing || tls_sweep(c, now)) continue;
        if (c->q && c->q != &c->q1 && c->qlen == 0 && !c->wreq) { /* idle: no ring */
            free(c->q);
            c->q = NULL;
            c->qcap = c->qhead = 0;
        }
        if (c->draining || c->close_after_flush) {
            /* the close frame (e.g. 1013 of a slow consumer, whose queue was
             * already dropped) waits for a stalled reader a little longer */
            uint64_t limit = c->draining ? DRAIN_MS : FLUSH_LINGER_MS;
            if (now - c->mark_ms > limit) conn_close(c);
        } else if (c->h->sweep) {
            c->h->sweep(c, now);
        }
    }
    if (r->id == 0) trim_after_closes();
}

void conn_shutdown_all(reactor *r)
{
    for (sb_conn *c = r->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing || c->draining || c->shut) continue;
        c->shut = true;
        if (c->h->shutdown) c->h->shutdown(c);
    }
}

uint64_t conn_shutdown_next(reactor *r, uint64_t k)
{
    uint64_t n = 0;
    while (n < k && r->drain_next) {
        sb_conn *c = r->drain_next;
        r->drain_next = c->next;
        if (c->closing || c->draining || c->shut) continue;
        c->shut = true;
        if (c->h->shutdown) c->h->shutdown(c);
        n++;
    }
    return n;
}

void conn_peer_ip(sb_conn *c, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    out[0] = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return;
    if (ss.ss_family == AF_INET) uv_ip4_name((struct sockaddr_in *)&ss, out, outlen);
    else if (ss.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&ss, out, outlen);
}

void conn_init_spare(void)
{
    pthread_mutex_lock(&g_spare_mu);
    if (g_spare_fd < 0) g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pthread_mutex_unlock(&g_spare_mu);
}
