/* cursor.c — signed sync cursors (see cursor.h). */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: a keyed state copied by value (cursor_mac) */
#include "sync/cursor.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>
#include "base/token.h"
#include "base/b64url.h"

#define CUR_VERSION 1
#define CUR_VERSION_PAGE 2 /* a page's cursors: AES tags under a per-user key (cursor.h) */
#define CUR_BODY 21 /* version + tx + id + issued_at */
#define CUR_MAC 16
#define CUR_BYTES (CUR_BODY + CUR_MAC)
#define CUR_DOMAIN "sbcur1"
#define CUR_DOMAIN_PAGE "sbcur2"

int sync_pos_cmp(sync_pos a, sync_pos b)
{
    if (a.tx != b.tx) return a.tx < b.tx ? -1 : 1;
    if (a.id != b.id) return a.id < b.id ? -1 : 1;
    return 0;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    if (n == 8) { /* the common case, in one store */
        uint8_t t[8] = {(uint8_t)(v >> 56), (uint8_t)(v >> 48), (uint8_t)(v >> 40), (uint8_t)(v >> 32),
                        (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),  (uint8_t)v};
        memcpy(p, t, 8);
        return;
    }
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

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static char g_b64_pairs[4096][2]; /* the two characters of each 12-bit value */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *g_aes; /* AES-128-ECB, fetched once (NULL: unavailable) */

/* base64url without padding of exactly CUR_BYTES bytes into out
 * (CURSOR_LEN characters, no NUL), two characters per lookup, eight per
 * store (after init_once: the public functions run it). */
static void b64_37_raw(const uint8_t *in, char *out)
{
    for (int g = 0; g < 6; g++) { /* 36 bytes: six times 6 bytes -> 8 characters */
        const uint8_t *p = in + 6 * g;
        uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        uint32_t w = (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
        char t[8];
        memcpy(t, g_b64_pairs[v >> 12], 2);
        memcpy(t + 2, g_b64_pairs[v & 4095], 2);
        memcpy(t + 4, g_b64_pairs[w >> 12], 2);
        memcpy(t + 6, g_b64_pairs[w & 4095], 2);
        memcpy(out + 8 * g, t, 8);
    }
    /* 37 = 36 + 1: one byte left -> two characters */
    memcpy(out + 48, g_b64_pairs[(uint32_t)in[36] << 4], 2);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define B64_SSSE3 1
/* The 16 base64url characters of the 12 bytes in v[0..12) (bytes 12..15
 * ignored): the 6-bit fields spread by a byte shuffle and two multiplies,
 * mapped to the alphabet by ranges. */
__attribute__((target("ssse3"))) static inline __m128i b64_12(__m128i v)
{
    const __m128i shuf = _mm_set_epi8(10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1);
    /* by range: 0..25 -> 13 ('A'), 26..51 -> 0 ('a' - 26), 52..61 -> 1..10
     * ('0' - 52), 62 -> 11 ('-' - 62), 63 -> 12 ('_' - 63) */
    const __m128i lut = _mm_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                      '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '-' - 62,
                                      '_' - 63, 'A', 0, 0);
    v = _mm_shuffle_epi8(v, shuf);
    __m128i hi = _mm_mulhi_epu16(_mm_and_si128(v, _mm_set1_epi32(0x0fc0fc00)),
                                 _mm_set1_epi32(0x04000040));
    __m128i lo = _mm_mullo_epi16(_mm_and_si128(v, _mm_set1_epi32(0x003f03f0)),
                                 _mm_set1_epi32(0x01000010));
    __m128i idx = _mm_or_si128(hi, lo); /* one 6-bit value per byte */
    __m128i r = _mm_subs_epu8(idx, _mm_set1_epi8(51));
    __m128i az = _mm_cmpgt_epi8(_mm_set1_epi8(26), idx);
    r = _mm_or_si128(r, _mm_and_si128(az, _mm_set1_epi8(13)));
    return _mm_add_epi8(_mm_shuffle_epi8(lut, r), idx);
}

/* What b64_37_raw writes for the cursor version | x (16 bytes: tx, id) |
 * issued (4) | tag (16), assembled in registers (no staging copy, whose
 * mixed-size stores and loads stall): three 12-byte steps and the last
 * byte. */
__attribute__((target("ssse3"))) static void b64_page_ssse3(uint8_t version, const uint8_t *x,
                                                             const uint8_t *issued,
                                                             const uint8_t *tag, char *out)
{
    __m128i X = _mm_loadu_si128((const __m128i *)x);
    __m128i T = _mm_loadu_si128((const __m128i *)tag);
    uint32_t iv;
    memcpy(&iv, issued, 4);
    __m128i c0 = _mm_or_si128(_mm_slli_si128(X, 1), _mm_cvtsi32_si128(version)); /* bytes 0..11 */
    __m128i c1 = _mm_or_si128(_mm_or_si128(_mm_srli_si128(X, 11), /* 12..23 */
                                           _mm_slli_si128(_mm_cvtsi32_si128((int)iv), 5)),
                              _mm_slli_si128(T, 9));
    __m128i c2 = _mm_srli_si128(T, 3); /* 24..35 */
    _mm_storeu_si128((__m128i *)out, b64_12(c0));
    _mm_storeu_si128((__m128i *)(out + 16), b64_12(c1));
    _mm_storeu_si128((__m128i *)(out + 32), b64_12(c2));
    memcpy(out + 48, g_b64_pairs[(uint32_t)tag[15] << 4], 2); /* byte 36 */
}

static bool g_simd; /* b64_page_ssse3 runs here (init_once) */
#endif

static void init_once(void)
{
    for (int v = 0; v < 4096; v++) {
        g_b64_pairs[v][0] = B64[v >> 6];
        g_b64_pairs[v][1] = B64[v & 63];
    }
    g_aes = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
#ifdef B64_SSSE3
    if (__builtin_cpu_supports("ssse3")) {
        /* used only if it agrees with the plain encoder */
        bool same = true;
        for (int k = 0; k < 4 && same; k++) {
            uint8_t in[CUR_BYTES];
            for (int i = 0; i < CUR_BYTES; i++)
                in[i] = (uint8_t)(k == 0 ? 0 : k == 1 ? 0xff : i * (37 * k) + k);
            char a[CURSOR_LEN], b[CURSOR_LEN];
            b64_37_raw(in, a);
            b64_page_ssse3(in[0], in + 1, in + 17, in + CUR_BODY, b);
            same = memcmp(a, b, CURSOR_LEN) == 0;
        }
        g_simd = same;
    }
#endif
}

/* As b64_37_raw, NUL-terminated (out: CURSOR_LEN + 1 bytes). */
static void b64_37(const uint8_t *in, char *out)
{
    b64_37_raw(in, out);
    out[CURSOR_LEN] = 0;
}

/* The AES-128 key of the page cursors of user_id issued at `issued`
 * (4 big-endian bytes): the first 16 bytes of HMAC-SHA256(secret, "sbcur2"
 * 0x00 user_id 0x00 issued). Returns 0 or -1. */
static int page_key(const uint8_t *secret, size_t secret_len, const char *user_id,
                    const uint8_t issued[4], uint8_t key[16])
{
    uint8_t msg[sizeof CUR_DOMAIN_PAGE + TOKEN_MAX_ID + 1 + 4];
    size_t ul = strlen(user_id);
    if (ul > TOKEN_MAX_ID) return -1;
    size_t n = 0;
    memcpy(msg, CUR_DOMAIN_PAGE, sizeof CUR_DOMAIN_PAGE); /* with its NUL */
    n += sizeof CUR_DOMAIN_PAGE;
    memcpy(msg + n, user_id, ul);
    n += ul;
    msg[n++] = 0;
    memcpy(msg + n, issued, 4);
    n += 4;
    uint8_t full[SHA256_DIGEST_LENGTH];
    if (hmac_sha256(secret, secret_len, msg, n, full) != 0) return -1;
    memcpy(key, full, 16);
    OPENSSL_cleanse(full, sizeof full);
    return 0;
}

/* An AES-128-ECB context under key, no padding, or NULL. */
static EVP_CIPHER_CTX *aes_new(const uint8_t key[16])
{
    if (!g_aes) return NULL;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    if (x && (EVP_EncryptInit_ex2(x, g_aes, key, NULL, NULL) != 1 ||
              EVP_CIPHER_CTX_set_padding(x, 0) != 1)) {
        EVP_CIPHER_CTX_free(x);
        x = NULL;
    }
    return x;
}

/* out[k] = AES-128(in[k]) for n 16-byte blocks (0 < n <= 2^27). Returns 0 or -1. */
static int aes_run(EVP_CIPHER_CTX *x, const uint8_t *in, uint8_t *out, size_t n)
{
    int ol = 0;
    return EVP_EncryptUpdate(x, out, &ol, in, (int)(n * 16)) == 1 && (size_t)ol == n * 16 ? 0 : -1;
}

/* out = AES-128_key(in), one block. Returns 0 or -1. */
static int aes_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
    EVP_CIPHER_CTX *x = aes_new(key);
    int rc = x ? aes_run(x, in, out, 1) : -1;
    EVP_CIPHER_CTX_free(x);
    return rc;
}

#define MANY_CHUNK 64 /* cursors per AES call */

int cursor_encode_many(const uint8_t *secret, size_t secret_len, const char *user_id,
                       const sync_pos *pos, size_t n, int64_t issued_unix, char *out)
{
    pthread_once(&g_once, init_once);
    if (n == 0) return 0;
    uint8_t b[CUR_BYTES], key[16];
    b[0] = CUR_VERSION_PAGE;
    put_be(b + 17, issued_unix < 0 ? 0 : (uint64_t)issued_unix, 4);
    if (!user_id || page_key(secret, secret_len, user_id, b + 17, key) != 0) return -1;
    EVP_CIPHER_CTX *x = aes_new(key);
    OPENSSL_cleanse(key, sizeof key);
    if (!x) return -1;
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k += MANY_CHUNK) {
        size_t m = n - k < MANY_CHUNK ? n - k : MANY_CHUNK;
        uint8_t in[MANY_CHUNK * 16], tag[MANY_CHUNK * 16];
        for (size_t j = 0; j < m; j++) {
            put_be(in + 16 * j, pos[k + j].tx, 8);
            put_be(in + 16 * j + 8, (uint64_t)pos[k + j].id, 8);
        }
        if (aes_run(x, in, tag, m) != 0) {
            rc = -1;
            break;
        }
        for (size_t j = 0; j < m; j++) { /* b: version and issued_at stay */
#ifdef B64_SSSE3
            if (g_simd) {
                b64_page_ssse3(b[0], in + 16 * j, b + 17, tag + 16 * j, out + (k + j) * CURSOR_LEN);
                continue;
            }
#endif
            memcpy(b + 1, in + 16 * j, 16);
            memcpy(b + CUR_BODY, tag + 16 * j, CUR_MAC);
            b64_37_raw(b, out + (k + j) * CURSOR_LEN);
        }
    }
    EVP_CIPHER_CTX_free(x);
    return rc;
}

void cursor_encode(const uint8_t *secret, size_t secret_len, const char *user_id, sync_pos pos,
                   int64_t issued_unix, char *out)
{
    pthread_once(&g_once, init_once);
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
    if (tmp[0] != CUR_VERSION && tmp[0] != CUR_VERSION_PAGE) return -1;
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
    pthread_once(&g_once, init_once);
    uint8_t b[CUR_BYTES], mac[CUR_MAC];
    if (!user_id || unpack(s, len, b) != 0) return CURSOR_BAD;
    /* the encoding is canonical only if re-encoding gives the same text
     * (the two padding bits of the last character must be zero) */
    char again[CURSOR_LEN + 1];
    b64_37(b, again);
    if (memcmp(again, s, CURSOR_LEN) != 0) return CURSOR_BAD;
    if (b[0] == CUR_VERSION_PAGE) {
        uint8_t key[16], tag[16];
        int rc = page_key(secret, secret_len, user_id, b + 17, key) == 0 &&
                         aes_block(key, b + 1, tag) == 0
                     ? 0
                     : -1;
        OPENSSL_cleanse(key, sizeof key);
        if (rc != 0) return CURSOR_BAD;
        memcpy(mac, tag, CUR_MAC);
    } else if (cursor_mac(secret, secret_len, user_id, b, mac) != 0) {
        return CURSOR_BAD;
    }
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
