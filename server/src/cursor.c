/* cursor.c — signed sync cursors (see cursor.h). */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: a keyed state copied by value (cursor_mac) */
#include "cursor.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <string.h>
#include "token.h"

#define CUR_VERSION 1
#define CUR_BODY 21 /* version + tx + id + issued_at */
#define CUR_MAC 16
#define CUR_BYTES (CUR_BODY + CUR_MAC)
#define CUR_DOMAIN "sbcur1"

int sync_pos_cmp(sync_pos a, sync_pos b)
{
    if (a.tx != b.tx) return a.tx < b.tx ? -1 : 1;
    if (a.id != b.id) return a.id < b.id ? -1 : 1;
    return 0;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* HMAC-SHA256 keyed once per thread: the inner and outer states after the
 * padded key, copied by value for each MAC (two compressions per cursor
 * instead of the four and the lookups of a one-shot HMAC()). The key is
 * the server secret, the same for every call; a different one rekeys. */
#define MAC_KEY_MAX 128
typedef struct mac_key {
    bool set;
    size_t len;
    uint8_t key[MAC_KEY_MAX];
    SHA256_CTX in, out;
} mac_key;

static _Thread_local mac_key t_mac;

/* HMAC-SHA256 of msg under secret into out (32 bytes). Returns 0 or -1. */
static int hmac_sha256(const uint8_t *secret, size_t secret_len, const uint8_t *msg, size_t n,
                       uint8_t *out)
{
    if (secret_len > MAC_KEY_MAX) {
        unsigned int fl = 0;
        return HMAC(EVP_sha256(), secret, (int)secret_len, msg, n, out, &fl) && fl == 32 ? 0 : -1;
    }
    mac_key *k = &t_mac;
    if (!k->set || k->len != secret_len || memcmp(k->key, secret, secret_len) != 0) {
        uint8_t blk[SHA256_CBLOCK], pad[SHA256_CBLOCK];
        memset(blk, 0, sizeof blk);
        if (secret_len > SHA256_CBLOCK) SHA256(secret, secret_len, blk);
        else memcpy(blk, secret, secret_len);
        for (int i = 0; i < SHA256_CBLOCK; i++) pad[i] = blk[i] ^ 0x36;
        SHA256_Init(&k->in);
        SHA256_Update(&k->in, pad, sizeof pad);
        for (int i = 0; i < SHA256_CBLOCK; i++) pad[i] = blk[i] ^ 0x5c;
        SHA256_Init(&k->out);
        SHA256_Update(&k->out, pad, sizeof pad);
        OPENSSL_cleanse(blk, sizeof blk);
        OPENSSL_cleanse(pad, sizeof pad);
        memcpy(k->key, secret, secret_len);
        k->len = secret_len;
        k->set = true;
    }
    SHA256_CTX c = k->in;
    uint8_t inner[SHA256_DIGEST_LENGTH];
    SHA256_Update(&c, msg, n);
    SHA256_Final(inner, &c);
    c = k->out;
    SHA256_Update(&c, inner, sizeof inner);
    SHA256_Final(out, &c);
    return 0;
}

/* The MAC of body for user_id into mac (CUR_MAC bytes). Returns 0 or -1. */
static int cursor_mac(const uint8_t *secret, size_t secret_len, const char *user_id,
                      const uint8_t *body, uint8_t *mac)
{
    uint8_t msg[sizeof CUR_DOMAIN + TOKEN_MAX_ID + 1 + CUR_BODY];
    size_t ul = strlen(user_id);
    if (ul > TOKEN_MAX_ID) return -1;
    size_t n = 0;
    memcpy(msg, CUR_DOMAIN, sizeof CUR_DOMAIN); /* with its NUL */
    n += sizeof CUR_DOMAIN;
    memcpy(msg + n, user_id, ul);
    n += ul;
    msg[n++] = 0;
    memcpy(msg + n, body, CUR_BODY);
    n += CUR_BODY;
    uint8_t full[SHA256_DIGEST_LENGTH];
    if (hmac_sha256(secret, secret_len, msg, n, full) != 0) return -1;
    memcpy(mac, full, CUR_MAC);
    return 0;
}

/* base64url without padding of exactly CUR_BYTES bytes into out (CURSOR_LEN + 1). */
static void b64_37(const uint8_t *in, char *out)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 3 <= CUR_BYTES; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
        out[o++] = A[v >> 6 & 63];
        out[o++] = A[v & 63];
    }
    /* 37 = 12 * 3 + 1: one byte left -> two characters */
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = A[v >> 18 & 63];
    out[o++] = A[v >> 12 & 63];
    out[o] = 0;
}

void cursor_encode(const uint8_t *secret, size_t secret_len, const char *user_id, sync_pos pos,
                   int64_t issued_unix, char *out)
{
    uint8_t b[CUR_BYTES];
    b[0] = CUR_VERSION;
    put_be(b + 1, pos.tx, 8);
    put_be(b + 9, (uint64_t)pos.id, 8);
    put_be(b + 17, issued_unix < 0 ? 0 : (uint64_t)issued_unix, 4);
    if (cursor_mac(secret, secret_len, user_id, b, b + CUR_BODY) != 0)
        memset(b + CUR_BODY, 0, CUR_MAC); /* unverifiable: refused later */
    b64_37(b, out);
}

/* Decodes the bytes of a cursor-shaped string into b. Returns 0 or -1. */
static int unpack(const char *s, size_t len, uint8_t *b)
{
    if (!s || len != CURSOR_LEN) return -1;
    uint8_t tmp[CUR_BYTES + 3];
    size_t n = sizeof tmp;
    if (b64url_decode(s, len, tmp, &n) != 0 || n != CUR_BYTES) return -1;
    if (tmp[0] != CUR_VERSION) return -1;
    memcpy(b, tmp, CUR_BYTES);
    return 0;
}

static void read_pos(const uint8_t *b, sync_pos *pos)
{
    pos->tx = get_be(b + 1, 8);
    pos->id = (int64_t)get_be(b + 9, 8);
}

int cursor_decode(const uint8_t *secret, size_t secret_len, const char *user_id, const char *s,
                  size_t len, sync_pos *pos, int64_t *issued_unix)
{
    uint8_t b[CUR_BYTES], mac[CUR_MAC];
    if (!user_id || unpack(s, len, b) != 0) return CURSOR_BAD;
    /* the encoding is canonical only if re-encoding gives the same text
     * (the two padding bits of the last character must be zero) */
    char again[CURSOR_LEN + 1];
    b64_37(b, again);
    if (memcmp(again, s, CURSOR_LEN) != 0) return CURSOR_BAD;
    if (cursor_mac(secret, secret_len, user_id, b, mac) != 0) return CURSOR_BAD;
    if (CRYPTO_memcmp(mac, b + CUR_BODY, CUR_MAC) != 0) return CURSOR_BAD;
    sync_pos p;
    read_pos(b, &p);
    if (p.id < 0) return CURSOR_BAD;
    if (pos) *pos = p;
    if (issued_unix) *issued_unix = (int64_t)get_be(b + 17, 4);
    return CURSOR_OK;
}

int cursor_peek(const char *s, size_t len, sync_pos *pos)
{
    uint8_t b[CUR_BYTES];
    if (unpack(s, len, b) != 0) return -1;
    read_pos(b, pos);
    return 0;
}

int cursor_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
