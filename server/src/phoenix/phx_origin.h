/* phx_origin.h — Phoenix's check_origin for the socket transports: which
 * browser pages may open a socket (WebSocket upgrade or long-poll session).
 *
 * A browser sends `Origin` with every WebSocket upgrade and cross-site XHR;
 * without the check, a page on any site could open a socket with a token it
 * holds. Native apps send no Origin and always pass.
 *
 * The allowed list (SB_ALLOWED_ORIGINS) is a comma- or space-separated list
 * of entries:
 *   "*"                       any origin;
 *   "https://chat.example.com" that scheme, host and port (the scheme's
 *                             default port when none is written: 80 for
 *                             http/ws, 443 for https/wss);
 *   "//chat.example.com"       that host on any scheme (the port must match
 *                             when one is written);
 *   "https://" followed by "*.example.com": any subdomain of example.com
 *                             (not example.com itself; list it too);
 *   "same"                     the same site (the default below);
 *   "null"                     the opaque origin of sandboxed pages and files.
 * Empty list: only the same site, i.e. an Origin whose host and port equal
 * the request's Host (behind a trusted proxy: its X-Forwarded-Host). When
 * the Host carries no port, the Origin's port must be its scheme's default.
 * Host names compare case-insensitively. */
#ifndef SB_PHX_ORIGIN_H
#define SB_PHX_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* Whether a connect whose Origin header is `origin` (NULL: no header) may
 * proceed, given the host the request was sent to (`host`: a Host or
 * X-Forwarded-Host value, "name[:port]" or "[v6][:port]"; NULL or "" when
 * absent) and the allowed list `allowed` (syntax above; NULL or "" for the
 * same site only). A malformed Origin is refused unless "*" is listed. Pure;
 * thread-safe. */
bool phx_origin_allowed(const char *origin, const char *host, const char *allowed);
/* Checks `allowed` (SB_ALLOWED_ORIGINS) at start: returns 0, or -1 with the
 * offending entry described in err. */
int phx_origin_list_check(const char *allowed, char *err, size_t errlen);

#endif
