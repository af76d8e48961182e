/* phx_origin.c — the Origin check of the socket transports (see phx_origin.h). */
#include "phoenix/phx_origin.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HOST_MAX 256

typedef struct origin_parts {
    char scheme[16];   /* lower-case; "" when absent ("//host" entries) */
    char host[HOST_MAX]; /* lower-case, IPv6 with its brackets */
    int port;          /* explicit port, or the scheme's default, or 0 */
    bool any_scheme;   /* "//host": the scheme is not compared */
    bool wildcard;     /* host was "*.suffix": host holds ".suffix" */
} origin_parts;

static int default_port(const char *scheme)
{
    if (!strcmp(scheme, "http") || !strcmp(scheme, "ws")) return 80;
    if (!strcmp(scheme, "https") || !strcmp(scheme, "wss")) return 443;
    return 0;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Parses "name[:port]" or "[v6][:port]" from s[0..n) into host and *port
 * (-1 when no port is written). Returns 0 or -1. */
static int parse_hostport(const char *s, size_t n, char *host, int *port)
{
    size_t hl;
    if (n == 0) return -1;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb) return -1;
        hl = (size_t)(rb - s) + 1;
    } else {
        const char *colon = memchr(s, ':', n);
        hl = colon ? (size_t)(colon - s) : n;
    }
    if (hl == 0 || hl >= HOST_MAX) return -1;
    for (size_t i = 0; i < hl; i++) {
        char c = s[i];
        if (c <= ' ' || c == '/' || c == '@' || c == '?' || c == '#' || c == ',' || (unsigned char)c >= 0x7f)
            return -1;
        host[i] = lower(c);
    }
    host[hl] = 0;
    *port = -1;
    if (hl == n) return 0;
    if (s[hl] != ':' || hl + 1 == n || n - hl - 1 > 5) return -1;
    int p = 0;
    for (size_t i = hl + 1; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        p = p * 10 + (s[i] - '0');
    }
    if (p < 1 || p > 65535) return -1;
    *port = p;
    return 0;
}

/* Parses "scheme://host[:port]" (an Origin, or an allowed entry, which may
 * also be "//host[:port]" and have a "*." host). A trailing "/" is
 * tolerated. Returns 0 or -1. */
static int parse_origin(const char *s, size_t n, bool entry, origin_parts *o)
{
    memset(o, 0, sizeof *o);
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= n; i++)
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
            sep = s + i;
            break;
        }
    const char *rest;
    if (sep) {
        size_t sl = (size_t)(sep - s);
        if (sl == 0 || sl >= sizeof o->scheme) return -1;
        for (size_t i = 0; i < sl; i++) {
            char c = lower(s[i]);
            if (!((c >= 'a' && c <= 'z') || (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))))
                return -1;
            o->scheme[i] = c;
        }
        rest = sep + 3;
    } else if (entry && n >= 2 && s[0] == '/' && s[1] == '/') {
        o->any_scheme = true;
        rest = s + 2;
    } else {
        return -1;
    }
    size_t rl = n - (size_t)(rest - s);
    if (rl && rest[rl - 1] == '/') rl--;
    if (entry && rl > 2 && rest[0] == '*' && rest[1] == '.') {
        o->wildcard = true;
        rest++;
        rl--;
    }
    int port;
    if (parse_hostport(rest, rl, o->host, &port) != 0) return -1;
    if (o->host[0] == '*' || strchr(o->host, '*')) return -1;
    o->port = port > 0 ? port : (o->any_scheme ? -1 : default_port(o->scheme));
    return 0;
}

/* Whether origin o is the site `host` (a Host header value). */
static bool same_site(const origin_parts *o, const char *host)
{
    if (!host || !*host) return false;
    char h[HOST_MAX];
    int port;
    if (parse_hostport(host, strlen(host), h, &port) != 0) return false;
    if (strcmp(h, o->host) != 0) return false;
    return port > 0 ? port == o->port : o->port == default_port(o->scheme);
}

/* Whether origin o matches allowed entry e. */
static bool entry_match(const origin_parts *e, const origin_parts *o)
{
    if (!e->any_scheme && strcmp(e->scheme, o->scheme) != 0) return false;
    if (e->port > 0 && e->port != o->port) return false;
    if (e->wildcard) {
        size_t el = strlen(e->host), ol = strlen(o->host);
        return ol > el && strcmp(o->host + ol - el, e->host) == 0;
    }
    return strcmp(e->host, o->host) == 0;
}

typedef enum { TOK_ANY, TOK_SAME, TOK_NULL, TOK_ENTRY, TOK_BAD } tok_kind;

static tok_kind classify(const char *p, size_t n, origin_parts *e)
{
    if (n == 1 && p[0] == '*') return TOK_ANY;
    if (n == 4 && !strncasecmp(p, "same", 4)) return TOK_SAME;
    if (n == 4 && !strncasecmp(p, "null", 4)) return TOK_NULL;
    return parse_origin(p, n, true, e) == 0 ? TOK_ENTRY : TOK_BAD;
}

/* The next entry of list at *cur (separators: comma, space, tab): returns
 * its start and length in *n and advances *cur, or NULL at the end. */
static const char *next_entry(const char **cur, size_t *n)
{
    const char *p = *cur;
    if (!p) return NULL;
    p += strspn(p, " ,\t");
    if (!*p) return NULL;
    *n = strcspn(p, " ,\t");
    *cur = p + *n;
    return p;
}

bool phx_origin_allowed(const char *origin, const char *host, const char *allowed)
{
    if (!origin) return true; /* not a browser: native apps, servers */
    origin_parts o;
    bool ok = parse_origin(origin, strlen(origin), false, &o) == 0;
    bool is_null = !strcmp(origin, "null");
    if (!allowed || !*allowed) return ok && same_site(&o, host);
    bool any_entry = false;
    const char *cur = allowed, *p;
    size_t n;
    while ((p = next_entry(&cur, &n))) {
        any_entry = true;
        origin_parts e;
        switch (classify(p, n, &e)) {
        case TOK_ANY: return true;
        case TOK_SAME:
            if (ok && same_site(&o, host)) return true;
            break;
        case TOK_NULL:
            if (is_null) return true;
            break;
        case TOK_ENTRY:
            if (ok && entry_match(&e, &o)) return true;
            break;
        case TOK_BAD: break;
        }
    }
    if (!any_entry) return ok && same_site(&o, host); /* only separators: the default */
    return false;
}

int phx_origin_list_check(const char *allowed, char *err, size_t errlen)
{
    const char *cur = allowed, *p;
    size_t n;
    while ((p = next_entry(&cur, &n))) {
        origin_parts e;
        if (classify(p, n, &e) == TOK_BAD) {
            snprintf(err, errlen, "not an origin: \"%.*s\" (expected *, same, null, scheme://host[:port], //host[:port] or scheme://*.domain)",
                     (int)(n > 100 ? 100 : n), p);
            return -1;
        }
    }
    return 0;
}
