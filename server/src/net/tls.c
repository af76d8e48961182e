/* tls.c — TLS on the public listener (see tls.h). */
#include "net/tls.h"

#include <errno.h>
#include <openssl/buffer.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/config.h"
#include "net/conn.h"
#include "net/tls13.h"
#include "base/log.h"

#define TLS_RECORD 16384 /* plaintext per SSL_read / per record written */
#define TLS_HANDSHAKE_FREED (16 * 1024) /* what a finished handshake leaves free, roughly (the trim hint) */

typedef struct tls_conn {
    SSL *ssl;         /* its BIO (bio_method) reads in[] and stages into t_out; NULL once own */
    struct sb_conn *c;
    const char *in;   /* ciphertext being fed, valid only inside tls_on_read */
    size_t inlen;
    size_t pending;   /* ciphertext handed to uv_write, not yet written */
    bool done;        /* handshake finished */
    bool blocked;     /* a flush stopped at TLS_PENDING_MAX: resume it when the backlog drains */
    bool failed;      /* handshake failed: the alert is on its way, input is dropped */
    bool in_read;     /* inside tls_on_read */
    bool dead;        /* connection gone while in_read: freed by tls_on_read */
    /* TLS 1.3 after the handshake (tls13.h): the SSL object is freed and
     * rec seals and opens the records; part holds a record received in
     * pieces (allocated only then). */
    bool own;
    bool shut;        /* our close_notify is out: nothing more to write */
    uint8_t secrets;  /* during the handshake: 1 client's, 2 server's application secret seen, 4 unusable */
    uint8_t seclen;   /* their length (the suite's hash) */
    uint8_t ohdr_have;/* the record parser of our output during the handshake: */
    uint8_t ohdr[5];  /*   header bytes of the record being written */
    uint16_t orec_left;  /* its body bytes still to come */
    uint32_t orecs;      /* records written */
    uint32_t orecs_app;  /* records written before the server's application key */
    uint32_t partlen;
    unsigned char *part;
    tls13_rec rec;    /* during the handshake: the secrets, as the keylog callback gives them */
} tls_conn;

/* One ciphertext write: the request and its bytes in one allocation. */
typedef struct tls_wreq {
    uv_write_t req;
    sb_conn *c;
    size_t len;
    char data[];
} tls_wreq;

/* Contexts. g_ctx is the newest (built on the main thread, which holds one
 * reference); each reactor reads only its own g_rctx[id], which it swaps on
 * its own thread (swap_task): a reload never frees a context another thread
 * is about to SSL_new from. Live connections keep the context they started
 * with (every SSL holds a reference to its SSL_CTX). */
#define TLS_MAX_REACTORS 64
static SSL_CTX *g_ctx;
static SSL_CTX *g_rctx[TLS_MAX_REACTORS];
static _Thread_local char t_plain[TLS_RECORD];
static _Thread_local unsigned char t_open[TLS13_MAX_CIPHER]; /* an opened record's plaintext */

/* The connection's BIO (one for both directions, no buffer of its own, so an
 * idle connection holds none): reads come straight from the bytes
 * tls_on_read was given; writes are staged in this thread's t_out, which
 * push_out moves to the socket after every SSL call (a write for another
 * connection first sends what is staged to its owner). Memory BIOs held
 * about 1.5 KiB of buffer per idle connection after the handshake. */
static BIO_METHOD *g_bio_method;
static _Thread_local char *t_out;
static _Thread_local size_t t_out_len, t_out_cap;
static _Thread_local tls_conn *t_out_owner;
static int bio_write(BIO *b, const char *data, int len);
static int bio_read(BIO *b, char *out, int len);
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr);
static int bio_create(BIO *b);
/* Session-ticket keys (stateless resumption), shared by every reactor and
 * every context generation: [0] encrypts new tickets, all decrypt. The
 * layout of one key in SB_TLS_TICKET_KEY_FILE is nginx's 80-byte
 * ssl_session_ticket_key: name, HMAC-SHA256 key, AES-256 key. */
typedef struct tkey {
    unsigned char name[16], mac[32], aes[32];
} tkey;
#define TKEY_FILE_BYTES 80
#define TKEYS_MAX 8
static tkey g_keys[TKEYS_MAX];
static int g_nkeys;
static pthread_rwlock_t g_keys_mu = PTHREAD_RWLOCK_INITIALIZER;
static uint64_t g_keys_born_ms; /* when the random key [0] was made (main thread) */

static atomic_ullong g_full, g_resumed; /* handshakes finished, by kind */

/* A file's identity and version: a change of any of these triggers a reload. */
typedef struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool exists;
} file_sig;
static file_sig g_sig_cert, g_sig_key, g_sig_tickets; /* as of the last attempt */
static uv_timer_t g_watch;
static bool g_watching;
static uint64_t g_last_check_ms;

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

/* Hex digits into out (at most max bytes). Returns the byte count or -1. */
static int unhex(const char *h, unsigned char *out, size_t max)
{
    size_t n = 0;
    for (; h[0] && h[1] && h[0] != ' '; h += 2) {
        int hi = OPENSSL_hexchar2int((unsigned char)h[0]), lo = OPENSSL_hexchar2int((unsigned char)h[1]);
        if (hi < 0 || lo < 0 || n == max) return -1;
        out[n++] = (unsigned char)(hi << 4 | lo);
    }
    return h[0] && h[0] != ' ' ? -1 : (int)n;
}

/* The key log (OpenSSL hands every secret it derives to it): keeps the two
 * TLS 1.3 application traffic secrets for the record layer of our own that
 * takes over after the handshake (tls13.h), and how many records were
 * written before the server's key changed to its application key (the
 * server's Finished is written by then; the session ticket comes after). */
static void keylog_cb(const SSL *ssl, const char *line)
{
    BIO *b = SSL_get_rbio(ssl);
    tls_conn *t = b ? BIO_get_data(b) : NULL;
    if (!t || t->done) return;
    unsigned char *dst;
    uint8_t bit;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) {
        dst = t->rec.rd.secret;
        bit = 1;
    } else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) {
        dst = t->rec.wr.secret;
        bit = 2;
        t->orecs_app = t->orecs;
        if (t->ohdr_have) t->secrets |= 4; /* a record half written: no count to trust */
    } else {
        return;
    }
    const char *sp = strchr(line + 24, ' '); /* after the client random */
    int n = sp ? unhex(sp + 1, dst, sizeof t->rec.rd.secret) : -1;
    if (n <= 0 || (t->seclen && n != t->seclen)) {
        t->secrets |= 4;
        return;
    }
    t->seclen = (uint8_t)n;
    t->secrets |= bit;
}

/* OpenSSL's ticket key callback: encrypt with key [0]; decrypt with the
 * key the ticket names, and renew (return 2: a new ticket follows). */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    tkey k;
    int idx = -1;
    pthread_rwlock_rdlock(&g_keys_mu);
    if (enc) {
        if (g_nkeys > 0) k = g_keys[idx = 0];
    } else {
        for (int i = 0; i < g_nkeys; i++)
            if (memcmp(key_name, g_keys[i].name, 16) == 0) {
                k = g_keys[idx = i];
                break;
            }
    }
    pthread_rwlock_unlock(&g_keys_mu);
    if (idx < 0) return enc ? -1 : 0; /* decrypt: unknown key, a full handshake follows */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.mac, sizeof k.mac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    int rc = -1;
    if (enc) {
        memcpy(key_name, k.name, 16);
        if (RAND_bytes(iv, 16) == 1 && EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
            EVP_MAC_CTX_set_params(hctx, params) == 1)
            rc = 1;
    } else if (EVP_MAC_CTX_set_params(hctx, params) == 1 &&
               EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1) {
        /* always renew: a resumed handshake also hands out a fresh ticket.
         * TLS 1.3 clients should not use a ticket twice (RFC 8446 C.4), and
         * the ticket is the server's answer to the client's Finished: without
         * it a client whose request followed its Finished in a second small
         * segment (Nagle) waited for the delayed ACK, ~40 ms per resumption */
        rc = 2;
    }
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

/* Reads SB_TLS_TICKET_KEY_FILE into keys (80 bytes per key, at most
 * TKEYS_MAX). Returns the count, or -1 with a message in err. */
static int read_ticket_file(const char *path, tkey *keys, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "SB_TLS_TICKET_KEY_FILE %.400s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char buf[TKEY_FILE_BYTES * TKEYS_MAX + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int count = (int)(n / TKEY_FILE_BYTES);
    if (n == 0 || n % TKEY_FILE_BYTES != 0 || count > TKEYS_MAX) {
        snprintf(err, errlen, "SB_TLS_TICKET_KEY_FILE %.400s: %zu bytes; expected 80 per key, 1 to %d keys (e.g. head -c 80 /dev/urandom)",
                 path, n, TKEYS_MAX);
        OPENSSL_cleanse(buf, sizeof buf);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const unsigned char *p = buf + (size_t)i * TKEY_FILE_BYTES;
        memcpy(keys[i].name, p, 16);
        memcpy(keys[i].mac, p + 16, 32);
        memcpy(keys[i].aes, p + 48, 32);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return count;
}

/* Installs keys[0..n) as the ticket keys (any thread). */
static void set_keys(const tkey *keys, int n)
{
    pthread_rwlock_wrlock(&g_keys_mu);
    memcpy(g_keys, keys, sizeof *keys * (size_t)n);
    g_nkeys = n;
    pthread_rwlock_unlock(&g_keys_mu);
}

/* Makes a new random key [0]; the previous [0] stays as [1] (decrypts and
 * renews). Returns 0 or -1. */
static int rotate_random_key(void)
{
    tkey k;
    if (RAND_bytes((unsigned char *)&k, sizeof k) != 1) return -1;
    pthread_rwlock_wrlock(&g_keys_mu);
    g_keys[1] = g_keys[0];
    g_keys[0] = k;
    g_nkeys = g_nkeys ? 2 : 1;
    pthread_rwlock_unlock(&g_keys_mu);
    OPENSSL_cleanse(&k, sizeof k);
    g_keys_born_ms = uv_hrtime() / 1000000;
    return 0;
}

static uint64_t rotate_s(void) { return g_config.tls_ticket_rotate_s ? g_config.tls_ticket_rotate_s : 3600; }

/* Builds a server context from the configured files and settings. Returns
 * it, or NULL with a message in err. */
static SSL_CTX *build_ctx(char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS: %s", ssl_err());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* idle connections give back their record buffers */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* resumption is stateless (tickets, keys shared by all reactors and, with
     * SB_TLS_TICKET_KEY_FILE, by all nodes): no per-context session cache */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_timeout(ctx, (long)(2 * rotate_s()));
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (g_config.tls13_own_records) SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    if (g_config.tls_ciphers[0] && SSL_CTX_set_cipher_list(ctx, g_config.tls_ciphers) != 1) {
        snprintf(err, errlen, "SB_TLS_CIPHERS \"%s\": %s", g_config.tls_ciphers, ssl_err());
        goto fail;
    }
    if (g_config.tls_ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, g_config.tls_ciphersuites) != 1) {
        snprintf(err, errlen, "SB_TLS_CIPHERSUITES \"%s\": %s", g_config.tls_ciphersuites, ssl_err());
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, g_config.tls_cert) != 1) {
        snprintf(err, errlen, "TLS certificate %s: %s", g_config.tls_cert, ssl_err());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, g_config.tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "TLS key %s: %s", g_config.tls_key, ssl_err());
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void sig_of(const char *path, file_sig *s)
{
    struct stat st;
    memset(s, 0, sizeof *s);
    if (!path[0] || stat(path, &st) != 0) return;
    s->exists = true;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
}

static bool sig_eq(const file_sig *a, const file_sig *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The certificate's subject, serial and expiry into a log line's fields. */
static json_t *cert_info(SSL_CTX *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    char subj[256] = "", serial[80] = "", until[64] = "";
    if (x) {
        X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof subj);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        if (hex) snprintf(serial, sizeof serial, "%s", hex);
        OPENSSL_free(hex);
        BN_free(bn);
        BIO *b = BIO_new(BIO_s_mem());
        if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
            int n = BIO_read(b, until, sizeof until - 1);
            until[n > 0 ? n : 0] = 0;
        }
        BIO_free(b);
    }
    return json_pack("{s:s,s:s,s:s}", "subject", subj, "serial", serial, "not_after", until);
}

int tls_init(void)
{
    bool cert = g_config.tls_cert[0], key = g_config.tls_key[0];
    if (!cert && !key) return 0;
    if (!cert || !key) {
        fprintf(stderr, "switchboard: SB_TLS_CERT and SB_TLS_KEY must be set together\n");
        return -1;
    }
    char err[2048];
    if (!g_bio_method) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "switchboard conn");
        if (!m || BIO_meth_set_write(m, bio_write) != 1 || BIO_meth_set_read(m, bio_read) != 1 ||
            BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
            BIO_meth_free(m);
            fprintf(stderr, "switchboard: TLS: cannot create the connection BIO\n");
            return -1;
        }
        g_bio_method = m;
    }
    if (g_config.tls13_own_records && tls13_rec_global_init() != 0) {
        fprintf(stderr, "switchboard: TLS: %s (SB_TLS13_OWN_RECORDS=0 runs without it)\n", ssl_err());
        return -1;
    }
    if (g_config.tls_ticket_key_file[0]) {
        tkey keys[TKEYS_MAX];
        int n = read_ticket_file(g_config.tls_ticket_key_file, keys, err, sizeof err);
        if (n < 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            return -1;
        }
        set_keys(keys, n);
        OPENSSL_cleanse(keys, sizeof keys);
    } else if (rotate_random_key() != 0) {
        fprintf(stderr, "switchboard: TLS: no randomness for the ticket key\n");
        return -1;
    }
    sig_of(g_config.tls_cert, &g_sig_cert);
    sig_of(g_config.tls_key, &g_sig_key);
    sig_of(g_config.tls_ticket_key_file, &g_sig_tickets);
    SSL_CTX *ctx = build_ctx(err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "switchboard: %s\n", err);
        return -1;
    }
    g_ctx = ctx;
    for (int i = 0; i < TLS_MAX_REACTORS; i++) {
        SSL_CTX_up_ref(ctx);
        g_rctx[i] = ctx;
    }
    return 0;
}

/* On reactor r's thread: r's new connections use ctx from now on. */
static void swap_task(void *arg)
{
    SSL_CTX *ctx = arg;
    reactor *r = reactor_self();
    SSL_CTX *old = g_rctx[r->id];
    g_rctx[r->id] = ctx;
    SSL_CTX_free(old); /* the connections started on it keep their own references */
}

int tls_reload(const char *reason)
{
    if (!g_ctx) return 0;
    file_sig sc, sk, st;
    sig_of(g_config.tls_cert, &sc);
    sig_of(g_config.tls_key, &sk);
    sig_of(g_config.tls_ticket_key_file, &st);
    g_sig_cert = sc; /* a pair that fails is not retried until a file changes again */
    g_sig_key = sk;
    g_sig_tickets = st;
    char err[2048];
    tkey keys[TKEYS_MAX];
    int nkeys = 0;
    if (g_config.tls_ticket_key_file[0] &&
        (nkeys = read_ticket_file(g_config.tls_ticket_key_file, keys, err, sizeof err)) < 0) {
        log_msg(LOG_ERROR, "tls_reload_failed", "reason", json_string(reason), "error", json_string(err),
                "kept", json_string("the certificate, key and ticket keys in use"), NULL);
        return -1;
    }
    SSL_CTX *ctx = build_ctx(err, sizeof err);
    if (!ctx) {
        OPENSSL_cleanse(keys, sizeof keys);
        log_msg(LOG_ERROR, "tls_reload_failed", "reason", json_string(reason), "error", json_string(err),
                "kept", json_string("the certificate, key and ticket keys in use"), NULL);
        return -1;
    }
    if (nkeys > 0) set_keys(keys, nkeys);
    OPENSSL_cleanse(keys, sizeof keys);
    for (int i = 0; i < TLS_MAX_REACTORS; i++) {
        SSL_CTX_up_ref(ctx);
        if (i < reactor_count && reactor_post(&reactor_all[i], swap_task, ctx) == 0) continue;
        if (i < reactor_count) { /* cannot reach it (out of memory): it keeps the old context */
            SSL_CTX_free(ctx);
            continue;
        }
        SSL_CTX *old = g_rctx[i]; /* no reactor reads this slot */
        g_rctx[i] = ctx;
        SSL_CTX_free(old);
    }
    SSL_CTX *old = g_ctx;
    g_ctx = ctx;
    json_t *info = cert_info(ctx);
    log_msg(LOG_INFO, "tls_reloaded", "reason", json_string(reason), "certificate", info,
            "ticket_keys", json_integer(nkeys ? nkeys : g_nkeys), NULL);
    SSL_CTX_free(old);
    return 0;
}

/* Once a second on the main loop: the file check every
 * SB_TLS_RELOAD_CHECK_S, the random ticket key's rotation. */
static void watch_cb(uv_timer_t *t)
{
    uint64_t now = uv_now(t->loop);
    if (!g_config.tls_ticket_key_file[0] && uv_hrtime() / 1000000 - g_keys_born_ms >= rotate_s() * 1000)
        rotate_random_key();
    uint64_t every = g_config.tls_reload_check_s;
    if (!every || now - g_last_check_ms < every * 1000) return;
    g_last_check_ms = now;
    file_sig sc, sk, st;
    sig_of(g_config.tls_cert, &sc);
    sig_of(g_config.tls_key, &sk);
    sig_of(g_config.tls_ticket_key_file, &st);
    if (!sig_eq(&sc, &g_sig_cert) || !sig_eq(&sk, &g_sig_key) || !sig_eq(&st, &g_sig_tickets))
        tls_reload("files_changed");
}

void tls_watch_start(uv_loop_t *loop)
{
    if (!g_ctx || g_watching) return;
    uv_timer_init(loop, &g_watch);
    g_last_check_ms = uv_now(loop);
    uv_timer_start(&g_watch, watch_cb, 1000, 1000);
    g_watching = true;
}

void tls_watch_stop(void)
{
    if (!g_watching) return;
    g_watching = false;
    uv_close((uv_handle_t *)&g_watch, NULL);
}

void tls_stats(uint64_t *full, uint64_t *resumed)
{
    *full = atomic_load(&g_full);
    *resumed = atomic_load(&g_resumed);
}

bool tls_enabled(void) { return g_ctx != NULL; }

int tls_conn_start(sb_conn *c)
{
    tls_conn *t = calloc(1, sizeof *t);
    if (!t) return -1;
    reactor *r = c->r;
    SSL_CTX *ctx = r && r->id >= 0 && r->id < TLS_MAX_REACTORS ? g_rctx[r->id] : g_ctx;
    t->ssl = SSL_new(ctx);
    BIO *bio = BIO_new(g_bio_method);
    if (!t->ssl || !bio) {
        SSL_free(t->ssl);
        BIO_free(bio);
        free(t);
        return -1;
    }
    BIO_set_data(bio, t);
    t->c = c;
    SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways: SSL_set_bio takes its one reference */
    SSL_set_accept_state(t->ssl);
    c->tls = t;
    return 0;
}

static void free_state(tls_conn *t)
{
    if (t_out_owner == t) { /* staged bytes for a connection that is gone */
        t_out_owner = NULL;
        t_out_len = 0;
    }
    if (t->ssl) {
        BIO_set_data(SSL_get_rbio(t->ssl), NULL);
        SSL_free(t->ssl); /* frees the BIO */
    }
    free(t->part);
    tls13_rec_wipe(&t->rec);
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

/* Moves the ciphertext staged in t_out for t onto the stream: written at
 * once when the socket takes it, else queued with uv_write (in order: libuv
 * refuses uv_try_write while writes are queued). Returns 0 or -1 (closed). */
static int push_out(sb_conn *c, tls_conn *t)
{
    if (t_out_owner != t || t_out_len == 0) return c->closing ? -1 : 0;
    size_t n = t_out_len;
    t_out_len = 0;
    t_out_owner = NULL;
    if (c->closing) return -1;
    size_t done = 0;
    if (t->pending == 0) {
        uv_buf_t b = uv_buf_init(t_out, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (w >= 0) done = (size_t)w;
        else if (w != UV_EAGAIN) {
            conn_close(c);
            return -1;
        }
    }
    if (done == n) return 0;
    size_t left = n - done;
    tls_wreq *q = malloc(sizeof *q + left);
    if (!q) {
        conn_close(c);
        return -1;
    }
    memcpy(q->data, t_out + done, left);
    q->c = c;
    q->len = left;
    uv_buf_t b = uv_buf_init(q->data, (unsigned)left);
    if (uv_write(&q->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
        free(q);
        conn_close(c);
        return -1;
    }
    t->pending += left;
    return 0;
}

/* Room for len more bytes of t's in t_out (what is staged there for
 * another connection goes to it first). Returns where they go (the caller
 * adds them to t_out_len), or NULL (out of memory). */
static char *out_reserve(tls_conn *t, size_t len)
{
    if (t_out_owner && t_out_owner != t && t_out_len) push_out(t_out_owner->c, t_out_owner);
    if (t_out_len + len > t_out_cap) {
        size_t cap = t_out_cap ? t_out_cap : 4 * TLS_RECORD;
        while (cap < t_out_len + len) cap *= 2;
        char *nb = realloc(t_out, cap);
        if (!nb) return NULL;
        t_out = nb;
        t_out_cap = cap;
    }
    t_out_owner = t;
    return t_out + t_out_len;
}

/* Counts the records in the handshake's output (see keylog_cb). */
static void count_records(tls_conn *t, const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (t->ohdr_have < 5) {
            t->ohdr[t->ohdr_have++] = *p++;
            n--;
            if (t->ohdr_have == 5) {
                t->orecs++;
                t->orec_left = (uint16_t)(t->ohdr[3] << 8 | t->ohdr[4]);
                if (t->orec_left == 0) t->ohdr_have = 0;
            }
            continue;
        }
        size_t k = n < t->orec_left ? n : t->orec_left;
        p += k;
        n -= k;
        t->orec_left = (uint16_t)(t->orec_left - k);
        if (t->orec_left == 0) t->ohdr_have = 0;
    }
}

static int bio_write(BIO *b, const char *data, int len)
{
    tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t || len < 0) return -1;
    char *o = out_reserve(t, (size_t)len);
    if (!o) return -1;
    memcpy(o, data, (size_t)len);
    t_out_len += (size_t)len;
    if (!t->done) count_records(t, (const unsigned char *)data, (size_t)len);
    return len;
}

/* ---- TLS 1.3 after the handshake: records of our own (tls13.h) ---- */

/* Seals one record of t's into t_out; before the 2^23rd application record
 * under one key, a KeyUpdate first. Returns 0 or -1. */
static int own_key_update(tls_conn *t);
static int own_seal(tls_conn *t, uint8_t type, const void *p, size_t n)
{
    if (type == TLS13_APPDATA && t->rec.wr.seq >= TLS13_REKEY_RECORDS && own_key_update(t) != 0) return -1;
    char *o = out_reserve(t, n + TLS13_OVERHEAD);
    if (!o) return -1;
    long w = tls13_seal(&t->rec, type, p, n, (unsigned char *)o);
    if (w < 0) return -1;
    t_out_len += (size_t)w;
    return 0;
}

/* Our KeyUpdate (update_not_requested), then our next key. */
static int own_key_update(tls_conn *t)
{
    char *o = out_reserve(t, TLS13_OVERHEAD + 5);
    long w = o ? tls13_seal_key_update(&t->rec, (unsigned char *)o) : -1;
    if (w < 0) return -1;
    t_out_len += (size_t)w;
    return 0;
}

/* A fatal alert, then the close. */
static void own_fail(sb_conn *c, tls_conn *t, int alert)
{
    const unsigned char a[2] = {2, (unsigned char)alert};
    if (log_enabled(LOG_DEBUG)) {
        char ip[48];
        conn_peer_ip(c, ip, sizeof ip);
        log_msg(LOG_DEBUG, "tls_record_failed", "peer", json_string(ip), "alert", json_integer(alert), NULL);
    }
    ERR_clear_error();
    t->failed = true;
    if (!t->shut && own_seal(t, TLS13_ALERT, a, sizeof a) == 0) push_out(c, t);
    if (!c->closing) conn_close(c);
}

/* After a finished TLS 1.3 handshake: our record layer takes over and the
 * SSL object goes. Not for TLS 1.2, another suite, a negotiated
 * max_fragment_length, or when the secrets or the server's record count are
 * not known for sure: the SSL object stays then. Returns true when it did. */
static bool go_own(tls_conn *t)
{
    SSL *ssl = t->ssl;
    const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
    SSL_SESSION *sess = SSL_get_session(ssl);
    int suite = ci ? tls13_suite_of(SSL_CIPHER_get_protocol_id(ci)) : 0;
    if (!g_config.tls13_own_records || SSL_version(ssl) != TLS1_3_VERSION || !suite || t->secrets != 3 ||
        t->ohdr_have || SSL_has_pending(ssl) || !sess ||
        SSL_SESSION_get_max_fragment_length(sess) != TLSEXT_max_fragment_length_DISABLED) {
        tls13_rec_wipe(&t->rec);
        return false;
    }
    unsigned char cs[48], ss[48];
    memcpy(cs, t->rec.rd.secret, sizeof cs);
    memcpy(ss, t->rec.wr.secret, sizeof ss);
    int rc = tls13_rec_init(&t->rec, suite, cs, ss, t->seclen, t->orecs - t->orecs_app);
    OPENSSL_cleanse(cs, sizeof cs);
    OPENSSL_cleanse(ss, sizeof ss);
    if (rc != 0) return false;
    BIO_set_data(SSL_get_rbio(ssl), NULL);
    SSL_free(ssl);
    t->ssl = NULL;
    t->own = true;
    return true;
}

/* One whole received record: application data to the protocol, the
 * client's KeyUpdate, or its alert (close_notify or an error: the end).
 * Returns 0, or -1 when the connection is closing. */
static int own_record(sb_conn *c, tls_conn *t, const unsigned char *rec, size_t n)
{
    uint8_t type = 0;
    int alert = TLS13_A_BAD_MAC;
    long m = tls13_open(&t->rec, rec, n, t_open, &type, &alert);
    if (m < 0) {
        own_fail(c, t, alert);
        return -1;
    }
    if (type == TLS13_APPDATA) {
        if (m > 0 && !c->draining) c->h->on_data(c, (const char *)t_open, (size_t)m);
        return 0;
    }
    if (type == TLS13_ALERT) { /* close_notify or the peer's error: either ends it, as with SSL_read */
        conn_close(c);
        return -1;
    }
    int rc = type == TLS13_HANDSHAKE ? tls13_on_handshake(&t->rec, t_open, (size_t)m, &alert) : -1;
    if (type != TLS13_HANDSHAKE) alert = TLS13_A_UNEXPECTED;
    if (rc == 1 && !t->shut && own_key_update(t) != 0) {
        alert = TLS13_A_INTERNAL;
        rc = -1;
    }
    if (rc < 0) {
        own_fail(c, t, alert);
        return -1;
    }
    return 0;
}

/* Ciphertext received on an own connection: whole records are opened where
 * they lie, a record in pieces is gathered in t->part first. */
static void own_read(sb_conn *c, tls_conn *t)
{
    while (t->inlen > 0 && !c->closing && !t->dead && !t->failed) {
        const unsigned char *in = (const unsigned char *)t->in;
        int alert = TLS13_A_DECODE;
        long need;
        if (t->partlen == 0 && t->inlen >= TLS13_HDR) {
            if ((need = tls13_record_len(in, t->inlen, &alert)) < 0) {
                own_fail(c, t, alert);
                return;
            }
            if (t->inlen >= (size_t)need) {
                t->in += need;
                t->inlen -= (size_t)need;
                if (own_record(c, t, in, (size_t)need) != 0) return;
                continue;
            }
        }
        if (!t->part && !(t->part = malloc(TLS13_MAX_RECORD))) {
            conn_close(c);
            return;
        }
        size_t want = TLS13_HDR;
        if (t->partlen >= TLS13_HDR) {
            if ((need = tls13_record_len(t->part, t->partlen, &alert)) < 0) {
                own_fail(c, t, alert);
                return;
            }
            want = (size_t)need;
        }
        size_t k = want - t->partlen < t->inlen ? want - t->partlen : t->inlen;
        memcpy(t->part + t->partlen, t->in, k);
        t->partlen += (uint32_t)k;
        t->in += k;
        t->inlen -= k;
        if (t->partlen < TLS13_HDR || t->partlen < want) continue;
        if (want == TLS13_HDR) continue; /* the header is complete: its length next */
        t->partlen = 0;
        int rc = own_record(c, t, t->part, want);
        free(t->part); /* an idle connection holds no buffer */
        t->part = NULL;
        if (rc != 0) return;
    }
}

static int bio_read(BIO *b, char *out, int len)
{
    tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t || len <= 0) return 0;
    if (t->inlen == 0) { /* "wait for more" */
        BIO_set_retry_read(b);
        return -1;
    }
    size_t k = t->inlen < (size_t)len ? t->inlen : (size_t)len;
    memcpy(out, t->in, k);
    t->in += k;
    t->inlen -= k;
    return (int)k;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    tls_conn *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t ? (long)t->inlen : 0;
    case BIO_CTRL_WPENDING:
        return t && t_out_owner == t ? (long)t_out_len : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
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
    t->in = data;
    t->inlen = len;
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
        atomic_fetch_add(SSL_session_reused(t->ssl) ? &g_resumed : &g_full, 1);
        if (push_out(c, t) != 0) goto out;
        go_own(t);
        /* the handshake's buffers (and with own records the SSL object) are
         * free now: after a burst of handshakes, a quiet second gives the
         * pages back (conn.c's trim), else a burst of N concurrent handshakes
         * keeps ~30 KB each of free arena as RSS */
        reactor_trim_hint(TLS_HANDSHAKE_FREED);
        conn_mark_dirty(c); /* anything queued meanwhile can go now */
    }
    if (t->own) {
        own_read(c, t);
        if (!t->dead && !c->closing) push_out(c, t); /* e.g. our KeyUpdate */
        goto out;
    }
    /* Every plaintext byte is handed up at once (the layers above buffer
     * within their own limits), so nothing waits in the BIO for a read
     * callback that a paused socket would never make. */
    for (int guard = 0; guard < 4096 && !c->closing && !t->dead; guard++) {
        int n = SSL_read(t->ssl, t_plain, sizeof t_plain);
        if (n > 0) {
            if (push_out(c, t) != 0) break; /* anything SSL_read wrote goes first */
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
    if (!t->dead && !c->closing) push_out(c, t); /* e.g. a TLS 1.3 key update */
out:
    t->in = NULL; /* the caller's bytes: never read after this call */
    t->inlen = 0;
    t->in_read = false;
    if (t_out_owner == t && (t->dead || c->closing)) { /* nowhere to send it */
        t_out_owner = NULL;
        t_out_len = 0;
    }
    if (t->dead) free_state(t);
}

int tls_try_write(sb_conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    tls_conn *t = c->tls;
    if (!t || t->failed || t->shut) return UV_EPIPE;
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
                int w = t->own ? (own_seal(t, TLS13_APPDATA, t_plain, staged) == 0 ? 1 : -1)
                               : SSL_write(t->ssl, t_plain, (int)staged);
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
    return (int)taken;
}

void tls_close_notify(sb_conn *c)
{
    tls_conn *t = c->tls;
    if (!t || !t->done || t->failed || t->shut) return;
    if (t->own) {
        static const unsigned char cn[2] = {1, TLS13_A_CLOSE_NOTIFY};
        if (own_seal(t, TLS13_ALERT, cn, sizeof cn) != 0) ERR_clear_error();
    } else if (SSL_shutdown(t->ssl) < 0) {
        ERR_clear_error();
    }
    t->shut = true;
    push_out(c, t);
}

bool tls_sweep(sb_conn *c, uint64_t now)
{
    tls_conn *t = c->tls;
    if (!t || t->done || t->failed || now - c->mark_ms <= g_config.tls_handshake_ms) return false;
    conn_close(c); /* a stalled handshake */
    return true;
}
