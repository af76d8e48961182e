/* ws.h — the client side of RFC 6455, as sbload needs it.
 *
 * Pure functions over caller-owned buffers (no I/O, no allocation): the
 * HTTP upgrade request, the check of the server's 101 answer, the frame
 * encoder (client frames are always masked) and an incremental frame header
 * parser. Masking is a XOR that works in place. */
#ifndef SBL_WS_H
#define SBL_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

#define WS_KEY_LEN 24    /* base64 of 16 random bytes */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */
#define WS_MAX_HEADER 14 /* 2 + 8 extended length + 4 mask */

/* Writes the Sec-WebSocket-Key derived from `seed` (16 bytes of a
 * splitmix64 stream, base64) into out[WS_KEY_LEN + 1]. */
void ws_key_from_seed(uint64_t seed, char out[WS_KEY_LEN + 1]);
/* Writes the Sec-WebSocket-Accept the server must answer for `key` into
 * out[WS_ACCEPT_LEN + 1]. */
void ws_accept_for_key(const char *key, char out[WS_ACCEPT_LEN + 1]);

/* Builds the upgrade request for `path_query` ("/socket/websocket?vsn=2.0.0").
 * Returns its length, or -1 if it does not fit in cap. */
int ws_build_request(char *buf, size_t cap, const char *host, int port, const char *path_query,
                     const char *key);

/* Parses the server's handshake answer in buf[0..len).
 * Returns 0 when the header block is not complete yet, -1 when it is
 * malformed, else the length of the header block (through the blank line);
 * *status gets the HTTP status and accept/accept_len the
 * Sec-WebSocket-Accept value (NULL/0 when absent). */
int ws_parse_response(const char *buf, size_t len, int *status, const char **accept,
                      size_t *accept_len);

/* Writes a frame header (FIN set when fin != 0; masked with mask_key when
 * masked != 0) for a payload of plen bytes into out[WS_MAX_HEADER].
 * Returns the header length. */
size_t ws_encode_header(uint8_t *out, int opcode, int fin, uint64_t plen, int masked,
                        uint32_t mask_key);
/* XORs data[0..len) with the 4-byte mask (network order of mask_key as
 * written in the header), starting at mask byte `offset` % 4. */
void ws_mask(uint8_t *data, size_t len, uint32_t mask_key, size_t offset);
/* Encodes a whole masked client frame (header + masked copy of payload)
 * into out. Returns the frame length, or 0 if cap is too small. */
size_t ws_encode_frame(uint8_t *out, size_t cap, int opcode, const void *payload, size_t plen,
                       uint32_t mask_key);

typedef struct ws_frame {
    int fin;
    int opcode;
    int masked;
    uint32_t mask_key;
    uint64_t plen;    /* payload length */
    size_t hdr_len;   /* header length; the payload starts there */
} ws_frame;

enum { WS_NEED_MORE = 0, WS_BAD = -1 };
/* Parses the frame header at buf[0..len). Returns WS_BAD for a protocol
 * violation (reserved bits, unknown opcode, fragmented or oversize control
 * frame, non-minimal 64-bit length), WS_NEED_MORE when the header is not all
 * there (f->plen is set as soon as the length is known, so a caller can
 * refuse oversize frames early), else 1 with *f filled: the whole frame is
 * available when len >= f->hdr_len + f->plen. */
int ws_parse_header(const uint8_t *buf, size_t len, ws_frame *f);

#endif
