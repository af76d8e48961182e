/* bus_codec.c — the inter-node envelope, PUBLISH commands and Redis URLs. */
#include "bus/bus_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bus/bus.h"
#include "base/util.h"

/* True for the three envelope kinds. */
static bool kind_ok(int kind) { return kind == BUS_TEXT || kind == BUS_BINARY || kind == BUS_CONTROL; }

size_t bus_envelope_size(size_t node_len, size_t event_len, size_t payload_len)
{
    return 4 + 1 + node_len + 1 + event_len + payload_len;
}

size_t bus_envelope_encode(char *out, int kind, const char *node, size_t node_len,
                           const char *event, size_t event_len, const void *payload,
                           size_t payload_len)
{
    if (!kind_ok(kind) || node_len == 0 || node_len > BUS_NAME_MAX || event_len == 0 ||
        event_len > BUS_NAME_MAX)
        return 0;
    char *p = out;
    *p++ = 'S';
    *p++ = 'B';
    *p++ = BUS_ENVELOPE_VERSION;
    *p++ = (char)kind;
    *p++ = (char)(unsigned char)node_len;
    memcpy(p, node, node_len);
    p += node_len;
    *p++ = (char)(unsigned char)event_len;
    memcpy(p, event, event_len);
    p += event_len;
    if (payload_len) memcpy(p, payload, payload_len);
    p += payload_len;
    return (size_t)(p - out);
}

int bus_envelope_decode(const char *buf, size_t len, bus_envelope *out)
{
    const unsigned char *b = (const unsigned char *)buf;
    if (len < 7 || b[0] != 'S' || b[1] != 'B' || b[2] != BUS_ENVELOPE_VERSION) return -1;
    if (!kind_ok(b[3])) return -1;
    size_t nl = b[4];
    if (nl == 0 || 5 + nl + 1 > len) return -1;
    size_t el = b[5 + nl];
    if (el == 0 || 6 + nl + el > len) return -1;
    out->kind = b[3];
    out->node = buf + 5;
    out->node_len = nl;
    out->event = buf + 6 + nl;
    out->event_len = el;
    out->payload = buf + 6 + nl + el;
    out->payload_len = len - (6 + nl + el);
    return 0;
}

char *bus_resp_publish(const char *prefix, const char *mid, const char *topic, int kind,
                       const char *node, const char *event, const void *payload,
                       size_t payload_len, size_t *out_len)
{
    size_t pl = strlen(prefix), ml = strlen(mid), tl = strlen(topic);
    size_t nl = strlen(node), el = strlen(event);
    if (!kind_ok(kind) || nl == 0 || nl > BUS_NAME_MAX || el == 0 || el > BUS_NAME_MAX) return NULL;
    size_t chl = pl + ml + tl, envl = bus_envelope_size(nl, el, payload_len);
    /* *3\r\n$7\r\nPUBLISH\r\n$<chl>\r\n<ch>\r\n$<envl>\r\n<env>\r\n */
    size_t cap = 32 + 24 + chl + 24 + envl;
    char *out = malloc(cap);
    if (!out) return NULL;
    int n = snprintf(out, cap, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n", chl);
    char *p = out + n;
    memcpy(p, prefix, pl);
    p += pl;
    memcpy(p, mid, ml);
    p += ml;
    memcpy(p, topic, tl);
    p += tl;
    p += snprintf(p, cap - (size_t)(p - out), "\r\n$%zu\r\n", envl);
    p += bus_envelope_encode(p, kind, node, nl, event, el, payload, payload_len);
    *p++ = '\r';
    *p++ = '\n';
    *out_len = (size_t)(p - out);
    return out;
}

/* Copies the percent-decoded in[0..n) into out[cap]. Returns 0 or -1. */
static int decode_into(const char *in, size_t n, char *out, size_t cap)
{
    char *d = util_url_decode(in, n, false);
    if (!d) return -1;
    size_t l = strlen(d);
    if (l >= cap) {
        free(d);
        return -1;
    }
    memcpy(out, d, l + 1);
    free(d);
    return 0;
}

/* Writes why into err; returns -1. */
static int fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return -1;
}

int bus_parse_redis_url(const char *url, bus_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    const char *p;
    if (!strncmp(url, "redis+unix://", 13) || !strncmp(url, "unix://", 7)) {
        p = strstr(url, "://") + 3;
        if (*p != '/' || strlen(p) >= sizeof out->unix_path)
            return fail(err, errlen, "unix socket URL needs an absolute path");
        strcpy(out->unix_path, p);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) return fail(err, errlen, "URL must start with redis://");
    p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@') at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (decode_into(p, (size_t)(colon - p), out->user, sizeof out->user) != 0 ||
                decode_into(colon + 1, (size_t)(at - colon - 1), out->password,
                            sizeof out->password) != 0)
                return fail(err, errlen, "bad user or password");
        } else if (decode_into(p, (size_t)(at - p), out->password, sizeof out->password) != 0) {
            return fail(err, errlen, "bad password");
        }
        p = at + 1;
    }
    const char *hs = p, *he;
    const char *portp = NULL;
    if (*p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(end - hs));
        if (!he) return fail(err, errlen, "unclosed [ in host");
        if (he + 1 < end) {
            if (he[1] != ':') return fail(err, errlen, "junk after ]");
            portp = he + 2;
        }
    } else {
        he = memchr(p, ':', (size_t)(end - p));
        if (he) portp = he + 1;
        else he = end;
    }
    if (he == hs) return fail(err, errlen, "empty host");
    if ((size_t)(he - hs) >= sizeof out->host) return fail(err, errlen, "host too long");
    memcpy(out->host, hs, (size_t)(he - hs));
    out->host[he - hs] = 0;
    if (portp) {
        if (portp == end) return fail(err, errlen, "empty port");
        long port = 0;
        for (const char *q = portp; q < end; q++) {
            if (*q < '0' || *q > '9') return fail(err, errlen, "port is not a number");
            port = port * 10 + (*q - '0');
            if (port > 65535) return fail(err, errlen, "port out of range");
        }
        if (port == 0) return fail(err, errlen, "port out of range");
        out->port = (int)port;
    }
    return 0;
}
