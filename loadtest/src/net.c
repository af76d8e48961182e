/* net.c — the connection engine of a worker: pacing connects, binding to
 * source addresses, the WebSocket upgrade, the phx_join, reading frames
 * through one shared buffer, heartbeats, timeouts and the error policy.
 *
 * Error policy: a transport failure before the join (connect error,
 * timeout, reset, bad handshake) is retried up to --retries times; resource
 * errors (EMFILE, EADDRNOTAVAIL, ENOBUFS...) also pause all new connects
 * with an exponential backoff (10 ms .. 1 s) so a worker never spins on
 * them. A refused join, an HTTP status other than 101, or a drop after the
 * join is counted and not retried.
 *
 * wss:// (TLS): each connection gets an SSL object between two memory BIOs
 * (ctls): ciphertext read from the socket is fed to it, the plaintext that
 * comes out takes the ws:// path unchanged, and plaintext written is
 * encrypted into the write BIO and sent with the same raw write. The
 * upgrade request goes out once the TLS handshake is done. With
 * --tls-resume each worker offers the last session (ticket) it received. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "ipc.h"
#include "sbload.h"
#include "token.h"
#include "ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RSHARED_CAP (256 * 1024)
#define SCRATCH_CAP (1024 * 1024 + 64)
#define HANDSHAKE_MAX 16384

extern char g_query_prefix[]; /* "/socket/websocket?" or ".../websocket?x=1&" */

static void on_close(uv_handle_t *h);
static void on_pacer(uv_timer_t *t) { net_pump(t->data); }
static void conn_drop(conn *c, int ctr, bool may_retry);

/* ---- small helpers -------------------------------------------------------- */

static inline worker *W(void) { return g_w; }

/* ---- TLS (wss://) ------------------------------------------------------------ */

typedef struct ctls {
    SSL *ssl;
    BIO *rbio, *wbio; /* ciphertext in / out, owned by ssl */
    bool done;        /* handshake finished */
} ctls;

#define TPLAIN_CAP 16384
static SSL_CTX *g_tls_ctx;
static SSL_SESSION *g_last_sess; /* --tls-resume: the newest session this worker got */
static char g_tplain[TPLAIN_CAP];

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    if (!SSL_SESSION_is_resumable(sess)) return 0;
    if (g_last_sess) SSL_SESSION_free(g_last_sess);
    g_last_sess = sess; /* returning 1 keeps the reference OpenSSL handed us */
    return 1;
}

int net_tls_init(void)
{
    if (!g_opt.tls) return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* 20,000 idle client sockets: no record buffers held while idle */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) goto fail;
    if (g_opt.tls_ciphersuites && SSL_CTX_set_ciphersuites(ctx, g_opt.tls_ciphersuites) != 1) {
        fprintf(stderr, "sbload: --tls-ciphersuites '%s' rejected\n", g_opt.tls_ciphersuites);
        goto fail;
    }
    if (g_opt.tls_groups && SSL_CTX_set1_groups_list(ctx, g_opt.tls_groups) != 1) {
        fprintf(stderr, "sbload: --tls-groups '%s' rejected\n", g_opt.tls_groups);
        goto fail;
    }
    if (g_opt.tls_insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = g_opt.tls_ca ? SSL_CTX_load_verify_locations(ctx, g_opt.tls_ca, NULL)
                              : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            fprintf(stderr, "sbload: cannot load the trust anchors %s\n",
                    g_opt.tls_ca ? g_opt.tls_ca : "(system default)");
            goto fail;
        }
    }
    if (g_opt.tls_resume) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    }
    g_tls_ctx = ctx;
    return 0;
fail:
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    if (!ctx) fprintf(stderr, "sbload: cannot create the TLS context\n");
    return -1;
}

static void tls_free(conn *c)
{
    if (!c->tls) return;
    SSL_free(c->tls->ssl); /* frees both BIOs */
    free(c->tls);
    c->tls = NULL;
}

/* A new client SSL for c (server name / address checked unless --tls-insecure). */
static int tls_start(conn *c)
{
    ctls *t = calloc(1, sizeof *t);
    if (!t) return -1;
    t->ssl = SSL_new(g_tls_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return -1;
    }
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    struct in_addr a;
    bool ip = inet_pton(AF_INET, g_opt.host, &a) == 1;
    if (!ip) SSL_set_tlsext_host_name(t->ssl, g_opt.host);
    if (!g_opt.tls_insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        if (ip) X509_VERIFY_PARAM_set1_ip_asc(vp, g_opt.host);
        else SSL_set1_host(t->ssl, g_opt.host);
    }
    if (g_opt.tls_resume && g_last_sess) SSL_set_session(t->ssl, g_last_sess);
    SSL_set_connect_state(t->ssl);
    c->tls = t;
    return 0;
}

static void inflight_set(conn *c, bool on)
{
    bool cur = (c->flags & CF_INFLIGHT) != 0;
    if (cur == on) return;
    if (on) {
        c->flags |= CF_INFLIGHT;
        W()->inflight++;
    } else {
        c->flags &= (uint8_t)~CF_INFLIGHT;
        W()->inflight--;
    }
}

static bool conn_open(const conn *c)
{
    return c->state >= CS_CONNECTING && c->state <= CS_JOINED;
}

bool conn_is_joined(const conn *c) { return c->state == CS_JOINED; }

int conn_topic(const conn *c, char *out, size_t cap)
{
    return pattern_expand(out, cap, g_opt.topic, (uint64_t)c->idx + g_opt.id_offset);
}

static uint64_t key_seed(const worker *w, const conn *c)
{
    return w->start_ns ^ ((uint64_t)c->idx << 8) ^ c->attempts ^ 0x5b1a0d5eedull;
}

static void worker_log_once(worker *w, int which, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void worker_log_once(worker *w, int which, const char *fmt, ...)
{
    static uint32_t logged;
    if (logged & (1u << which)) return;
    logged |= 1u << which;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    worker_send(w, M_LOG, line, (size_t)n);
}

static int classify(int err)
{
    switch (err) {
    case UV_ECONNREFUSED:
        return CTR_err_refused;
    case UV_ETIMEDOUT:
        return CTR_err_timeout;
    case UV_EMFILE:
    case UV_ENFILE:
    case UV_ENOBUFS:
    case UV_ENOMEM:
        return CTR_err_emfile;
    case UV_EADDRNOTAVAIL:
    case UV_EADDRINUSE:
    case UV_EAGAIN:
        return CTR_err_addrnotavail;
    default:
        return CTR_err_connect_other;
    }
}

static bool is_resource_err(int err)
{
    return err == UV_EMFILE || err == UV_ENFILE || err == UV_ENOBUFS || err == UV_ENOMEM ||
           err == UV_EADDRNOTAVAIL || err == UV_EADDRINUSE || err == UV_EAGAIN;
}

static void backoff(worker *w)
{
    uint64_t b = w->backoff_ns ? w->backoff_ns * 2 : 10000000ull;
    if (b > 1000000000ull) b = 1000000000ull;
    w->backoff_ns = b;
    w->backoff_until = now_ns() + b;
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct wreq {
    uv_write_t req;
    conn *c;
    uint32_t n;
    char data[];
} wreq;

static void on_write(uv_write_t *req, int status)
{
    wreq *q = (wreq *)req;
    conn *c = q->c;
    c->wq -= q->n;
    free(q);
    if (status < 0 && status != UV_ECANCELED && conn_open(c)) conn_drop(c, CTR_err_write, true);
}

/* Writes n bytes: directly when nothing is queued, the rest copied into a
 * write request. Returns 0, or -1 if the connection was dropped. */
static int raw_write(conn *c, const void *buf, size_t n)
{
    worker *w = W();
    if (!conn_open(c) || c->state == CS_CONNECTING) return -1;
    size_t off = 0;
    if (c->wq == 0) {
        uv_buf_t b = uv_buf_init((char *)buf, (unsigned)n);
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (r >= 0) {
            off = (size_t)r;
        } else if (r != UV_EAGAIN) {
            conn_drop(c, CTR_err_write, true);
            return -1;
        }
    }
    w->ctr[CTR_bytes_out] += n;
    if (off == n) return 0;
    size_t rem = n - off;
    if ((uint64_t)c->wq + rem > g_opt.wq_cap) {
        conn_drop(c, CTR_err_overflow, false);
        return -1;
    }
    wreq *q = malloc(sizeof *q + rem);
    if (!q) {
        conn_drop(c, CTR_err_overflow, false);
        return -1;
    }
    memcpy(q->data, (const char *)buf + off, rem);
    q->c = c;
    q->n = (uint32_t)rem;
    uv_buf_t b = uv_buf_init(q->data, (unsigned)rem);
    int r = uv_write(&q->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        free(q);
        conn_drop(c, CTR_err_write, true);
        return -1;
    }
    c->wq += (uint32_t)rem;
    return 0;
}

/* Sends the ciphertext waiting in c's write BIO. Returns 0 or -1 (dropped). */
static int tls_flush(conn *c)
{
    char *p;
    long n = BIO_get_mem_data(c->tls->wbio, &p);
    if (n <= 0) return 0;
    int r = raw_write(c, p, (size_t)n); /* copies what the socket does not take */
    if (c->tls) (void)BIO_reset(c->tls->wbio);
    return r;
}

/* Writes n plaintext bytes (encrypted first on a wss:// connection). */
static int conn_write(conn *c, const void *buf, size_t n)
{
    if (!c->tls) return raw_write(c, buf, n);
    if (!conn_open(c) || c->state == CS_CONNECTING || !c->tls->done) return -1;
    if (SSL_write(c->tls->ssl, buf, (int)n) <= 0) {
        ERR_clear_error();
        conn_drop(c, CTR_err_tls, true);
        return -1;
    }
    return tls_flush(c);
}

static int ws_send(conn *c, int op, const void *data, size_t n)
{
    worker *w = W();
    uint8_t tmp[WS_MAX_HEADER + 125];
    uint8_t *buf = n + WS_MAX_HEADER <= sizeof tmp ? tmp : w->scratch;
    if (n + WS_MAX_HEADER > w->scratch_cap) return -1;
    size_t fl = ws_encode_frame(buf, n + WS_MAX_HEADER, op, data, n, (uint32_t)rng_next(&w->rng));
    w->ctr[CTR_frames_out]++;
    return conn_write(c, buf, fl);
}

/* Builds the Phoenix message right after room for the largest frame header
 * in the scratch buffer, then writes the header just before it and masks in
 * place: one copy, no allocation. */
static uint32_t push_ref(conn *c, uint32_t join_ref, uint32_t ref, const char *topic,
                         const char *event, const char *payload, size_t plen)
{
    worker *w = W();
    uint8_t *base = w->scratch + WS_MAX_HEADER;
    int n = phx_build((char *)base, w->scratch_cap - WS_MAX_HEADER, join_ref, ref, topic, event,
                      payload, plen);
    if (n < 0) {
        w->ctr[CTR_err_overflow]++;
        return 0;
    }
    uint8_t hdr[WS_MAX_HEADER];
    uint32_t mk = (uint32_t)rng_next(&w->rng);
    size_t h = ws_encode_header(hdr, WS_OP_TEXT, 1, (uint64_t)n, 1, mk);
    memcpy(base - h, hdr, h);
    ws_mask(base, (size_t)n, mk, 0);
    w->ctr[CTR_frames_out]++;
    if (conn_write(c, base - h, h + (size_t)n) < 0) return 0;
    return ref ? ref : 1;
}

uint32_t conn_push(conn *c, const char *topic, const char *event, const char *payload,
                   size_t plen)
{
    if (c->state != CS_JOINED) return 0;
    uint32_t ref = c->next_ref++;
    return push_ref(c, c->join_ref, ref, topic, event, payload, plen) ? ref : 0;
}

uint32_t conn_push_topic(conn *c, uint32_t join_ref, const char *topic, const char *event,
                         const char *payload, size_t plen)
{
    if (c->state != CS_JOINED) return 0;
    uint32_t ref = c->next_ref++;
    return push_ref(c, join_ref ? join_ref : ref, ref, topic, event, payload, plen) ? ref : 0;
}

static void send_heartbeat(conn *c)
{
    worker *w = W();
    if (c->hb_ref) w->ctr[CTR_hb_timeout]++;
    uint32_t ref = c->next_ref++;
    c->hb_ref = ref;
    w->ctr[CTR_hb_sent]++;
    push_ref(c, 0, ref, "phoenix", "heartbeat", "{}", 2);
}

/* ---- life cycle ------------------------------------------------------------ */

static void free_bufs(conn *c)
{
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
    free(c->frag);
    c->frag = NULL;
    c->fraglen = 0;
    tls_free(c);
}

static void on_close(uv_handle_t *h)
{
    conn *c = (conn *)h;
    worker *w = W();
    free_bufs(c);
    if (c->retry_after_close && w->phase != PH_STOP) {
        c->retry_after_close = 0;
        c->state = CS_IDLE;
        w->retryq[(w->rq_head + w->rq_len) % w->n] = c->idx - w->lo;
        w->rq_len++;
        w->ctr[CTR_retries]++;
        inflight_set(c, false);
        net_start(w);
    } else {
        c->state = CS_DONE;
        inflight_set(c, false);
    }
    worker_check_ready(w);
    if (g_opt.rate <= 0) net_pump(w);
}

/* Counts ctr and closes c; retried later when may_retry and the policy allows. */
static void conn_drop(conn *c, int ctr, bool may_retry)
{
    worker *w = W();
    w->ctr[ctr]++;
    if (!conn_open(c)) return;
    if (c->state == CS_JOINED) {
        w->tm.joined_now--;
    }
    bool retry = may_retry && !(c->flags & CF_JOINED_ONCE) && w->phase != PH_STOP &&
                 c->attempts <= (unsigned)g_opt.retries;
    if (!retry && !(c->flags & CF_JOINED_ONCE)) w->ctr[CTR_failed]++;
    c->retry_after_close = retry;
    c->state = CS_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_connect(uv_connect_t *req, int status);

static void start_conn(worker *w, uint32_t li)
{
    conn *c = &w->conns[li];
    uint32_t idx = c->idx;
    c->attempts++;
    w->ctr[CTR_attempts]++;
    c->t_start = now_ns();
    c->next_ref = 1;
    c->join_ref = c->hb_ref = c->req_ref = 0;
    c->wq = 0;
    int r = uv_tcp_init_ex(w->loop, &c->tcp, AF_INET);
    if (r < 0) {
        /* No handle exists: nothing to close. */
        w->ctr[classify(r)]++;
        if (is_resource_err(r)) backoff(w);
        if (c->attempts <= (unsigned)g_opt.retries) {
            c->state = CS_IDLE;
            w->retryq[(w->rq_head + w->rq_len) % w->n] = li;
            w->rq_len++;
            w->ctr[CTR_retries]++;
        } else {
            c->state = CS_DONE;
            w->ctr[CTR_failed]++;
        }
        (void)idx;
        worker_log_once(w, 0, "socket(): %s (backing off)", uv_strerror(r));
        return;
    }
    c->state = CS_CONNECTING;
    inflight_set(c, true);
    if (g_opt.nsrc) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        }
        r = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&g_opt.src[idx % g_opt.nsrc], 0);
        if (r < 0) {
            if (is_resource_err(r)) backoff(w);
            worker_log_once(w, 1, "bind(source): %s", uv_strerror(r));
            conn_drop(c, classify(r), true);
            return;
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_connect_t *req = malloc(sizeof *req);
    if (!req) {
        conn_drop(c, CTR_err_emfile, true);
        return;
    }
    req->data = c;
    r = uv_tcp_connect(req, &c->tcp,
                       (const struct sockaddr *)&g_opt.dst[idx % (uint32_t)g_opt.nports],
                       on_connect);
    if (r < 0) {
        free(req);
        if (is_resource_err(r)) backoff(w);
        worker_log_once(w, 2, "connect(): %s", uv_strerror(r));
        conn_drop(c, classify(r), true);
    }
}

void net_pump(worker *w)
{
    if (w->phase == PH_STOP) return;
    uint64_t now = now_ns();
    if (w->next_new >= w->n && w->rq_len == 0) {
        if (uv_is_active((uv_handle_t *)&w->pacer)) uv_timer_stop(&w->pacer);
        return;
    }
    if (now < w->backoff_until) return;
    double rate = g_opt.rate / w->nprocs;
    if (rate > 0) {
        w->tokens += (double)(now - w->t_tokens) * rate / 1e9;
        w->t_tokens = now;
        double cap = rate / 100 > 1 ? rate / 100 : 1;
        if (w->tokens > cap) w->tokens = cap;
    }
    while (w->inflight < g_opt.inflight) {
        if (rate > 0 && w->tokens < 1) break;
        uint32_t li;
        if (w->rq_len) {
            li = w->retryq[w->rq_head];
            w->rq_head = (w->rq_head + 1) % w->n;
            w->rq_len--;
        } else if (w->next_new < w->n) {
            li = w->next_new++;
        } else {
            break;
        }
        if (rate > 0) w->tokens -= 1;
        start_conn(w, li);
        if (w->backoff_until > now) break;
    }
    worker_check_ready(w);
}

/* ---- reading ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    b->base = W()->rshared;
    b->len = W()->rshared_cap;
}

static void joined(worker *w, conn *c)
{
    uint64_t now = now_ns();
    c->state = CS_JOINED;
    c->flags |= CF_JOINED_ONCE;
    inflight_set(c, false);
    w->tm.joined_now++;
    w->ctr[CTR_joined]++;
    hist_record(&w->h[H_JOIN], (now - c->t_start) / 1000);
    if (!w->tm.first_join) w->tm.first_join = now;
    w->tm.last_join = now;
    uint64_t sec = (now - w->t0) / 1000000000ull;
    if (sec < SBL_SECS) w->jps[sec]++;
    if (g_scen->w_joined) g_scen->w_joined(w, c);
    worker_check_ready(w);
    if (g_opt.rate <= 0) net_pump(w);
}

static void on_text(worker *w, conn *c, const char *p, size_t n)
{
    phx_frame f;
    if (phx_parse(p, n, &f) < 0) {
        w->ctr[CTR_err_parse]++;
        worker_log_once(w, 3, "unparsable frame: %.*s", (int)(n > 200 ? 200 : n), p);
        return;
    }
    if (span_str_eq(f.event, "phx_reply")) {
        uint64_t ref = 0;
        span_u64(f.ref, &ref);
        span st = {0}, resp = {"null", 4};
        bool ok = json_obj_get(f.payload, "status", &st) && span_str_eq(st, "ok");
        json_obj_get(f.payload, "response", &resp);
        w->ctr[ok ? CTR_replies_ok : CTR_replies_error]++;
        if (c->state == CS_JOINING && ref == c->join_ref) {
            if (ok) {
                joined(w, c);
            } else {
                worker_log_once(w, 4, "join refused: %.*s", (int)(resp.n > 200 ? 200 : resp.n),
                                resp.p);
                conn_drop(c, CTR_join_errors, false);
            }
            return;
        }
        if (ref && ref == c->hb_ref) {
            c->hb_ref = 0;
            w->ctr[CTR_hb_ok]++;
            return;
        }
        if (g_scen->w_reply) g_scen->w_reply(w, c, (uint32_t)ref, ok, resp);
        return;
    }
    w->ctr[CTR_pushes_in]++;
    if (span_str_eq(f.event, "phx_error") || span_str_eq(f.event, "phx_close")) {
        uint64_t jr = 0;
        bool err = span_str_eq(f.event, "phx_error");
        w->ctr[err ? CTR_phx_error : CTR_phx_close]++;
        if (c->state == CS_JOINED && span_u64(f.join_ref, &jr) && jr == c->join_ref) {
            worker_log_once(w, 5, "channel %s from server", err ? "phx_error" : "phx_close");
            conn_drop(c, CTR_closed_by_server, false);
        }
        return;
    }
    if (span_str_eq(f.event, "presence")) w->ctr[CTR_presence_in]++; /* online state (user:) */
    if (g_scen->w_push) g_scen->w_push(w, c, &f);
}

static void on_message(worker *w, conn *c, int binary, const char *p, size_t n)
{
    if (!binary) on_text(w, c, p, n);
    /* Binary (V2 binary serializer) messages are counted in frames_in only. */
}

static void on_frame(worker *w, conn *c, const ws_frame *f, char *p, size_t n)
{
    switch (f->opcode) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (c->frag) {
            conn_drop(c, CTR_err_ws_protocol, false);
            return;
        }
        if (f->fin) {
            on_message(w, c, f->opcode == WS_OP_BINARY, p, n);
        } else {
            c->frag = malloc(n ? n : 1);
            if (!c->frag) {
                conn_drop(c, CTR_err_overflow, false);
                return;
            }
            memcpy(c->frag, p, n);
            c->fraglen = (uint32_t)n;
            if (f->opcode == WS_OP_BINARY)
                c->flags |= CF_FRAG_BIN;
            else
                c->flags &= (uint8_t)~CF_FRAG_BIN;
        }
        return;
    case WS_OP_CONT: {
        if (!c->frag) {
            conn_drop(c, CTR_err_ws_protocol, false);
            return;
        }
        if ((uint64_t)c->fraglen + n > g_opt.max_frame) {
            conn_drop(c, CTR_err_overflow, false);
            return;
        }
        char *nb = realloc(c->frag, c->fraglen + n + 1);
        if (!nb) {
            conn_drop(c, CTR_err_overflow, false);
            return;
        }
        c->frag = nb;
        memcpy(c->frag + c->fraglen, p, n);
        c->fraglen += (uint32_t)n;
        if (f->fin) {
            int bin = (c->flags & CF_FRAG_BIN) != 0;
            char *m = c->frag;
            uint32_t ml = c->fraglen;
            c->frag = NULL;
            c->fraglen = 0;
            on_message(w, c, bin, m, ml);
            free(m);
        }
        return;
    }
    case WS_OP_CLOSE: {
        int code = n >= 2 ? ((uint8_t)p[0] << 8 | (uint8_t)p[1]) : 1005;
        w->ctr[CTR_close_frames]++;
        if (code == 1013) w->ctr[CTR_close_1013]++;
        worker_log_once(w, 6, "server closed a socket with code %d", code);
        uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        if (code != 1005) ws_send(c, WS_OP_CLOSE, echo, 2);
        if (conn_open(c)) conn_drop(c, CTR_closed_by_server, true);
        return;
    }
    case WS_OP_PING:
        ws_send(c, WS_OP_PONG, p, n);
        return;
    default: /* pong */
        return;
    }
}

static uint32_t clock_s(const worker *w) { return (uint32_t)((now_ns() - w->start_ns) / 1000000000ull); }

static void send_join(worker *w, conn *c)
{
    char topic[512];
    if (conn_topic(c, topic, sizeof topic) < 0) {
        conn_drop(c, CTR_err_overflow, false);
        return;
    }
    c->state = CS_JOINING;
    c->join_ref = c->next_ref++;
    c->last_hb_s = clock_s(w);
    c->t_req = now_ns();
    push_ref(c, c->join_ref, c->join_ref, topic, "phx_join", g_opt.join_payload,
             strlen(g_opt.join_payload));
}

/* Processes as much of p[0..len) as forms whole units; returns bytes used. */
static size_t consume(worker *w, conn *c, char *p, size_t len)
{
    size_t off = 0;
    if (c->state == CS_HANDSHAKE) {
        int st;
        const char *acc;
        size_t al;
        int h = ws_parse_response(p, len, &st, &acc, &al);
        if (h == 0) {
            if (len > HANDSHAKE_MAX) conn_drop(c, CTR_err_handshake, false);
            return len > HANDSHAKE_MAX ? len : 0;
        }
        if (h < 0) {
            conn_drop(c, CTR_err_handshake, true);
            return len;
        }
        if (st != 101) {
            worker_log_once(w, 7, "upgrade answered HTTP %d", st);
            conn_drop(c, CTR_err_http_status, st == 503 || st == 429);
            return len;
        }
        char key[WS_KEY_LEN + 1], expect[WS_ACCEPT_LEN + 1];
        ws_key_from_seed(key_seed(w, c), key);
        ws_accept_for_key(key, expect);
        if (!acc || al != WS_ACCEPT_LEN || memcmp(acc, expect, WS_ACCEPT_LEN) != 0) {
            worker_log_once(w, 8, "bad Sec-WebSocket-Accept");
            conn_drop(c, CTR_err_handshake, false);
            return len;
        }
        w->ctr[CTR_upgraded]++;
        off = (size_t)h;
        send_join(w, c);
    }
    while (off < len && conn_open(c)) {
        ws_frame f;
        int r = ws_parse_header((const uint8_t *)p + off, len - off, &f);
        if (r == WS_BAD) {
            worker_log_once(w, 9, "bad WebSocket frame from server");
            conn_drop(c, CTR_err_ws_protocol, false);
            return len;
        }
        if (f.plen > g_opt.max_frame) {
            conn_drop(c, CTR_err_overflow, false);
            return len;
        }
        if (r == WS_NEED_MORE || len - off - f.hdr_len < f.plen) break;
        char *pl = p + off + f.hdr_len;
        size_t pn = (size_t)f.plen;
        if (f.masked) ws_mask((uint8_t *)pl, pn, f.mask_key, 0);
        off += f.hdr_len + pn;
        w->ctr[CTR_frames_in]++;
        on_frame(w, c, &f, pl, pn);
    }
    return conn_open(c) ? off : len;
}

static void send_upgrade(worker *w, conn *c);

/* Plaintext bytes from the server (the socket's, or TLS's output). */
static void plain_in(worker *w, conn *c, char *data, size_t nread)
{
    char *p;
    size_t len;
    if (c->rlen) {
        size_t need = (size_t)c->rlen + (size_t)nread;
        if (need > g_opt.max_frame + 64 + HANDSHAKE_MAX) {
            conn_drop(c, CTR_err_overflow, false);
            return;
        }
        if (need > c->rcap) {
            size_t nc = c->rcap * 2 > need ? (size_t)c->rcap * 2 : need;
            char *nb = realloc(c->rbuf, nc);
            if (!nb) {
                conn_drop(c, CTR_err_overflow, false);
                return;
            }
            c->rbuf = nb;
            c->rcap = (uint32_t)nc;
        }
        memcpy(c->rbuf + c->rlen, data, nread);
        c->rlen = (uint32_t)need;
        p = c->rbuf;
        len = need;
    } else {
        p = data;
        len = nread;
    }
    size_t used = consume(w, c, p, len);
    if (!conn_open(c)) return; /* buffers are freed by on_close */
    size_t left = len - used;
    if (c->rlen) {
        if (left == 0) {
            free(c->rbuf);
            c->rbuf = NULL;
            c->rlen = c->rcap = 0;
        } else {
            memmove(c->rbuf, c->rbuf + used, left);
            c->rlen = (uint32_t)left;
            if (c->rcap > 65536 && left < c->rcap / 4) {
                char *nb = realloc(c->rbuf, left * 2);
                if (nb) {
                    c->rbuf = nb;
                    c->rcap = (uint32_t)(left * 2);
                }
            }
        }
    } else if (left) {
        size_t cap = left < 2048 ? 2048 : left * 2;
        c->rbuf = malloc(cap);
        if (!c->rbuf) {
            conn_drop(c, CTR_err_overflow, false);
            return;
        }
        memcpy(c->rbuf, p + used, left);
        c->rlen = (uint32_t)left;
        c->rcap = (uint32_t)cap;
    }
}

/* Ciphertext from the server: the handshake first (then the upgrade
 * request), then every record's plaintext through plain_in. */
static void tls_in(worker *w, conn *c, const char *data, size_t n)
{
    ctls *t = c->tls;
    if (BIO_write(t->rbio, data, (int)n) != (int)n) {
        conn_drop(c, CTR_err_overflow, false);
        return;
    }
    if (!t->done) {
        int rc = SSL_do_handshake(t->ssl);
        if (rc != 1) {
            int e = SSL_get_error(t->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                tls_flush(c);
                return;
            }
            unsigned long err = ERR_peek_error();
            char msg[256] = "no detail";
            if (err) ERR_error_string_n(err, msg, sizeof msg);
            long vr = SSL_get_verify_result(t->ssl);
            worker_log_once(w, 12, "TLS handshake failed: %s%s%s", msg, vr != X509_V_OK ? "; certificate: " : "",
                            vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
            ERR_clear_error();
            conn_drop(c, CTR_err_tls, false);
            return;
        }
        t->done = true;
        w->ctr[SSL_session_reused(t->ssl) ? CTR_tls_resumed : CTR_tls_full]++;
        if (tls_flush(c) < 0) return;
        send_upgrade(w, c);
    }
    while (conn_open(c) && c->tls) {
        int k = SSL_read(t->ssl, g_tplain, TPLAIN_CAP);
        if (k > 0) {
            plain_in(w, c, g_tplain, (size_t)k);
            continue;
        }
        int e = SSL_get_error(t->ssl, k);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        ERR_clear_error();
        if (e == SSL_ERROR_ZERO_RETURN) /* close_notify: as an EOF */
            conn_drop(c, c->state >= CS_JOINING ? CTR_closed_by_server : CTR_err_handshake, true);
        else
            conn_drop(c, CTR_err_tls, false);
        return;
    }
    if (conn_open(c) && c->tls) tls_flush(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn *c = (conn *)s;
    worker *w = W();
    if (nread == 0) return;
    if (nread < 0) {
        if (c->state == CS_JOINED || c->state == CS_JOINING)
            conn_drop(c, nread == UV_EOF ? CTR_closed_by_server : CTR_reset_by_server, true);
        else
            conn_drop(c, nread == UV_EOF ? CTR_err_handshake : CTR_reset_by_server, true);
        return;
    }
    w->ctr[CTR_bytes_in] += (uint64_t)nread;
    if (!conn_open(c)) return;
    if (c->tls) tls_in(w, c, b->base, (size_t)nread);
    else plain_in(w, c, b->base, (size_t)nread);
}

static void pct_encode(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    conn *c = req->data;
    worker *w = W();
    free(req);
    if (status == UV_ECANCELED || c->state != CS_CONNECTING) return;
    if (status < 0) {
        if (is_resource_err(status)) backoff(w);
        worker_log_once(w, 10, "connect: %s", uv_strerror(status));
        conn_drop(c, classify(status), true);
        return;
    }
    w->ctr[CTR_tcp_connected]++;
    w->backoff_ns = 0;
    c->state = CS_HANDSHAKE;
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0) {
        conn_drop(c, CTR_err_connect_other, true);
        return;
    }
    if (g_tls_ctx) { /* wss://: the TLS handshake first, the upgrade when it is done */
        if (tls_start(c) < 0) {
            conn_drop(c, CTR_err_emfile, true);
            return;
        }
        int rc = SSL_do_handshake(c->tls->ssl);
        int e = SSL_get_error(c->tls->ssl, rc);
        if (rc == 1 || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)) {
            ERR_clear_error();
            conn_drop(c, CTR_err_tls, false);
            return;
        }
        tls_flush(c);
        return;
    }
    send_upgrade(w, c);
}

/* The WebSocket upgrade request: path?[token=T&]vsn=V */
static void send_upgrade(worker *w, conn *c)
{
    char tok[1024] = "", enc[3072] = "", pq[4096];
    uint64_t id = (uint64_t)c->idx + g_opt.id_offset;
    if (g_opt.token_secret) {
        char uid[256];
        if (pattern_expand(uid, sizeof uid, g_opt.user_pattern, id) < 0 ||
            token_mint(tok, sizeof tok, g_opt.token_secret, strlen(g_opt.token_secret), uid,
                       g_opt.sid, (int64_t)time(NULL) + (int64_t)g_opt.token_ttl) < 0) {
            conn_drop(c, CTR_err_overflow, false);
            return;
        }
    } else if (g_opt.token) {
        if (pattern_expand(tok, sizeof tok, g_opt.token, id) < 0) tok[0] = 0;
    }
    int n;
    if (tok[0]) {
        pct_encode(enc, sizeof enc, tok);
        n = snprintf(pq, sizeof pq, "%stoken=%s&vsn=%s", g_query_prefix, enc, g_opt.vsn);
    } else {
        n = snprintf(pq, sizeof pq, "%svsn=%s", g_query_prefix, g_opt.vsn);
    }
    if (n < 0 || (size_t)n >= sizeof pq) {
        conn_drop(c, CTR_err_overflow, false);
        return;
    }
    char key[WS_KEY_LEN + 1];
    ws_key_from_seed(key_seed(w, c), key);
    char reqbuf[5120];
    int rl = ws_build_request(reqbuf, sizeof reqbuf, g_opt.host,
                              g_opt.ports[c->idx % (uint32_t)g_opt.nports], pq, key);
    if (rl < 0) {
        conn_drop(c, CTR_err_overflow, false);
        return;
    }
    conn_write(c, reqbuf, (size_t)rl);
}

/* ---- periodic ------------------------------------------------------------------ */

void net_tick(worker *w, uint64_t now)
{
    uint64_t cto = (uint64_t)(g_opt.connect_timeout * 1e9);
    uint32_t now_s = (uint32_t)((now - w->start_ns) / 1000000000ull);
    uint32_t hb = (uint32_t)g_opt.heartbeat;
    for (uint32_t i = 0; i < w->n; i++) {
        conn *c = &w->conns[i];
        switch (c->state) {
        case CS_CONNECTING:
        case CS_HANDSHAKE:
        case CS_JOINING:
            if (now - c->t_start > cto) {
                worker_log_once(w, 11, "timeout in state %d", c->state);
                conn_drop(c, CTR_err_timeout, true);
            }
            break;
        case CS_JOINED:
            if (hb && now_s - c->last_hb_s >= hb) {
                c->last_hb_s = now_s;
                send_heartbeat(c);
            }
            break;
        default:
            break;
        }
    }
}

void net_stop_all(worker *w)
{
    static const uint8_t bye[2] = {0x03, 0xe8}; /* 1000 */
    for (uint32_t i = 0; i < w->n; i++) {
        conn *c = &w->conns[i];
        if (c->state == CS_JOINED || c->state == CS_JOINING) {
            if (c->wq == 0) ws_send(c, WS_OP_CLOSE, bye, 2);
        }
        if (conn_open(c)) {
            if (c->state == CS_JOINED) w->tm.joined_now--;
            c->retry_after_close = 0;
            c->state = CS_CLOSING;
            uv_close((uv_handle_t *)&c->tcp, on_close);
        }
    }
}

int net_worker_init(worker *w)
{
    w->conns = calloc(w->n ? w->n : 1, sizeof *w->conns);
    w->retryq = calloc(w->n ? w->n : 1, sizeof *w->retryq);
    w->rshared_cap = RSHARED_CAP;
    w->rshared = malloc(w->rshared_cap);
    w->scratch_cap = SCRATCH_CAP;
    w->scratch = malloc(w->scratch_cap);
    if (!w->conns || !w->retryq || !w->rshared || !w->scratch) return -1;
    for (uint32_t i = 0; i < w->n; i++) w->conns[i].idx = w->lo + i;
    w->t_tokens = now_ns();
    w->tokens = 1;
    uv_timer_init(w->loop, &w->pacer);
    return 0;
}

void net_start(worker *w)
{
    w->pacer.data = w;
    if (!uv_is_active((uv_handle_t *)&w->pacer)) uv_timer_start(&w->pacer, on_pacer, 1, 1);
    net_pump(w);
}
