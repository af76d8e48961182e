/* client_ip.h — the client's address behind trusted reverse proxies
 * (SB_TRUSTED_PROXIES; targets S6).
 *
 * By default the client is the TCP peer. When the peer is one of the
 * configured proxies (addresses or CIDR blocks, IPv4 or IPv6), the client is
 * read from X-Forwarded-For the way nginx's real_ip_recursive does it: the
 * header's entries (several X-Forwarded-For headers count as one list, in
 * order) are walked from the right, entries that are themselves trusted
 * proxies are skipped, and the first untrusted one is the client. Rules at
 * the edges:
 *   - the peer is not trusted: the peer, whatever the headers say (a client
 *     cannot choose its own address by sending the header);
 *   - every entry walked is trusted (or the cap of CLIENT_IP_MAX_HOPS entries is
 *     reached first): the leftmost entry walked;
 *   - the walk meets an entry that is not an address ("unknown", garbage):
 *     it stops there and takes the last address it passed, or the peer when
 *     that entry was the rightmost;
 *   - no X-Forwarded-For: the last X-Real-IP if it is an address, else the
 *     peer.
 * Entries may carry a port ("192.0.2.1:5000", "[2001:db8::1]:443"); empty
 * list elements are skipped; IPv4-mapped IPv6 addresses count as IPv4.
 * RFC 7239 "Forwarded" is not read.
 *
 * The walk looks at no more than CLIENT_IP_MAX_HOPS entries and copies nothing to
 * the heap: the work per request is bounded whatever the headers hold (their
 * total size is already capped by SB_HTTP_MAX_HEADER). */
#ifndef SB_CLIENT_IP_H
#define SB_CLIENT_IP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/cidr.h"

struct sb_req;

#define CLIENT_IP_MAX_HOPS 32 /* X-Forwarded-For entries looked at per request */

/* Parses one X-Forwarded-For / X-Real-IP entry: surrounding spaces and tabs
 * are ignored, and besides a bare address "a.b.c.d:port", "[v6]" and
 * "[v6]:port" are accepted. Returns 0, or -1 (not an address). */
int client_ip_hop_parse(const char *s, size_t len, cidr_addr *out);
/* The client address of one request, by the rules above: `peer` is the TCP
 * peer's text, xff[0..nxff) the X-Forwarded-For header values in the order
 * received (only the last CLIENT_IP_MAX_HOPS matter), real_ip the X-Real-IP
 * value or NULL. Writes the peer as given, or a forwarded address in
 * canonical text, into out (always NUL-terminated). Pure; thread-safe. */
void client_ip_resolve(const cidr_list *trusted, const char *peer, const char *const *xff,
                       int nxff, const char *real_ip, char *out, size_t outlen);

/* Sets the process-wide trusted proxies (g_config.trusted_nets, which
 * config_load fills from SB_TRUSTED_PROXIES) from that syntax. Call before
 * any request is served (not synchronised with readers). Returns 0, or -1
 * with a message in err (nothing is changed). */
int client_ip_configure(const char *spec, char *err, size_t errlen);
/* Number of trusted-proxy entries configured (0: the peer is the client). */
int client_ip_trusted_count(void);
/* Sets req->client_ip from the peer's text (which may be req->client_ip
 * itself) and the request's headers under the configured proxies (just the
 * peer when there are none). */
void client_ip_of_request(struct sb_req *req, const char *peer);

#endif
