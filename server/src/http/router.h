/* router.h — maps (method, path) to handlers. Routes are registered at start,
 * before the reactors run, and only read afterwards. Patterns are literal
 * segments and ":name" captures ("/api/v1/users/:id"); captures land in
 * req->params in order. A path that matches no pattern is a 404; a path that
 * matches with another method is a 405. */
#ifndef SB_ROUTER_H
#define SB_ROUTER_H

#include "http/http.h"

typedef void (*route_fn)(sb_req *req);

/* Registers a route; method is an llhttp method (HTTP_GET...). */
void router_add(int method, const char *pattern, route_fn fn);
/* Registers a route on the admin listener. */
void router_add_admin(int method, const char *pattern, route_fn fn);
/* Dispatches a parsed request (admin: which listener it came on). */
void router_dispatch(sb_req *req, bool admin);

#endif
