/* client_ip.c — the client's address behind trusted reverse proxies (see
 * client_ip.h). */
#include "http/client_ip.h"

#include <stdio.h>
#include <string.h>
#include "base/config.h"
#include "http/http.h"
#include "base/util.h"

/* True when s[0..len) is 1 to 5 decimal digits. */
static bool is_port(const char *s, size_t len)
{
    if (len == 0 || len > 5) return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

int client_ip_hop_parse(const char *s, size_t len, cidr_addr *out)
{
    s = util_trim_ows(s, &len);
    if (len && s[0] == '[') { /* "[v6]" or "[v6]:port" */
        const char *close = memchr(s, ']', len);
        if (!close) return -1;
        size_t alen = (size_t)(close - s) - 1, rest = len - alen - 2;
        if (rest && (close[1] != ':' || !is_port(close + 2, rest - 1))) return -1;
        if (!memchr(s + 1, ':', alen)) return -1; /* brackets are for IPv6 only */
        return cidr_addr_parse(s + 1, alen, out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1)) {
        /* exactly one colon: "a.b.c.d:port" (an IPv6 address has two or more) */
        size_t alen = (size_t)(colon - s);
        if (!is_port(colon + 1, len - alen - 1)) return -1;
        if (cidr_addr_parse(s, alen, out) != 0 || memchr(s, ':', alen)) return -1;
        return 0;
    }
    return cidr_addr_parse(s, len, out);
}

void client_ip_resolve(const cidr_list *trusted, const char *peer, const char *const *xff,
                       int nxff, const char *real_ip, char *out, size_t outlen)
{
    if (!outlen) return;
    snprintf(out, outlen, "%s", peer ? peer : "");
    cidr_addr p;
    if (!peer || trusted->n == 0 || cidr_addr_parse(peer, strlen(peer), &p) != 0 ||
        !cidr_list_match(trusted, &p))
        return; /* the peer is the client: its headers say nothing */
    if (nxff <= 0) {
        cidr_addr a;
        if (real_ip && client_ip_hop_parse(real_ip, strlen(real_ip), &a) == 0)
            cidr_addr_format(&a, out, outlen);
        return;
    }
    cidr_addr cand;
    bool have = false;
    int seen = 0;
    for (int h = nxff - 1; h >= 0 && seen < CLIENT_IP_MAX_HOPS; h--) {
        const char *v = xff[h];
        if (!v) continue;
        size_t end = strlen(v);
        for (;;) {
            if (seen == CLIENT_IP_MAX_HOPS) goto done;
            seen++;
            const char *comma = memrchr(v, ',', end);
            size_t start = comma ? (size_t)(comma - v) + 1 : 0, len = end - start;
            const char *e = util_trim_ows(v + start, &len);
            if (len) { /* empty list elements are skipped */
                cidr_addr a;
                if (client_ip_hop_parse(e, len, &a) != 0) goto done; /* garbage: stop */
                cand = a;
                have = true;
                if (!cidr_list_match(trusted, &a)) goto done; /* the client */
            }
            if (!comma) break;
            end = (size_t)(comma - v);
        }
    }
done:
    if (have) cidr_addr_format(&cand, out, outlen);
}

int client_ip_configure(const char *spec, char *err, size_t errlen)
{
    cidr_list l;
    if (cidr_list_parse(spec ? spec : "", &l, err, errlen) != 0) return -1;
    g_config.trusted_nets = l;
    return 0;
}

int client_ip_trusted_count(void)
{
    return g_config.trusted_nets.n;
}

void client_ip_of_request(sb_req *req, const char *peer)
{
    char p[sizeof req->client_ip]; /* peer may be req->client_ip itself */
    snprintf(p, sizeof p, "%s", peer ? peer : "");
    if (g_config.trusted_nets.n == 0) {
        memcpy(req->client_ip, p, sizeof p);
        return;
    }
    /* the last CLIENT_IP_MAX_HOPS X-Forwarded-For headers (each holds at least
     * one entry, so no earlier one can be reached), and the last X-Real-IP */
    const char *xff[CLIENT_IP_MAX_HOPS];
    int n = 0;
    const char *real_ip = NULL;
    for (int i = req->nheaders - 1; i >= 0; i--) {
        const char *name = req->headers[i].name;
        if (n < CLIENT_IP_MAX_HOPS && strcmp(name, "x-forwarded-for") == 0) xff[n++] = req->headers[i].value;
        else if (!real_ip && strcmp(name, "x-real-ip") == 0) real_ip = req->headers[i].value;
    }
    for (int i = 0; i < n / 2; i++) { /* back into the order received */
        const char *t = xff[i];
        xff[i] = xff[n - 1 - i];
        xff[n - 1 - i] = t;
    }
    client_ip_resolve(&g_config.trusted_nets, p, xff, n, real_ip, req->client_ip, sizeof req->client_ip);
}
