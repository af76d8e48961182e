/* fuzz_multipart.c — libFuzzer target: the streaming multipart/form-data
 * parser (media/multipart.c). The input is a body for boundary "xyz"
 * (or, when it starts with "B:", for the Content-Type given on its first
 * line). It is parsed whole, then again split at every position chosen by
 * the first byte and byte by byte; every way must report the same parts
 * and the same data (hashed) and the same verdict. The sniffer and the Ogg
 * page walker (media/sniff.c) run on the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "media/multipart.h"
#include "media/sniff.h"

typedef struct trace {
    uint64_t h;     /* FNV-1a over events and data */
    int parts, ends;
} trace;

static void mix(trace *t, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) t->h = (t->h ^ b[i]) * 1099511628211ULL;
}

static int on_part(void *arg, const char *name, const char *filename, const char *ctype)
{
    trace *t = arg;
    t->parts++;
    mix(t, "P", 1);
    mix(t, name, strlen(name) + 1);
    mix(t, filename, strlen(filename) + 1);
    mix(t, ctype, strlen(ctype) + 1);
    return 0;
}

static int on_data(void *arg, const uint8_t *p, size_t n)
{
    mix(arg, p, n); /* data is a byte stream: how it is cut must not matter */
    return 0;
}

static int on_end(void *arg)
{
    trace *t = arg;
    t->ends++;
    mix(t, "E", 1);
    return 0;
}

static const multipart_cb CB = {on_part, on_data, on_end};

/* Parses body in pieces of `step` bytes (0: whole). Returns the verdict. */
static int run(const char *ct, const uint8_t *body, size_t len, size_t step, trace *t)
{
    multipart m;
    memset(t, 0, sizeof *t);
    t->h = 1469598103934665603ULL;
    if (multipart_init(&m, ct, &CB, t) != 0) return -2;
    int rc = 0;
    if (!step) step = len ? len : 1;
    for (size_t i = 0; i < len && rc == 0; i += step)
        rc = multipart_feed(&m, body + i, len - i < step ? len - i : step);
    return rc == 0 ? (multipart_done(&m) ? 1 : 0) : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sniff_info si;
    sniff_detect(data, size, &si);
    sniff_ogg og;
    sniff_ogg_init(&og);
    sniff_ogg_feed(&og, data, size);
    (void)sniff_ogg_opus_ms(&og, si.pre_skip);
    (void)sniff_inline(si.mime);

    char ct[256] = "multipart/form-data; boundary=xyz";
    const uint8_t *body = data;
    size_t len = size;
    if (size > 2 && !memcmp(data, "B:", 2)) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t l = nl ? (size_t)(nl - data) - 2 : size - 2;
        if (l >= sizeof ct) return 0;
        memcpy(ct, data + 2, l);
        ct[l] = 0;
        body = nl ? nl + 1 : data + size;
        len = nl ? size - (size_t)(nl + 1 - data) : 0;
    }
    trace whole, split, bytes;
    int v1 = run(ct, body, len, 0, &whole);
    int v2 = run(ct, body, len, size ? (size_t)data[0] % 17 + 1 : 1, &split);
    int v3 = run(ct, body, len, 1, &bytes);
    if (v1 != v2 || v1 != v3) abort();
    if (v1 >= 0 && (whole.h != split.h || whole.h != bytes.h || whole.parts != bytes.parts)) abort();
    return 0;
}
