/* cidr.h — IPv4 and IPv6 addresses, CIDR blocks and lists of blocks (the
 * syntax of SB_TRUSTED_PROXIES): parsing, matching, formatting. Pure;
 * thread-safe. The request-side use (X-Forwarded-For) is http/client_ip.h. */
#ifndef SB_CIDR_H
#define SB_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIDR_MAX_NETS 64 /* entries of a list (SB_TRUSTED_PROXIES) */

typedef struct cidr_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t b[16];  /* network order; IPv4 in b[0..3] */
} cidr_addr;

typedef struct cidr_net {
    cidr_addr a;    /* host bits cleared */
    uint8_t prefix; /* 0..32 (IPv4) or 0..128 (IPv6) */
} cidr_net;

typedef struct cidr_list {
    int n;
    cidr_net nets[CIDR_MAX_NETS];
} cidr_list;

/* Parses exactly one IPv4 or IPv6 address (s[0..len), no port, no
 * brackets, no spaces) into *out; an IPv4-mapped IPv6 address becomes IPv4.
 * Returns 0, or -1 if it is not an address. */
int cidr_addr_parse(const char *s, size_t len, cidr_addr *out);
/* Parses "address" or "address/prefix" (prefix 0-32 for IPv4, 0-128 for
 * IPv6; a bare address is a /32 or /128; host bits past the prefix are
 * cleared; an IPv4-mapped block needs a prefix >= 96 and becomes IPv4).
 * Returns 0, or -1 if malformed. */
int cidr_net_parse(const char *s, size_t len, cidr_net *out);
/* Parses a comma-separated list of cidr_net entries (spaces around entries
 * allowed; a blank spec is the empty list) into *out. Returns 0, or -1 with
 * a message naming the bad entry in err (empty entry, bad address or prefix,
 * more than CIDR_MAX_NETS entries); *out is then the empty list. */
int cidr_list_parse(const char *spec, cidr_list *out, char *err, size_t errlen);
/* True when a lies in one of the list's blocks. */
bool cidr_list_match(const cidr_list *l, const cidr_addr *a);
/* Writes a's canonical text (inet_ntop) into out (>= 46 bytes for IPv6). */
void cidr_addr_format(const cidr_addr *a, char *out, size_t outlen);

#endif
