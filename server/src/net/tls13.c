/* tls13.c — TLS 1.3 records without the SSL object (see tls13.h). */
#include "net/tls13.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

static EVP_CIPHER *g_cipher[4]; /* by suite index */
static EVP_MAC *g_hmac;
static _Thread_local EVP_CIPHER_CTX *t_cctx;  /* keyed again for every record */
static _Thread_local EVP_MAC_CTX *t_hmac[3];  /* by hash: [1] SHA-256, [2] SHA-384 */

static const char *const cipher_name[4] = {NULL, "AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305"};
static const char *const hash_name[4] = {NULL, "SHA256", "SHA384", "SHA256"};
static const size_t key_len[4] = {0, 16, 32, 32};
static const size_t hash_len[4] = {0, 32, 48, 32};

int tls13_rec_global_init(void)
{
    if (g_hmac) return 0;
    /* a cipher the providers lack (e.g. ChaCha20 under FIPS) is left to the
     * SSL object: tls13_suite_of says 0 for it */
    for (int i = 1; i < 4; i++) g_cipher[i] = EVP_CIPHER_fetch(NULL, cipher_name[i], NULL);
    ERR_clear_error();
    g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return g_hmac ? 0 : -1;
}

int tls13_suite_of(uint16_t iana_id)
{
    int s = iana_id >= 0x1301 && iana_id <= 0x1303 ? iana_id - 0x1300 : 0;
    return s && g_cipher[s] ? s : 0;
}

/* This thread's HMAC context for the suite's hash (made once: a fetch by
 * name per derivation cost ~20 us per handshake). */
static EVP_MAC_CTX *hmac_ctx(int suite)
{
    int h = suite == 2 ? 2 : 1;
    if (!t_hmac[h]) {
        EVP_MAC_CTX *m = EVP_MAC_CTX_new(g_hmac);
        OSSL_PARAM p[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)hash_name[suite], 0),
            OSSL_PARAM_construct_end(),
        };
        if (!m || EVP_MAC_CTX_set_params(m, p) != 1) {
            EVP_MAC_CTX_free(m);
            return NULL;
        }
        t_hmac[h] = m;
    }
    return t_hmac[h];
}

/* HKDF-Expand-Label(secret, label, "", outlen) (RFC 8446 7.1). Every
 * output here is at most the hash's length: HKDF-Expand's first block,
 * HMAC(secret, HkdfLabel || 0x01), truncated (RFC 5869 2.3). */
static int expand_label(int suite, const unsigned char *secret, const char *label, unsigned char *out,
                        size_t outlen)
{
    unsigned char info[2 + 1 + 6 + 16 + 1 + 1];
    size_t ll = strlen(label);
    if (ll > 16) return -1;
    info[0] = (unsigned char)(outlen >> 8);
    info[1] = (unsigned char)outlen;
    info[2] = (unsigned char)(6 + ll);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, ll);
    info[9 + ll] = 0;  /* empty context */
    info[10 + ll] = 1; /* the block counter */
    EVP_MAC_CTX *m = hmac_ctx(suite);
    unsigned char block[48];
    size_t n = 0;
    if (!m || outlen > hash_len[suite] || EVP_MAC_init(m, secret, hash_len[suite], NULL) != 1 ||
        EVP_MAC_update(m, info, 11 + ll) != 1 || EVP_MAC_final(m, block, &n, sizeof block) != 1 ||
        n != hash_len[suite])
        return -1;
    memcpy(out, block, outlen);
    OPENSSL_cleanse(block, sizeof block);
    return 0;
}

static int derive_dir(int suite, tls13_dir *d)
{
    if (expand_label(suite, d->secret, "key", d->key, key_len[suite]) != 0 ||
        expand_label(suite, d->secret, "iv", d->iv, sizeof d->iv) != 0)
        return -1;
    return 0;
}

int tls13_rec_init(tls13_rec *r, int suite, const unsigned char *client_secret,
                   const unsigned char *server_secret, size_t secret_len, uint64_t wseq)
{
    memset(r, 0, sizeof *r);
    if (suite < 1 || suite > 3 || secret_len != hash_len[suite] || !g_hmac || !g_cipher[suite]) return -1;
    r->suite = (uint8_t)suite;
    memcpy(r->rd.secret, client_secret, secret_len);
    memcpy(r->wr.secret, server_secret, secret_len);
    r->wr.seq = wseq;
    if (derive_dir(suite, &r->rd) != 0 || derive_dir(suite, &r->wr) != 0) {
        tls13_rec_wipe(r);
        return -1;
    }
    return 0;
}

void tls13_rec_wipe(tls13_rec *r) { OPENSSL_cleanse(r, sizeof *r); }

int tls13_next_key(tls13_rec *r, tls13_dir *d)
{
    int s = r->suite;
    unsigned char next[48];
    if (expand_label(s, d->secret, "traffic upd", next, hash_len[s]) != 0) return -1;
    memcpy(d->secret, next, hash_len[s]);
    OPENSSL_cleanse(next, sizeof next);
    d->seq = 0;
    return derive_dir(s, d);
}

/* The per-record nonce: the IV xor the sequence number (RFC 8446 5.3). */
static void nonce_of(const tls13_dir *d, unsigned char nonce[12])
{
    memcpy(nonce, d->iv, 12);
    for (int i = 0; i < 8; i++) nonce[11 - i] ^= (unsigned char)(d->seq >> (8 * i));
}

static EVP_CIPHER_CTX *cctx(void)
{
    if (!t_cctx) t_cctx = EVP_CIPHER_CTX_new();
    return t_cctx;
}

long tls13_seal(tls13_rec *r, uint8_t type, const unsigned char *in, size_t len, unsigned char *out)
{
    tls13_dir *d = &r->wr;
    EVP_CIPHER_CTX *x = cctx();
    if (!x || r->suite == 0 || len > TLS13_MAX_PLAIN || d->seq == UINT64_MAX) return -1;
    size_t body = len + 1 + TLS13_TAG;
    out[0] = TLS13_APPDATA; /* opaque_type */
    out[1] = 3;
    out[2] = 3;
    out[3] = (unsigned char)(body >> 8);
    out[4] = (unsigned char)body;
    unsigned char nonce[12];
    nonce_of(d, nonce);
    int n1 = 0, n2 = 0, n3 = 0, na = 0;
    unsigned char *p = out + TLS13_HDR;
    if (EVP_EncryptInit_ex2(x, g_cipher[r->suite], d->key, nonce, NULL) != 1 ||
        EVP_EncryptUpdate(x, NULL, &na, out, TLS13_HDR) != 1 ||
        EVP_EncryptUpdate(x, p, &n1, in, (int)len) != 1 ||
        EVP_EncryptUpdate(x, p + n1, &n2, &type, 1) != 1 ||
        EVP_EncryptFinal_ex(x, p + n1 + n2, &n3) != 1 || (size_t)(n1 + n2 + n3) != len + 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, TLS13_TAG, p + len + 1) != 1)
        return -1;
    d->seq++;
    return (long)(TLS13_HDR + body);
}

long tls13_record_len(const unsigned char *p, size_t n, int *alert)
{
    if (n < TLS13_HDR) return -1;
    size_t body = (size_t)p[3] << 8 | p[4];
    if (p[0] != TLS13_APPDATA) { /* no plaintext records after the handshake (nor change_cipher_spec) */
        *alert = TLS13_A_UNEXPECTED;
        return -1;
    }
    if (body > TLS13_MAX_CIPHER) {
        *alert = TLS13_A_OVERFLOW;
        return -1;
    }
    if (body < 1 + TLS13_TAG) {
        *alert = TLS13_A_BAD_MAC;
        return -1;
    }
    return (long)(TLS13_HDR + body);
}

long tls13_open(tls13_rec *r, const unsigned char *rec, size_t len, unsigned char *out, uint8_t *type,
                int *alert)
{
    tls13_dir *d = &r->rd;
    EVP_CIPHER_CTX *x = cctx();
    *alert = TLS13_A_BAD_MAC;
    if (!x || r->suite == 0 || len < TLS13_HDR + 1 + TLS13_TAG || len > TLS13_MAX_RECORD ||
        d->seq == UINT64_MAX)
        return -1;
    size_t clen = len - TLS13_HDR - TLS13_TAG;
    unsigned char nonce[12];
    nonce_of(d, nonce);
    int n1 = 0, n2 = 0, na = 0;
    if (EVP_DecryptInit_ex2(x, g_cipher[r->suite], d->key, nonce, NULL) != 1 ||
        EVP_DecryptUpdate(x, NULL, &na, rec, TLS13_HDR) != 1 ||
        EVP_DecryptUpdate(x, out, &n1, rec + TLS13_HDR, (int)clen) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, TLS13_TAG, (void *)(rec + len - TLS13_TAG)) != 1 ||
        EVP_DecryptFinal_ex(x, out + n1, &n2) != 1 || (size_t)(n1 + n2) != clen)
        return -1; /* the tag did not verify */
    d->seq++;
    /* TLSInnerPlaintext: content, the type, then zeros */
    size_t i = clen;
    while (i > 0 && out[i - 1] == 0) i--;
    if (i == 0) {
        *alert = TLS13_A_UNEXPECTED;
        return -1;
    }
    *type = out[i - 1];
    if (i - 1 > TLS13_MAX_PLAIN) {
        *alert = TLS13_A_OVERFLOW;
        return -1;
    }
    return (long)(i - 1);
}

int tls13_on_handshake(tls13_rec *r, const unsigned char *msg, size_t len, int *alert)
{
    /* the only handshake message a client sends after the handshake (we ask
     * for no post-handshake authentication): KeyUpdate, alone in its record
     * (it may not share one with what follows the key change) */
    if (len != 5 || msg[0] != 24 || msg[1] != 0 || msg[2] != 0 || msg[3] != 1) {
        *alert = len >= 1 && msg[0] == 24 ? TLS13_A_DECODE : TLS13_A_UNEXPECTED;
        return -1;
    }
    if (msg[4] > 1) {
        *alert = TLS13_A_ILLEGAL;
        return -1;
    }
    if (tls13_next_key(r, &r->rd) != 0) {
        *alert = TLS13_A_INTERNAL;
        return -1;
    }
    return msg[4]; /* update_requested: ours must follow */
}

long tls13_seal_key_update(tls13_rec *r, unsigned char *out)
{
    static const unsigned char ku[5] = {24, 0, 0, 1, 0}; /* update_not_requested */
    long n = tls13_seal(r, TLS13_HANDSHAKE, ku, sizeof ku, out);
    if (n < 0 || tls13_next_key(r, &r->wr) != 0) return -1;
    return n;
}
