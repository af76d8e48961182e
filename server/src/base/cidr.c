/* cidr.c — addresses, CIDR blocks and lists of them (see cidr.h). */
#include "base/cidr.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

int cidr_addr_parse(const char *s, size_t len, cidr_addr *out)
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

int cidr_net_parse(const char *s, size_t len, cidr_net *out)
{
    memset(out, 0, sizeof *out);
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    char buf[INET6_ADDRSTRLEN];
    if (alen == 0 || alen >= sizeof buf) return -1;
    memcpy(buf, s, alen);
    buf[alen] = 0;
    bool v6_text = memchr(buf, ':', alen) != NULL;
    if (cidr_addr_parse(buf, alen, &out->a) != 0) return -1;
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

int cidr_list_parse(const char *spec, cidr_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (errlen) err[0] = 0;
    size_t total = strlen(spec);
    const char *s = util_trim_ows(spec, &total);
    if (total == 0) return 0;
    int idx = 0;
    for (;;) {
        const char *comma = memchr(s, ',', total);
        size_t len = comma ? (size_t)(comma - s) : total;
        size_t elen = len;
        const char *e = util_trim_ows(s, &elen);
        idx++;
        if (elen == 0) {
            snprintf(err, errlen, "entry %d is empty", idx);
            goto bad;
        }
        if (out->n == CIDR_MAX_NETS) {
            snprintf(err, errlen, "more than %d entries", CIDR_MAX_NETS);
            goto bad;
        }
        if (cidr_net_parse(e, elen, &out->nets[out->n]) != 0) {
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

bool cidr_list_match(const cidr_list *l, const cidr_addr *a)
{
    for (int i = 0; i < l->n; i++) {
        const cidr_net *n = &l->nets[i];
        if (n->a.family != a->family) continue;
        int full = n->prefix / 8, rest = n->prefix % 8;
        if (memcmp(n->a.b, a->b, (size_t)full) != 0) continue;
        if (rest && ((n->a.b[full] ^ a->b[full]) & (uint8_t)(0xff << (8 - rest)))) continue;
        return true;
    }
    return false;
}

void cidr_addr_format(const cidr_addr *a, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    if (!inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->b, buf, sizeof buf)) buf[0] = 0;
    snprintf(out, outlen, "%s", buf);
}
