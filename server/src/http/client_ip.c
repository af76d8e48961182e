/* client_ip.c — the client's address behind trusted reverse proxies (see
 * client_ip.h). */
#include "http/client_ip.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "http/http.h"

static cip_list g_trusted; /* set once at start by client_ip_configure */

/* True for a space or a tab (HTTP's optional whitespace). */
static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Narrows s[0..*len) past leading and trailing spaces and tabs. */
static const char *trim(const char *s, size_t *len)
{
    while (*len && ows(s[0])) {
        s++;
        (*len)--;
    }
    while (*len && ows(s[*len - 1])) (*len)--;
    return s;
}

/* True when s[0..len) is 1 to 5 decimal digits. */
static bool is_port(const char *s, size_t len)
{
    if (len == 0 || len > 5) return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

int cip_addr_parse(const char *s, size_t len, cip_addr *out)
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    memset(out, 0, sizeof *out);
    if (memchr(buf, ':', len)) {
        if (inet_pton(AF_INET6, buf, out->b) != 1) return -1;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(out->b, mapped, sizeof mapped) == 0) {
            memmove(out->b, out->b + 12, 4);
            memset(out->b + 4, 0, 12);
            out->family = 4;
        } else {
            out->family = 6;
        }
        return 0;
    }
    if (inet_pton(AF_INET, buf, out->b) != 1) return -1;
    out->family = 4;
    return 0;
}

int cip_hop_parse(const char *s, size_t len, cip_addr *out)
{
    s = trim(s, &len);
    if (len && s[0] == '[') { /* "[v6]" or "[v6]:port" */
        const char *close = memchr(s, ']', len);
        if (!close) return -1;
        size_t alen = (size_t)(close - s) - 1, rest = len - alen - 2;
        if (rest && (close[1] != ':' || !is_port(close + 2, rest - 1))) return -1;
        if (!memchr(s + 1, ':', alen)) return -1; /* brackets are for IPv6 only */
        return cip_addr_parse(s + 1, alen, out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1)) {
        /* exactly one colon: "a.b.c.d:port" (an IPv6 address has two or more) */
        size_t alen = (size_t)(colon - s);
        if (!is_port(colon + 1, len - alen - 1)) return -1;
        if (cip_addr_parse(s, alen, out) != 0 || memchr(s, ':', alen)) return -1;
        return 0;
    }
    return cip_addr_parse(s, len, out);
}

int cip_net_parse(const char *s, size_t len, cip_net *out)
{
    memset(out, 0, sizeof *out);
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    char buf[INET6_ADDRSTRLEN];
    if (alen == 0 || alen >= sizeof buf) return -1;
    memcpy(buf, s, alen);
    buf[alen] = 0;
    bool v6_text = memchr(buf, ':', alen) != NULL;
    if (cip_addr_parse(buf, alen, &out->a) != 0) return -1;
    int max = v6_text ? 128 : 32, prefix = max;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        if (plen == 0 || plen > 3) return -1;
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (p[i] < '0' || p[i] > '9') return -1;
            prefix = prefix * 10 + (p[i] - '0');
        }
        if (prefix > max) return -1;
    }
    if (v6_text && out->a.family == 4) { /* ::ffff:a.b.c.d/n */
        if (prefix < 96) return -1;
        prefix -= 96;
    }
    out->prefix = (uint8_t)prefix;
    int nbytes = out->a.family == 4 ? 4 : 16;
    for (int i = 0; i < nbytes; i++) {
        int bits = prefix - i * 8; /* bits of this byte inside the prefix */
        if (bits >= 8) continue;
        out->a.b[i] &= bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
    }
    return 0;
}

int cip_list_parse(const char *spec, cip_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (errlen) err[0] = 0;
    size_t total = strlen(spec);
    const char *s = trim(spec, &total);
    if (total == 0) return 0;
    int idx = 0;
    for (;;) {
        const char *comma = memchr(s, ',', total);
        size_t len = comma ? (size_t)(comma - s) : total;
        size_t elen = len;
        const char *e = trim(s, &elen);
        idx++;
        if (elen == 0) {
            snprintf(err, errlen, "entry %d is empty", idx);
            goto bad;
        }
        if (out->n == CIP_MAX_NETS) {
            snprintf(err, errlen, "more than %d entries", CIP_MAX_NETS);
            goto bad;
        }
        if (cip_net_parse(e, elen, &out->nets[out->n]) != 0) {
            snprintf(err, errlen,
                     "entry %d \"%.*s\" is not an IPv4 or IPv6 address or CIDR block "
                     "(address/prefix, prefix 0-32 or 0-128)",
                     idx, elen > 64 ? 64 : (int)elen, e);
            goto bad;
        }
        out->n++;
        if (!comma) return 0;
        s = comma + 1;
        total -= len + 1;
    }
bad:
    memset(out, 0, sizeof *out);
    return -1;
}

bool cip_list_match(const cip_list *l, const cip_addr *a)
{
    for (int i = 0; i < l->n; i++) {
        const cip_net *n = &l->nets[i];
        if (n->a.family != a->family) continue;
        int full = n->prefix / 8, rest = n->prefix % 8;
        if (memcmp(n->a.b, a->b, (size_t)full) != 0) continue;
        if (rest && ((n->a.b[full] ^ a->b[full]) & (uint8_t)(0xff << (8 - rest)))) continue;
        return true;
    }
    return false;
}

void cip_addr_format(const cip_addr *a, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    if (!inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->b, buf, sizeof buf)) buf[0] = 0;
    snprintf(out, outlen, "%s", buf);
}

void cip_resolve(const cip_list *trusted, const char *peer, const char *const *xff, int nxff,
                 const char *real_ip, char *out, size_t outlen)
{
    if (!outlen) return;
    snprintf(out, outlen, "%s", peer ? peer : "");
    cip_addr p;
    if (!peer || trusted->n == 0 || cip_addr_parse(peer, strlen(peer), &p) != 0 ||
        !cip_list_match(trusted, &p))
        return; /* the peer is the client: its headers say nothing */
    if (nxff <= 0) {
        cip_addr a;
        if (real_ip && cip_hop_parse(real_ip, strlen(real_ip), &a) == 0)
            cip_addr_format(&a, out, outlen);
        return;
    }
    cip_addr cand;
    bool have = false;
    int seen = 0;
    for (int h = nxff - 1; h >= 0 && seen < CIP_MAX_HOPS; h--) {
        const char *v = xff[h];
        if (!v) continue;
        size_t end = strlen(v);
        for (;;) {
            if (seen == CIP_MAX_HOPS) goto done;
            seen++;
            const char *comma = memrchr(v, ',', end);
            size_t start = comma ? (size_t)(comma - v) + 1 : 0, len = end - start;
            const char *e = trim(v + start, &len);
            if (len) { /* empty list elements are skipped */
                cip_addr a;
                if (cip_hop_parse(e, len, &a) != 0) goto done; /* garbage: stop */
                cand = a;
                have = true;
                if (!cip_list_match(trusted, &a)) goto done; /* the client */
            }
            if (!comma) break;
            end = (size_t)(comma - v);
        }
    }
done:
    if (have) cip_addr_format(&cand, out, outlen);
}

int client_ip_configure(const char *spec, char *err, size_t errlen)
{
    cip_list l;
    if (cip_list_parse(spec ? spec : "", &l, err, errlen) != 0) return -1;
    g_trusted = l;
    return 0;
}

int client_ip_trusted_count(void)
{
    return g_trusted.n;
}

void client_ip_of_request(sb_req *req, const char *peer)
{
    char p[sizeof req->client_ip]; /* peer may be req->client_ip itself */
    snprintf(p, sizeof p, "%s", peer ? peer : "");
    if (g_trusted.n == 0) {
        memcpy(req->client_ip, p, sizeof p);
        return;
    }
    /* the last CIP_MAX_HOPS X-Forwarded-For headers (each holds at least
     * one entry, so no earlier one can be reached), and the last X-Real-IP */
    const char *xff[CIP_MAX_HOPS];
    int n = 0;
    const char *real_ip = NULL;
    for (int i = req->nheaders - 1; i >= 0; i--) {
        const char *name = req->headers[i].name;
        if (n < CIP_MAX_HOPS && strcmp(name, "x-forwarded-for") == 0) xff[n++] = req->headers[i].value;
        else if (!real_ip && strcmp(name, "x-real-ip") == 0) real_ip = req->headers[i].value;
    }
    for (int i = 0; i < n / 2; i++) { /* back into the order received */
        const char *t = xff[i];
        xff[i] = xff[n - 1 - i];
        xff[n - 1 - i] = t;
    }
    cip_resolve(&g_trusted, p, xff, n, real_ip, req->client_ip, sizeof req->client_ip);
}
