/* ws.c — RFC 6455 client codec (see ws.h). */
#include "ws.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; out must hold 4 * ((n + 2) / 3) + 1. */
static size_t b64_std(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64std[v >> 18 & 63];
        out[o++] = b64std[v >> 12 & 63];
        out[o++] = b64std[v >> 6 & 63];
        out[o++] = b64std[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64std[v >> 18 & 63];
        out[o++] = b64std[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64std[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ws_key_from_seed(uint64_t seed, char out[WS_KEY_LEN + 1])
{
    uint8_t raw[16];
    uint64_t a = splitmix64(&seed), b = splitmix64(&seed);
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    b64_std(raw, 16, out);
}

void ws_accept_for_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[WS_KEY_LEN + sizeof guid];
    size_t kl = strlen(key);
    if (kl > WS_KEY_LEN) kl = WS_KEY_LEN;
    memcpy(cat, key, kl);
    memcpy(cat + kl, guid, sizeof guid - 1);
    uint8_t dig[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, kl + sizeof guid - 1, dig);
    b64_std(dig, sizeof dig, out);
}

int ws_build_request(char *buf, size_t cap, const char *host, int port, const char *path_query,
                     const char *key)
{
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path_query, host, port, key);
    if (n < 0 || (size_t)n >= cap) return -1;
    return n;
}

int ws_parse_response(const char *buf, size_t len, int *status, const char **accept,
                      size_t *accept_len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    *accept = NULL;
    *accept_len = 0;
    *status = 0;
    if (!end) return 0;
    size_t hlen = (size_t)(end - buf) + 4;
    /* Status line: HTTP/1.x SSS ... */
    if (hlen < 14 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') return -1;
        st = st * 10 + (buf[i] - '0');
    }
    *status = st;
    const char *p = memchr(buf, '\n', hlen);
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (!eol) break;
        static const char name[] = "sec-websocket-accept:";
        size_t nl = sizeof name - 1;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *accept = v;
            *accept_len = (size_t)(ve - v);
        }
        p = memchr(line, '\n', (size_t)(end + 2 - line));
    }
    return (int)hlen;
}

size_t ws_encode_header(uint8_t *out, int opcode, int fin, uint64_t plen, int masked,
                        uint32_t mask_key)
{
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t mbit = masked ? 0x80 : 0;
    if (plen < 126) {
        out[n++] = (uint8_t)(mbit | plen);
    } else if (plen <= 0xffff) {
        out[n++] = mbit | 126;
        out[n++] = (uint8_t)(plen >> 8);
        out[n++] = (uint8_t)plen;
    } else {
        out[n++] = mbit | 127;
        for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)(plen >> (8 * i));
    }
    if (masked) {
        out[n++] = (uint8_t)(mask_key >> 24);
        out[n++] = (uint8_t)(mask_key >> 16);
        out[n++] = (uint8_t)(mask_key >> 8);
        out[n++] = (uint8_t)mask_key;
    }
    return n;
}

void ws_mask(uint8_t *data, size_t len, uint32_t mask_key, size_t offset)
{
    uint8_t m[4] = {(uint8_t)(mask_key >> 24), (uint8_t)(mask_key >> 16),
                    (uint8_t)(mask_key >> 8), (uint8_t)mask_key};
    size_t i = 0;
    /* Head bytes until the mask is aligned to byte 0, then 8 bytes at a time. */
    while (i < len && (offset + i) % 4 != 0) {
        data[i] ^= m[(offset + i) % 4];
        i++;
    }
    uint64_t m8;
    uint8_t mm[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
    memcpy(&m8, mm, 8);
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, data + i, 8);
        v ^= m8;
        memcpy(data + i, &v, 8);
    }
    for (; i < len; i++) data[i] ^= m[(offset + i) % 4];
}

size_t ws_encode_frame(uint8_t *out, size_t cap, int opcode, const void *payload, size_t plen,
                       uint32_t mask_key)
{
    if (cap < WS_MAX_HEADER || cap - WS_MAX_HEADER < plen) {
        /* Exact check for the header size that would really be used. */
        size_t h = plen < 126 ? 6 : plen <= 0xffff ? 8 : 14;
        if (cap < h || cap - h < plen) return 0;
    }
    size_t h = ws_encode_header(out, opcode, 1, plen, 1, mask_key);
    if (plen) {
        memcpy(out + h, payload, plen);
        ws_mask(out + h, plen, mask_key, 0);
    }
    return h + plen;
}

int ws_parse_header(const uint8_t *buf, size_t len, ws_frame *f)
{
    memset(f, 0, sizeof *f);
    if (len < 2) return WS_NEED_MORE;
    uint8_t b0 = buf[0], b1 = buf[1];
    if (b0 & 0x70) return WS_BAD; /* no extension negotiated: RSV must be 0 */
    f->fin = (b0 & 0x80) != 0;
    f->opcode = b0 & 0x0f;
    switch (f->opcode) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!f->fin) return WS_BAD;
        break;
    default:
        return WS_BAD;
    }
    f->masked = (b1 & 0x80) != 0;
    uint64_t pl = b1 & 0x7f;
    size_t n = 2;
    if (pl == 126) {
        if (len < 4) return WS_NEED_MORE;
        pl = (uint64_t)buf[2] << 8 | buf[3];
        if (pl < 126) return WS_BAD;
        n = 4;
    } else if (pl == 127) {
        if (len < 10) return WS_NEED_MORE;
        pl = 0;
        for (int i = 0; i < 8; i++) pl = pl << 8 | buf[2 + i];
        if (pl >> 63 || pl <= 0xffff) return WS_BAD;
        n = 10;
    }
    if (f->opcode >= 0x8 && pl > 125) return WS_BAD;
    f->plen = pl;
    if (f->masked) {
        if (len < n + 4) return WS_NEED_MORE;
        f->mask_key = (uint32_t)buf[n] << 24 | (uint32_t)buf[n + 1] << 16 |
                      (uint32_t)buf[n + 2] << 8 | buf[n + 3];
        n += 4;
    }
    f->hdr_len = n;
    return 1;
}
