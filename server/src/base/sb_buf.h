/* sb_buf.h — reference-counted byte buffers shared across connections and reactors.
 *
 * A broadcast is encoded once into an sb_buf and the same buffer is queued on
 * every subscriber's connection; the last writer to finish drops the last
 * reference. Each buffer keeps SB_BUF_HEADROOM bytes in front of its content
 * so a WebSocket frame header can be prepended in place (sb_buf_frame). After
 * framing, [start, start+len) is the whole frame and text() is the payload
 * alone (what the long-poll transport sends). */
#ifndef SB_BUF_H
#define SB_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SB_BUF_HEADROOM 10 /* largest server-to-client frame header (no mask) */

typedef struct sb_buf {
    atomic_uint refs;
    uint32_t cap;   /* bytes allocated in data[] */
    uint32_t start; /* offset of the first byte to send */
    uint32_t len;   /* bytes to send from start */
    uint8_t hdr;    /* WebSocket header bytes at start (0 if not framed) */
    uint8_t opcode; /* 1 text, 2 binary, 8 close; 0 if not framed */
    uint8_t cont;   /* 1: an unframed piece continuing the frame of the buffer
                     * queued before it (sb_buf_frame_total), shared by many */
    char data[];
} sb_buf;

/* A new buffer with room for `cap` content bytes after the headroom; refs = 1,
 * len = 0, start = SB_BUF_HEADROOM. Returns NULL when out of memory. */
sb_buf *sb_buf_new(size_t cap);
/* A new buffer holding a copy of `len` bytes of `p` (refs = 1). */
sb_buf *sb_buf_from(const void *p, size_t len);
/* Appends bytes, growing the buffer (only valid while refs == 1 and unframed).
 * Returns the possibly moved buffer, or NULL when out of memory (buffer freed). */
sb_buf *sb_buf_append(sb_buf *b, const void *p, size_t len);
/* Takes one more reference; returns b. Thread-safe. */
static inline sb_buf *sb_buf_ref(sb_buf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}
/* Drops one reference, freeing the buffer with the last. Thread-safe; NULL ok. */
void sb_buf_unref(sb_buf *b);
/* Pointer to the first byte to send. */
static inline const char *sb_buf_bytes(const sb_buf *b) { return b->data + b->start; }
/* The content without its frame header (the Phoenix message text). */
static inline const char *sb_buf_text(const sb_buf *b) { return b->data + b->start + b->hdr; }
static inline size_t sb_buf_text_len(const sb_buf *b) { return b->len - b->hdr; }
/* Prepends an unmasked, final WebSocket frame header with `opcode` in the
 * headroom. Call once, before the buffer is shared. */
void sb_buf_frame(sb_buf *b, int opcode);
/* The same for a message of `total` bytes (>= b's content) whose first
 * part b holds; the rest follows in pieces marked cont (sb_buf_piece),
 * queued right after b. sb_buf_text_len(b) is then b's part only. */
void sb_buf_frame_total(sb_buf *b, int opcode, uint64_t total);
/* Marks b (unframed) as a piece continuing the frame queued before it. */
static inline void sb_buf_piece(sb_buf *b) { b->cont = 1; }

#endif
