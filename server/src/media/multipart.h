/* multipart.h — a streaming multipart/form-data parser (RFC 7578, RFC 2046
 * 5.1): fed the body in pieces of any size, it reports each part's
 * name, filename and content type, then the part's data in pieces, with
 * bounded memory (a part's header section is capped at MULTIPART_HEAD_MAX).
 * Pure: no I/O, no allocation. */
#ifndef SB_MULTIPART_H
#define SB_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MULTIPART_HEAD_MAX 8192
#define MULTIPART_BOUNDARY_MAX 70

typedef struct multipart_cb {
    /* A part begins: its Content-Disposition name and filename and its
     * Content-Type ("" when absent; NUL-terminated, valid during the call). */
    int (*part)(void *arg, const char *name, const char *filename, const char *ctype);
    /* Bytes of the current part's content. */
    int (*data)(void *arg, const uint8_t *p, size_t len);
    /* The current part ended. */
    int (*part_end)(void *arg);
} multipart_cb; /* each returns 0, or non-zero to stop (multipart_feed fails) */

typedef struct multipart {
    char delim[4 + MULTIPART_BOUNDARY_MAX + 1]; /* "\r\n--" boundary */
    size_t dlen, match;
    int state;
    char head[MULTIPART_HEAD_MAX + 1];
    size_t hlen;
    const multipart_cb *cb;
    void *arg;
} multipart;

/* Reads the boundary from a Content-Type header value
 * ("multipart/form-data; boundary=..."). Returns 0, or -1 when it is not
 * multipart/form-data or the boundary is missing or invalid. */
int multipart_init(multipart *m, const char *content_type, const multipart_cb *cb, void *arg);
/* Feeds the next bytes of the body. Returns 0, or -1 when the body is
 * malformed or a callback stopped it (feeding more then fails again). */
int multipart_feed(multipart *m, const uint8_t *p, size_t len);
/* True once the closing delimiter was seen (what follows is ignored). */
bool multipart_done(const multipart *m);
/* Copies parameter `param` (e.g. "boundary", "filename") of a header
 * value such as `form-data; name="f"; filename="a b.jpg"` into out (quotes
 * and escapes removed). Returns 0, or -1 when absent or too long. */
int multipart_param(const char *value, const char *param, char *out, size_t cap);

#endif
