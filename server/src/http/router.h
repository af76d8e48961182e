/* router.h — maps (method, path) to handlers. Routes are registered at start,
 * before the reactors run, and only read afterwards. Patterns are literal
 * segments and ":name" captures ("/api/v1/users/:id"); captures land in
 * req->params in order. A path that matches with another method is a 405; a
 * path that matches no pattern goes to the fallback (public GET/HEAD), else
 * is a 404. */
#ifndef SB_ROUTER_H
#define SB_ROUTER_H

#include "http/http.h"

typedef void (*route_fn)(sb_req *req);
/* Asked for a public GET/HEAD outside /api/ that matched no route: answers
 * it and returns true, or returns false (request untouched: a 404 follows). */
typedef bool (*router_fallback_fn)(sb_req *req);

/* A route's method that matches every method (the handler checks it). */
#define ROUTER_ANY_METHOD (-1)

/* Registers a route; method is an llhttp method (HTTP_GET...) or
 * ROUTER_ANY_METHOD. Routes are tried in the order registered. */
void router_add(int method, const char *pattern, route_fn fn);
/* Registers a route whose handler takes the request body as a stream
 * (http_body_read): it runs when the headers are in (public listener). */
void router_add_stream(int method, const char *pattern, route_fn fn);
/* True if (method, path) on the public listener goes to a route added
 * with router_add_stream (path: the decoded path, without the query). */
bool router_streams_body(int method, const char *path, bool admin);
/* Registers a route on the admin listener. */
void router_add_admin(int method, const char *pattern, route_fn fn);
/* Sets the public listener's fallback (main.c: the static file server).
 * Call once, before the reactors run; NULL (the default): a 404. */
void router_set_fallback(router_fallback_fn fn);
/* Dispatches a parsed request (admin: which listener it came on). */
void router_dispatch(sb_req *req, bool admin);

#endif
