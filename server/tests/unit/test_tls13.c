/* Unit tests for net/tls13.c: OpenSSL's client against our record layer
 * after a real TLS 1.3 handshake (in memory), for each of the three suites:
 * data both ways, the client's KeyUpdate (with and without a request for
 * ours), ours, close_notify, and the records that must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include "net/tls13.h"

static EVP_PKEY *g_key;
static X509 *g_cert;

typedef struct hs {
    unsigned char cs[48], ss[48];
    int clen, slen;
} hs;

static int unhex(const char *h, unsigned char *out)
{
    int n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1) return -1;
        out[n++] = (unsigned char)v;
    }
    return n;
}

static void keylog(const SSL *ssl, const char *line)
{
    hs *h = SSL_get_app_data(ssl);
    const char *sp = strrchr(line, ' ');
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) h->clen = unhex(sp + 1, h->cs);
    if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) h->slen = unhex(sp + 1, h->ss);
}

static int setup(void **st)
{
    g_key = EVP_EC_gen("P-256");
    g_cert = X509_new();
    X509_set_version(g_cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(g_cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(g_cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(g_cert), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(g_cert), "CN", MBSTRING_ASC, (const unsigned char *)"t", -1,
                               -1, 0);
    X509_set_issuer_name(g_cert, X509_get_subject_name(g_cert));
    X509_set_pubkey(g_cert, g_key);
    X509_sign(g_cert, g_key, EVP_sha256());
    return tls13_rec_global_init();
}

static int teardown(void **st)
{
    X509_free(g_cert);
    EVP_PKEY_free(g_key);
    return 0;
}

/* Moves what is in `from` to a buffer (the ciphertext on the wire). */
static size_t drain(BIO *from, unsigned char *buf, size_t cap)
{
    int n = BIO_read(from, buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

typedef struct pair {
    SSL *cli;
    BIO *c2s, *s2c; /* the client's output, the client's input */
    tls13_rec rec;
} pair;

/* A full handshake with `suite`; the server's SSL object is gone at the end,
 * as in tls.c, and rec carries on. */
static void handshake(pair *p, const char *suite, int suite_idx)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(sctx);
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_set_ciphersuites(sctx, suite), 1);
    assert_int_equal(SSL_CTX_set_ciphersuites(cctx, suite), 1);
    SSL_CTX_use_certificate(sctx, g_cert);
    SSL_CTX_use_PrivateKey(sctx, g_key);
    SSL_CTX_set_num_tickets(sctx, 1);
    SSL_CTX_set_keylog_callback(sctx, keylog);
    SSL *srv = SSL_new(sctx);
    p->cli = SSL_new(cctx);
    hs h = {0};
    SSL_set_app_data(srv, &h);
    p->c2s = BIO_new(BIO_s_mem());
    p->s2c = BIO_new(BIO_s_mem());
    BIO *sin = BIO_new(BIO_s_mem()), *sout = BIO_new(BIO_s_mem());
    SSL_set_bio(p->cli, p->s2c, p->c2s);
    BIO_up_ref(p->s2c);
    BIO_up_ref(p->c2s);
    SSL_set_bio(srv, sin, sout);
    SSL_set_connect_state(p->cli);
    SSL_set_accept_state(srv);
    static unsigned char buf[65536];
    int sdone = 0;
    for (int i = 0; i < 10 && !sdone; i++) {
        SSL_do_handshake(p->cli);
        size_t n = drain(p->c2s, buf, sizeof buf);
        BIO_write(sin, buf, (int)n);
        sdone = SSL_do_handshake(srv) == 1;
        n = drain(sout, buf, sizeof buf);
        BIO_write(p->s2c, buf, (int)n); /* the last flight: the ticket */
    }
    assert_true(sdone);
    assert_int_equal(SSL_do_handshake(p->cli), 1);
    assert_int_equal(SSL_has_pending(srv), 0);
    assert_int_equal(h.clen, h.slen);
    /* one record (the session ticket) sent under the server's application key */
    assert_int_equal(tls13_rec_init(&p->rec, suite_idx, h.cs, h.ss, (size_t)h.clen, 1), 0);
    SSL_free(srv);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

/* The next record the client wrote: opened, its type and content checked. */
static void expect(pair *p, uint8_t want_type, const char *want, size_t want_len)
{
    unsigned char rec[TLS13_MAX_RECORD], out[TLS13_MAX_CIPHER];
    int alert = -1;
    assert_int_equal(BIO_read(p->c2s, rec, TLS13_HDR), TLS13_HDR);
    long len = tls13_record_len(rec, TLS13_HDR, &alert);
    assert_true(len > TLS13_HDR);
    assert_int_equal(BIO_read(p->c2s, rec + TLS13_HDR, (int)(len - TLS13_HDR)), len - TLS13_HDR);
    uint8_t type = 0;
    long n = tls13_open(&p->rec, rec, (size_t)len, out, &type, &alert);
    assert_int_equal(n, (long)want_len);
    assert_int_equal(type, want_type);
    assert_memory_equal(out, want, want_len);
}

/* We send `msg`; the client reads it. */
static void send_to_client(pair *p, const char *msg)
{
    unsigned char rec[TLS13_MAX_RECORD];
    long n = tls13_seal(&p->rec, TLS13_APPDATA, (const unsigned char *)msg, strlen(msg), rec);
    assert_int_equal(n, (long)(strlen(msg) + TLS13_OVERHEAD));
    BIO_write(p->s2c, rec, (int)n);
    char got[64];
    int r = SSL_read(p->cli, got, sizeof got);
    assert_int_equal(r, (int)strlen(msg));
    assert_memory_equal(got, msg, strlen(msg));
}

static void run_suite(const char *suite, int idx)
{
    pair p;
    handshake(&p, suite, idx);
    assert_int_equal(SSL_write(p.cli, "hello", 5), 5);
    expect(&p, TLS13_APPDATA, "hello", 5);
    send_to_client(&p, "world"); /* after the ticket: the sequence number was right */

    /* a full-size record */
    static char big[TLS13_MAX_PLAIN];
    memset(big, 'x', sizeof big);
    assert_int_equal(SSL_write(p.cli, big, sizeof big), (int)sizeof big);
    expect(&p, TLS13_APPDATA, big, sizeof big);

    /* the client's KeyUpdate asking for ours */
    assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_write(p.cli, "after", 5), 5);
    unsigned char rec[TLS13_MAX_RECORD], out[TLS13_MAX_CIPHER];
    int alert = -1;
    uint8_t type = 0;
    int n = BIO_read(p.c2s, rec, sizeof rec); /* the KeyUpdate record, then "after" */
    long l1 = tls13_record_len(rec, (size_t)n, &alert);
    assert_int_equal(l1, TLS13_OVERHEAD + 5);
    long m = tls13_open(&p.rec, rec, (size_t)l1, out, &type, &alert);
    assert_int_equal(m, 5);
    assert_int_equal(type, TLS13_HANDSHAKE);
    assert_int_equal(tls13_on_handshake(&p.rec, out, 5, &alert), 1);
    unsigned char ku[TLS13_OVERHEAD + 5];
    assert_int_equal(tls13_seal_key_update(&p.rec, ku), (long)sizeof ku);
    BIO_write(p.s2c, ku, sizeof ku);
    long l2 = tls13_record_len(rec + l1, (size_t)(n - l1), &alert);
    assert_int_equal(l1 + l2, n);
    m = tls13_open(&p.rec, rec + l1, (size_t)l2, out, &type, &alert);
    assert_int_equal(m, 5);
    assert_memory_equal(out, "after", 5);
    send_to_client(&p, "both keys new");

    /* the client's KeyUpdate without a request; then ours on our own */
    assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    assert_int_equal(SSL_write(p.cli, "x", 1), 1);
    n = BIO_read(p.c2s, rec, sizeof rec);
    l1 = tls13_record_len(rec, (size_t)n, &alert);
    m = tls13_open(&p.rec, rec, (size_t)l1, out, &type, &alert);
    assert_int_equal(tls13_on_handshake(&p.rec, out, (size_t)m, &alert), 0);
    m = tls13_open(&p.rec, rec + l1, (size_t)(n - l1), out, &type, &alert);
    assert_int_equal(m, 1);
    assert_int_equal(tls13_seal_key_update(&p.rec, ku), (long)sizeof ku);
    BIO_write(p.s2c, ku, sizeof ku);
    send_to_client(&p, "our key new");
    for (int i = 0; i < 3; i++) send_to_client(&p, "and on");

    /* a flipped bit: the tag fails, and nothing is handed out */
    assert_int_equal(SSL_write(p.cli, "tamper", 6), 6);
    n = BIO_read(p.c2s, rec, sizeof rec);
    rec[TLS13_HDR + 2] ^= 1;
    assert_int_equal(tls13_open(&p.rec, rec, (size_t)n, out, &type, &alert), -1);
    assert_int_equal(alert, TLS13_A_BAD_MAC);

    SSL_free(p.cli);
    BIO_free(p.c2s);
    BIO_free(p.s2c);
    tls13_rec_wipe(&p.rec);
}

static void test_aes128gcm(void **st) { run_suite("TLS_AES_128_GCM_SHA256", 1); }
static void test_aes256gcm(void **st) { run_suite("TLS_AES_256_GCM_SHA384", 2); }
static void test_chacha20(void **st) { run_suite("TLS_CHACHA20_POLY1305_SHA256", 3); }

static void test_close_notify_and_replay(void **st)
{
    pair p;
    handshake(&p, "TLS_AES_128_GCM_SHA256", 1);
    assert_int_equal(SSL_write(p.cli, "one", 3), 3);
    unsigned char rec[TLS13_MAX_RECORD], out[TLS13_MAX_CIPHER];
    int n = BIO_read(p.c2s, rec, sizeof rec), alert = -1;
    uint8_t type = 0;
    assert_int_equal(tls13_open(&p.rec, rec, (size_t)n, out, &type, &alert), 3);
    /* the same record again: the sequence number moved on, it does not open */
    assert_int_equal(tls13_open(&p.rec, rec, (size_t)n, out, &type, &alert), -1);
    assert_int_equal(alert, TLS13_A_BAD_MAC);
    tls13_rec_wipe(&p.rec);
    SSL_free(p.cli);
    BIO_free(p.c2s);
    BIO_free(p.s2c);

    handshake(&p, "TLS_AES_128_GCM_SHA256", 1);
    SSL_shutdown(p.cli);
    static const char cn[2] = {1, 0};
    expect(&p, TLS13_ALERT, cn, 2);
    tls13_rec_wipe(&p.rec);
    SSL_free(p.cli);
    BIO_free(p.c2s);
    BIO_free(p.s2c);
}

static void test_headers_and_handshake_messages(void **st)
{
    int alert = -1;
    unsigned char h[5] = {22, 3, 3, 0, 40}; /* a plaintext handshake record */
    assert_int_equal(tls13_record_len(h, 5, &alert), -1);
    assert_int_equal(alert, TLS13_A_UNEXPECTED);
    unsigned char ccs[5] = {20, 3, 3, 0, 1};
    assert_int_equal(tls13_record_len(ccs, 5, &alert), -1);
    unsigned char big[5] = {23, 3, 3, (TLS13_MAX_CIPHER + 1) >> 8, (TLS13_MAX_CIPHER + 1) & 0xff};
    assert_int_equal(tls13_record_len(big, 5, &alert), -1);
    assert_int_equal(alert, TLS13_A_OVERFLOW);
    unsigned char max[5] = {23, 3, 3, TLS13_MAX_CIPHER >> 8, TLS13_MAX_CIPHER & 0xff};
    assert_int_equal(tls13_record_len(max, 5, &alert), TLS13_MAX_RECORD);
    unsigned char tiny[5] = {23, 3, 3, 0, 16}; /* shorter than a tag and a type */
    assert_int_equal(tls13_record_len(tiny, 5, &alert), -1);
    assert_int_equal(tls13_record_len(max, 4, &alert), -1); /* header not complete */

    tls13_rec r;
    unsigned char s[32] = {1};
    assert_int_equal(tls13_rec_init(&r, 1, s, s, 32, 0), 0);
    static const unsigned char ticket[8] = {4, 0, 0, 4, 0, 0, 0, 0}; /* NewSessionTicket from a client */
    assert_int_equal(tls13_on_handshake(&r, ticket, sizeof ticket, &alert), -1);
    assert_int_equal(alert, TLS13_A_UNEXPECTED);
    static const unsigned char bad[5] = {24, 0, 0, 1, 2}; /* request_update out of range */
    assert_int_equal(tls13_on_handshake(&r, bad, 5, &alert), -1);
    assert_int_equal(alert, TLS13_A_ILLEGAL);
    static const unsigned char two[10] = {24, 0, 0, 1, 0, 24, 0, 0, 1, 0}; /* two in one record */
    assert_int_equal(tls13_on_handshake(&r, two, 10, &alert), -1);
    assert_int_equal(alert, TLS13_A_DECODE);
    static const unsigned char frag[3] = {24, 0, 0}; /* fragmented */
    assert_int_equal(tls13_on_handshake(&r, frag, 3, &alert), -1);
    assert_int_equal(tls13_suite_of(0x1304), 0); /* CCM: not ours, the SSL object stays */
    assert_int_equal(tls13_rec_init(&r, 2, s, s, 32, 0), -1); /* SHA-384 suite: 48-byte secrets */
    tls13_rec_wipe(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aes128gcm),
        cmocka_unit_test(test_aes256gcm),
        cmocka_unit_test(test_chacha20),
        cmocka_unit_test(test_close_notify_and_replay),
        cmocka_unit_test(test_headers_and_handshake_messages),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
