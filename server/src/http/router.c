/* router.c — (method, path pattern) -> handler tables for the public and
 * admin listeners. Registration happens before the reactors start. */
#include "http/router.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/metrics.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct route {
    int method;
    char *pattern;
    route_fn fn;
    uint32_t *codes; /* sb_http_requests_total{route,code} by status class */
    bool stream; /* takes its body as a stream (router_add_stream) */
} route;

typedef struct table {
    route *v;
    int n;
} table;

static table g_public, g_admin;
static router_fallback_fn g_fallback;

/* The 5 request counters (1xx..5xx) of a route pattern on a listener;
 * routes of the same pattern share them. */
static uint32_t *route_counters(bool admin, const char *pattern)
{
    uint32_t *c = malloc(5 * sizeof *c);
    if (!c) abort();
    for (int i = 0; i < 5; i++) {
        char l[300];
        snprintf(l, sizeof l, "listener=\"%s\",route=\"%.200s\",code=\"%dxx\"", admin ? "admin" : "public",
                 pattern, i + 1);
        c[i] = metrics_counter("sb_http_requests_total", "HTTP requests answered, by listener, route pattern and status class.", l);
    }
    return c;
}

/* requests that matched no route, and the static files (fallback) */
static uint32_t *g_unmatched[2], *g_static;
__attribute__((constructor)) static void router_metrics(void)
{
    g_unmatched[0] = route_counters(false, "(unmatched)");
    g_unmatched[1] = route_counters(true, "(unmatched)");
    g_static = route_counters(false, "(static)");
}

static void add(table *t, int method, const char *pattern, route_fn fn, bool stream)
{
    route *nv = realloc(t->v, (size_t)(t->n + 1) * sizeof *nv);
    if (!nv) abort();
    t->v = nv;
    t->v[t->n++] = (route){method, strdup(pattern), fn, route_counters(t == &g_admin, pattern), stream};
}

void router_add(int method, const char *pattern, route_fn fn) { add(&g_public, method, pattern, fn, false); }
void router_add_stream(int method, const char *pattern, route_fn fn) { add(&g_public, method, pattern, fn, true); }
void router_add_admin(int method, const char *pattern, route_fn fn) { add(&g_admin, method, pattern, fn, false); }
void router_set_fallback(router_fallback_fn fn) { g_fallback = fn; }

/* Matches path against pattern; on success stores captures (pointers into
 * a copy of the path owned by req->path segments) and returns true. With
 * req NULL it only tests, and never changes path. */
static bool match(const char *pat, char *path, sb_req *req)
{
    int np = 0;
    const char *pp = pat;
    char *sp = path;
    const char *caps[SB_MAX_ROUTE_PARAMS];
    size_t caplen[SB_MAX_ROUTE_PARAMS];
    while (*pp && *sp) {
        if (*pp != '/' || *sp != '/') return false;
        pp++;
        sp++;
        const char *pe = strchr(pp, '/');
        size_t pl = pe ? (size_t)(pe - pp) : strlen(pp);
        char *se = strchr(sp, '/');
        size_t sl = se ? (size_t)(se - sp) : strlen(sp);
        if (pp[0] == ':') {
            if (sl == 0 || np >= SB_MAX_ROUTE_PARAMS) return false;
            caps[np] = sp;
            caplen[np++] = sl;
        } else if (pl != sl || memcmp(pp, sp, pl) != 0) {
            return false;
        }
        pp += pl;
        sp += sl;
    }
    if (*pp || *sp) return false;
    if (!req) return true; /* only a test: the path stays whole */
    /* cut the path into NUL-terminated captures in place */
    for (int i = 0; i < np; i++) ((char *)caps[i])[caplen[i]] = 0;
    for (int i = 0; i < np; i++) req->params[i] = caps[i];
    req->nparams = np;
    return true;
}

bool router_streams_body(int method, const char *path, bool admin)
{
    if (admin || !path) return false;
    const table *t = &g_public;
    for (int i = 0; i < t->n; i++) {
        if (!match(t->v[i].pattern, (char *)path, NULL)) continue;
        if (t->v[i].method != method && t->v[i].method != ROUTER_ANY_METHOD) continue;
        return t->v[i].stream; /* the route dispatch would pick */
    }
    return false;
}

void router_dispatch(sb_req *req, bool admin)
{
    table *t = admin ? &g_admin : &g_public;
    bool path_matched = false;
    char allow[128] = "Allow: "; /* the methods of the path, for a 405 */
    for (int i = 0; i < t->n; i++) {
        /* a test first, which leaves the path whole (no copy per route) */
        if (!match(t->v[i].pattern, req->path, NULL)) continue;
        path_matched = true;
        int m = req->method == HTTP_HEAD ? HTTP_GET : req->method;
        if (t->v[i].method != m && t->v[i].method != ROUTER_ANY_METHOD) {
            const char *name = llhttp_method_name((llhttp_method_t)t->v[i].method);
            size_t n = strlen(allow);
            if (n + strlen(name) + 12 < sizeof allow)
                snprintf(allow + n, sizeof allow - n, "%s%s%s", n > 7 ? ", " : "", name,
                         t->v[i].method == HTTP_GET ? ", HEAD" : "");
            continue;
        }
        match(t->v[i].pattern, req->path, req);
        req->metric_codes = t->v[i].codes;
        t->v[i].fn(req);
        return;
    }
    req->metric_codes = g_unmatched[admin];
    if (path_matched) {
        strcat(allow, "\r\n");
        http_respond_error_h(req, 405, "method_not_allowed", "method not allowed for this path", NULL,
                           allow);
        return;
    }
    if (!admin && g_fallback && (req->method == HTTP_GET || req->method == HTTP_HEAD) &&
        strncmp(req->path, "/api/", 5) != 0 && (req->metric_codes = g_static, g_fallback(req)))
        return;
    req->metric_codes = g_unmatched[admin];
    http_respond_error(req, 404, "not_found", "no such route", NULL);
}
