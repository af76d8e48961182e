/* tls.c — TLS on the public listener (see tls.h). */
#include "net/tls.h"

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "net/conn.h"
#include "base/log.h"

#define TLS_RECORD 16384 /* plaintext per SSL_read / per record written */

typedef struct tls_conn {
    SSL *ssl;
    BIO *rbio;        /* ciphertext in (owned by ssl) */
    BIO *wbio;        /* ciphertext out (owned by ssl) */
    size_t pending;   /* ciphertext handed to uv_write, not yet written */
    bool done;        /* handshake finished */
    bool blocked;     /* a flush stopped at TLS_PENDING_MAX: resume it when the backlog drains */
    bool failed;      /* handshake failed: the alert is on its way, input is dropped */
    bool in_read;     /* inside tls_on_read */
    bool dead;        /* connection gone while in_read: freed by tls_on_read */
} tls_conn;

/* One ciphertext write: the request and its bytes in one allocation. */
typedef struct tls_wreq {
    uv_write_t req;
    sb_conn *c;
    size_t len;
    char data[];
} tls_wreq;

static SSL_CTX *g_ctx;
static _Thread_local char t_plain[TLS_RECORD];

/* The last OpenSSL error as text (for logs and start-up messages). */
static const char *ssl_err(void)
{
    static _Thread_local char buf[256];
    unsigned long e = ERR_get_error();
    if (!e) return "unknown error";
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

/* ALPN: we speak HTTP/1.1 only (WebSocket upgrades ride on it). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char http11[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, http11, sizeof http11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int tls_init(void)
{
    bool cert = g_config.tls_cert[0], key = g_config.tls_key[0];
    if (!cert && !key) return 0;
    if (!cert || !key) {
        fprintf(stderr, "switchboard: SB_TLS_CERT and SB_TLS_KEY must be set together\n");
        return -1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        fprintf(stderr, "switchboard: TLS: %s\n", ssl_err());
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* idle connections give back their record buffers */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_sess_set_cache_size(ctx, 4096);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, g_config.tls_cert) != 1) {
        fprintf(stderr, "switchboard: TLS certificate %s: %s\n", g_config.tls_cert, ssl_err());
        SSL_CTX_free(ctx);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, g_config.tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "switchboard: TLS key %s: %s\n", g_config.tls_key, ssl_err());
        SSL_CTX_free(ctx);
        return -1;
    }
    g_ctx = ctx;
    return 0;
}

bool tls_enabled(void) { return g_ctx != NULL; }

int tls_conn_start(sb_conn *c)
{
    tls_conn *t = calloc(1, sizeof *t);
    if (!t) return -1;
    t->ssl = SSL_new(g_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return -1;
    }
    BIO_set_mem_eof_return(t->rbio, -1); /* empty means "wait for more" */
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    c->tls = t;
    return 0;
}

static void free_state(tls_conn *t)
{
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
}

void tls_conn_gone(sb_conn *c)
{
    tls_conn *t = c->tls;
    if (!t) return;
    c->tls = NULL;
    if (t->in_read) t->dead = true; /* tls_on_read frees it when it unwinds */
    else free_state(t);
}

static void write_cb(uv_write_t *req, int status)
{
    tls_wreq *w = (tls_wreq *)req;
    sb_conn *c = w->c;
    size_t len = w->len;
    free(w);
    if (c->closing) return; /* c->tls is gone; c itself lives until its close callback */
    if (status < 0) {
        conn_close(c);
        return;
    }
    tls_conn *t = c->tls;
    if (!t) return;
    t->pending -= len;
    if (t->blocked && t->pending < TLS_PENDING_MAX / 2) { /* resume the flush */
        t->blocked = false;
        conn_mark_dirty(c);
    }
}

/* Moves the ciphertext waiting in wbio onto the stream: written at once when
 * the socket takes it, else queued with uv_write (in order: libuv refuses
 * uv_try_write while writes are queued). Returns 0 or -1 (closed). */
static int push_out(sb_conn *c, tls_conn *t)
{
    if (c->closing) return -1;
    for (int guard = 0; guard < 1024; guard++) {
        char *p;
        long n = BIO_get_mem_data(t->wbio, &p);
        if (n <= 0) return 0;
        uv_buf_t b = uv_buf_init(p, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (w == UV_EAGAIN || (w >= 0 && w < n)) {
            size_t done = w > 0 ? (size_t)w : 0, left = (size_t)n - done;
            tls_wreq *q = malloc(sizeof *q + left);
            if (!q) {
                conn_close(c);
                return -1;
            }
            memcpy(q->data, p + done, left);
            q->c = c;
            q->len = left;
            (void)BIO_reset(t->wbio);
            b = uv_buf_init(q->data, (unsigned)left);
            if (uv_write(&q->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
                free(q);
                conn_close(c);
                return -1;
            }
            t->pending += left;
            continue;
        }
        if (w < 0) {
            conn_close(c);
            return -1;
        }
        (void)BIO_reset(t->wbio); /* all of it was written */
    }
    return 0;
}

/* Gives back a memory BIO's buffer once it is empty and has grown past
 * 4 KiB (after a burst), so an idle connection keeps no record-sized
 * buffers: the BIO is replaced by a fresh one (SSL_set0_* frees the old). */
static void shrink(tls_conn *t, bool rd)
{
    BIO *b = rd ? t->rbio : t->wbio;
    BUF_MEM *bm = NULL;
    if (BIO_ctrl_pending(b) != 0 || BIO_get_mem_ptr(b, &bm) <= 0 || !bm || bm->max <= 4096) return;
    BIO *nb = BIO_new(BIO_s_mem());
    if (!nb) return;
    BIO_set_mem_eof_return(nb, -1);
    if (rd) {
        SSL_set0_rbio(t->ssl, nb);
        t->rbio = nb;
    } else {
        SSL_set0_wbio(t->ssl, nb);
        t->wbio = nb;
    }
}

/* The handshake failed: let the alert go out, then close. */
static void handshake_failed(sb_conn *c, tls_conn *t, int err)
{
    t->failed = true;
    if (log_enabled(LOG_DEBUG)) {
        char ip[48];
        conn_peer_ip(c, ip, sizeof ip);
        log_msg(LOG_DEBUG, "tls_handshake_failed", "peer", json_string(ip), "error",
                json_string(err == SSL_ERROR_SSL ? ssl_err() : "io"), NULL);
    }
    ERR_clear_error();
    if (push_out(c, t) == 0 && !c->closing) conn_close_after_flush(c);
}

void tls_on_read(sb_conn *c, const char *data, size_t len)
{
    tls_conn *t = c->tls;
    if (!t || t->failed) return;
    if (BIO_write(t->rbio, data, (int)len) != (int)len) {
        conn_close(c);
        return;
    }
    t->in_read = true;
    if (!t->done) {
        int rc = SSL_do_handshake(t->ssl);
        if (rc != 1) {
            int err = SSL_get_error(t->ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) push_out(c, t);
            else handshake_failed(c, t, err);
            goto out;
        }
        t->done = true;
        if (push_out(c, t) != 0) goto out;
        conn_mark_dirty(c); /* anything queued meanwhile can go now */
    }
    /* Every plaintext byte is handed up at once (the layers above buffer
     * within their own limits), so nothing waits in the BIO for a read
     * callback that a paused socket would never make. */
    for (int guard = 0; guard < 4096 && !c->closing && !t->dead; guard++) {
        int n = SSL_read(t->ssl, t_plain, sizeof t_plain);
        if (n > 0) {
            /* to the connection's protocol (draining: dropped) */
            if (!c->draining) c->h->on_data(c, t_plain, (size_t)n);
            continue;
        }
        int err = SSL_get_error(t->ssl, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
        ERR_clear_error();
        conn_close(c); /* close_notify (as an EOF would) or a broken record */
        break;
    }
    if (!t->dead && !c->closing && push_out(c, t) == 0) { /* e.g. a TLS 1.3 key update */
        shrink(t, true);
        shrink(t, false);
    }
out:
    t->in_read = false;
    if (t->dead) free_state(t);
}

int tls_try_write(sb_conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    tls_conn *t = c->tls;
    if (!t || t->failed) return UV_EPIPE;
    if (!t->done) return UV_EAGAIN; /* tls_on_read marks c dirty when it is done */
    if (t->pending >= TLS_PENDING_MAX) {
        t->blocked = true;
        return UV_EAGAIN;
    }
    /* coalesce small buffers into records of up to TLS_RECORD bytes */
    size_t taken = 0, staged = 0;
    for (unsigned i = 0; i <= nbufs; i++) {
        const char *p = i < nbufs ? bufs[i].base : NULL;
        size_t n = i < nbufs ? bufs[i].len : 0;
        while (n > 0 || (i == nbufs && staged > 0)) {
            size_t room = sizeof t_plain - staged;
            size_t k = n < room ? n : room;
            if (k) {
                memcpy(t_plain + staged, p, k);
                staged += k;
                p += k;
                n -= k;
            }
            if (staged == sizeof t_plain || (i == nbufs && staged > 0)) {
                int w = SSL_write(t->ssl, t_plain, (int)staged);
                if (w <= 0) {
                    ERR_clear_error();
                    return UV_EPIPE;
                }
                taken += staged;
                staged = 0;
                if (push_out(c, t) != 0) return UV_EPIPE;
                if (t->pending >= TLS_PENDING_MAX) {
                    t->blocked = true;
                    return (int)taken;
                }
            }
        }
    }
    shrink(t, false); /* all taken: the burst is over */
    return (int)taken;
}

void tls_close_notify(sb_conn *c)
{
    tls_conn *t = c->tls;
    if (!t || !t->done || t->failed) return;
    if (SSL_shutdown(t->ssl) < 0) ERR_clear_error();
    push_out(c, t);
}

bool tls_sweep(sb_conn *c, uint64_t now)
{
    tls_conn *t = c->tls;
    if (!t || t->done || t->failed || now - c->mark_ms <= g_config.tls_handshake_ms) return false;
    conn_close(c); /* a stalled handshake */
    return true;
}
