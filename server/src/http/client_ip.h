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
 *   - every entry walked is trusted (or the cap of CIP_MAX_HOPS entries is
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
 * The walk looks at no more than CIP_MAX_HOPS entries and copies nothing to
 * the heap: the work per request is bounded whatever the headers hold (their
 * total size is already capped by SB_HTTP_MAX_HEADER). */
#ifndef SB_CLIENT_IP_H
#define SB_CLIENT_IP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_req;

#define CIP_MAX_NETS 64 /* entries of SB_TRUSTED_PROXIES */
#define CIP_MAX_HOPS 32 /* X-Forwarded-For entries looked at per request */

typedef struct cip_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t b[16];  /* network order; IPv4 in b[0..3] */
} cip_addr;

typedef struct cip_net {
    cip_addr a;     /* host bits cleared */
    uint8_t prefix; /* 0..32 (IPv4) or 0..128 (IPv6) */
} cip_net;

typedef struct cip_list {
    int n;
    cip_net nets[CIP_MAX_NETS];
} cip_list;

/* Parses exactly one IPv4 or IPv6 address (s[0..len), no port, no
 * brackets, no spaces) into *out; an IPv4-mapped IPv6 address becomes IPv4.
 * Returns 0, or -1 if it is not an address. */
int cip_addr_parse(const char *s, size_t len, cip_addr *out);
/* Parses one X-Forwarded-For / X-Real-IP entry: surrounding spaces and tabs
 * are ignored, and besides a bare address "a.b.c.d:port", "[v6]" and
 * "[v6]:port" are accepted. Returns 0, or -1 (not an address). */
int cip_hop_parse(const char *s, size_t len, cip_addr *out);
/* Parses "address" or "address/prefix" (prefix 0-32 for IPv4, 0-128 for
 * IPv6; a bare address is a /32 or /128; host bits past the prefix are
 * cleared; an IPv4-mapped block needs a prefix >= 96 and becomes IPv4).
 * Returns 0, or -1 if malformed. */
int cip_net_parse(const char *s, size_t len, cip_net *out);
/* Parses a comma-separated list of cip_net entries (spaces around entries
 * allowed; a blank spec is the empty list) into *out. Returns 0, or -1 with
 * a message naming the bad entry in err (empty entry, bad address or prefix,
 * more than CIP_MAX_NETS entries); *out is then the empty list. */
int cip_list_parse(const char *spec, cip_list *out, char *err, size_t errlen);
/* True when a lies in one of the list's blocks. */
bool cip_list_match(const cip_list *l, const cip_addr *a);
/* Writes a's canonical text (inet_ntop) into out (>= 46 bytes for IPv6). */
void cip_addr_format(const cip_addr *a, char *out, size_t outlen);

/* The client address of one request, by the rules above: `peer` is the TCP
 * peer's text, xff[0..nxff) the X-Forwarded-For header values in the order
 * received (only the last CIP_MAX_HOPS matter), real_ip the X-Real-IP value
 * or NULL. Writes the peer as given, or a forwarded address in canonical
 * text, into out (always NUL-terminated). Pure; thread-safe. */
void cip_resolve(const cip_list *trusted, const char *peer, const char *const *xff, int nxff,
                 const char *real_ip, char *out, size_t outlen);

/* Sets the process-wide trusted proxies from SB_TRUSTED_PROXIES' syntax.
 * Call once at start, before any request is served (not synchronised with
 * readers). Returns 0, or -1 with a message in err (nothing is changed). */
int client_ip_configure(const char *spec, char *err, size_t errlen);
/* Number of trusted-proxy entries configured (0: the peer is the client). */
int client_ip_trusted_count(void);
/* Sets req->client_ip from the peer's text (which may be req->client_ip
 * itself) and the request's headers under the configured proxies (just the
 * peer when there are none). */
void client_ip_of_request(struct sb_req *req, const char *peer);

#endif
