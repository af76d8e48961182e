/* sb_buf.c — reference-counted byte buffers (see sb_buf.h). */
#include "base/sb_buf.h"

#include <stdlib.h>
#include <string.h>

sb_buf *sb_buf_new(size_t cap)
{
    if (cap > UINT32_MAX - SB_BUF_HEADROOM - 64) return NULL;
    sb_buf *b = malloc(sizeof(sb_buf) + SB_BUF_HEADROOM + cap);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    b->cap = (uint32_t)(SB_BUF_HEADROOM + cap);
    b->start = SB_BUF_HEADROOM;
    b->len = 0;
    b->hdr = 0;
    b->opcode = 0;
    b->cont = 0;
    return b;
}

sb_buf *sb_buf_from(const void *p, size_t len)
{
    sb_buf *b = sb_buf_new(len);
    if (!b) return NULL;
    if (len) memcpy(b->data + b->start, p, len);
    b->len = (uint32_t)len;
    return b;
}

sb_buf *sb_buf_append(sb_buf *b, const void *p, size_t len)
{
    size_t need = (size_t)b->start + b->len + len;
    if (need > b->cap) {
        size_t ncap = (size_t)b->cap * 2;
        if (ncap < need) ncap = need;
        if (ncap > UINT32_MAX) {
            free(b);
            return NULL;
        }
        sb_buf *nb = realloc(b, sizeof(sb_buf) + ncap);
        if (!nb) {
            free(b);
            return NULL;
        }
        b = nb;
        b->cap = (uint32_t)ncap;
    }
    if (len) memcpy(b->data + b->start + b->len, p, len);
    b->len += (uint32_t)len;
    return b;
}

void sb_buf_unref(sb_buf *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) free(b);
}

void sb_buf_frame(sb_buf *b, int opcode) { sb_buf_frame_total(b, opcode, b->len); }

void sb_buf_frame_total(sb_buf *b, int opcode, uint64_t total)
{
    uint8_t h[SB_BUF_HEADROOM];
    size_t n = 0;
    uint64_t len = total < b->len ? b->len : total;
    h[n++] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        h[n++] = (uint8_t)len;
    } else if (len <= 0xffff) {
        h[n++] = 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 127;
        for (int i = 7; i >= 0; i--) h[n++] = (uint8_t)(len >> (8 * i));
    }
    b->start -= (uint32_t)n;
    memcpy(b->data + b->start, h, n);
    b->len += (uint32_t)n;
    b->hdr = (uint8_t)n;
    b->opcode = (uint8_t)opcode;
}
