/* fuzz_tls13.c — libFuzzer target: the records a TLS 1.3 client sends after
 * a real handshake, i.e. the server's own record layer (net/tls13.c and
 * tls.c's own_read: records in pieces, inner types and padding, KeyUpdate,
 * alerts, refused records). An in-process OpenSSL client makes the
 * handshake with the server; then the input is a list of records the client
 * sends, sealed with the client's keys (net/tls13.c with the roles swapped)
 * so that the fuzzer reaches what lies behind the tag check.
 * Input: byte 0 = suite (% 3) and chunk size seed (the rest of the byte);
 * then ops, each a byte `op` and a length byte n, then n bytes:
 *   op % 4 == 0: an application_data record with these bytes as its inner
 *               plaintext (content, type, padding: as the fuzzer chose)
 *   op % 4 == 1: these bytes raw, unencrypted (headers, garbage)
 *   op % 4 == 2: a KeyUpdate (update_requested when op & 4), our key moves on
 *   op % 4 == 3: an HTTP request line and headers as application data */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_env.h"
#include "net/tls13.h"

static BIO *g_cin; /* the client's input: what the server writes, during the handshake */
static void tap(const char *data, size_t len)
{
    if (g_cin) BIO_write(g_cin, data, (int)len);
}

typedef struct secrets {
    unsigned char c[48], s[48];
    int clen, slen;
} secrets;

static void keylog(const SSL *ssl, const char *line)
{
    secrets *k = SSL_get_app_data(ssl);
    const char *sp = strrchr(line, ' ');
    unsigned char *dst = NULL;
    int *len = NULL;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) dst = k->c, len = &k->clen;
    if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) dst = k->s, len = &k->slen;
    if (!dst || !sp) return;
    long n = 0;
    unsigned char *b = OPENSSL_hexstr2buf(sp + 1, &n);
    if (b && n > 0 && n <= 48) {
        memcpy(dst, b, (size_t)n);
        *len = (int)n;
    }
    OPENSSL_free(b);
}

static SSL_CTX *client_ctx(int suite)
{
    static SSL_CTX *ctx[3];
    static const char *const names[3] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                         "TLS_CHACHA20_POLY1305_SHA256"};
    if (!ctx[suite]) {
        SSL_CTX *c = SSL_CTX_new(TLS_client_method());
        if (!c || SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) != 1 ||
            SSL_CTX_set_ciphersuites(c, names[suite]) != 1)
            abort();
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_keylog_callback(c, keylog);
        ctx[suite] = c;
    }
    return ctx[suite];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    fz_init();
    if (!ready) {
        fz_tls_cert();
        fz_tap(tap);
        ready = true;
    }
    if (size < 1) return 0;
    int suite = data[0] % 3;
    uint8_t chunk = (uint8_t)(data[0] / 3);
    secrets k = {0};
    SSL *cl = SSL_new(client_ctx(suite));
    BIO *cin = BIO_new(BIO_s_mem()), *cout = BIO_new(BIO_s_mem());
    if (!cl || !cin || !cout) abort();
    SSL_set_bio(cl, cin, cout);
    SSL_set_app_data(cl, &k);
    SSL_set_connect_state(cl);
    g_cin = cin;
    fz_open(false);
    int done = 0;
    for (int i = 0; i < 8 && !done && fz_is_open(); i++) {
        done = SSL_do_handshake(cl) == 1;
        char buf[16384];
        int n;
        while ((n = BIO_read(cout, buf, sizeof buf)) > 0) fz_send(buf, (size_t)n);
    }
    g_cin = NULL;
    tls13_rec r; /* the client's side: rd = the server's records, wr = ours */
    if (done && k.clen > 0 && k.clen == k.slen &&
        tls13_rec_init(&r, suite + 1, k.s, k.c, (size_t)k.clen, 0) == 0) {
        static unsigned char rec[TLS13_MAX_RECORD];
        size_t i = 1;
        while (i + 2 <= size && fz_is_open()) {
            uint8_t op = data[i], n = data[i + 1];
            i += 2;
            if (i + n > size) n = (uint8_t)(size - i);
            const uint8_t *p = data + i;
            i += n;
            long len = -1;
            if (op % 4 == 0 && n > 0) { /* inner plaintext = p: content, type, zeros as given */
                len = tls13_seal(&r, p[n - 1], p, n - 1u, rec);
            } else if (op % 4 == 1) {
                fz_send_chunked(p, n, chunk);
                continue;
            } else if (op % 4 == 2) {
                const unsigned char ku[5] = {24, 0, 0, 1, (unsigned char)((op & 4) ? 1 : 0)};
                len = tls13_seal(&r, TLS13_HANDSHAKE, ku, sizeof ku, rec);
                if (len > 0 && tls13_next_key(&r, &r.wr) != 0) len = -1;
            } else if (op % 4 == 3) {
                char req[600];
                int m = snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\nX: %.*s\r\n\r\n", (int)n,
                                 (const char *)p);
                len = tls13_seal(&r, TLS13_APPDATA, (const unsigned char *)req, (size_t)m, rec);
            }
            if (len > 0) fz_send_chunked(rec, (size_t)len, chunk);
        }
        tls13_rec_wipe(&r);
    }
    fz_close();
    SSL_free(cl);
    ERR_clear_error();
    return 0;
}
