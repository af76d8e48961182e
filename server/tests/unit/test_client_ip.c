/* test_client_ip.c — trusted-proxy support (client_ip.c): address and CIDR
 * parsing (base/cidr.c), the SB_TRUSTED_PROXIES list, and the client address of a request
 * from trusted and untrusted peers with X-Forwarded-For / X-Real-IP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http/client_ip.h"
#include "http/http.h"

/* Parses s as a CIDR block; asserts success and returns it. */
static cidr_net net(const char *s)
{
    cidr_net n;
    assert_int_equal(cidr_net_parse(s, strlen(s), &n), 0);
    return n;
}

/* The canonical text of block n, "addr/prefix". */
static const char *net_text(const cidr_net *n)
{
    static char out[96];
    char a[64];
    cidr_addr_format(&n->a, a, sizeof a);
    snprintf(out, sizeof out, "%s/%d", a, n->prefix);
    return out;
}

static bool bad_net(const char *s)
{
    cidr_net n;
    return cidr_net_parse(s, strlen(s), &n) != 0;
}

static void test_cidr_v4(void **state)
{
    cidr_net n = net("10.0.0.0/8");
    assert_int_equal(n.a.family, 4);
    assert_string_equal(net_text(&n), "10.0.0.0/8");
    n = net("127.0.0.1");
    assert_string_equal(net_text(&n), "127.0.0.1/32"); /* bare address: one host */
    n = net("192.168.77.200/20");
    assert_string_equal(net_text(&n), "192.168.64.0/20"); /* host bits cleared */
    n = net("1.2.3.4/0");
    assert_string_equal(net_text(&n), "0.0.0.0/0");
    n = net("::ffff:10.1.0.0/112"); /* IPv4-mapped block: IPv4 */
    assert_int_equal(n.a.family, 4);
    assert_string_equal(net_text(&n), "10.1.0.0/16");
    n = net("::ffff:10.1.2.3");
    assert_string_equal(net_text(&n), "10.1.2.3/32");
}

static void test_cidr_v6(void **state)
{
    cidr_net n = net("::1");
    assert_int_equal(n.a.family, 6);
    assert_string_equal(net_text(&n), "::1/128");
    n = net("2001:db8:abcd:12::5/64");
    assert_string_equal(net_text(&n), "2001:db8:abcd:12::/64");
    n = net("fd00::/8");
    assert_string_equal(net_text(&n), "fd00::/8");
    n = net("2001:db8::ff/121");
    assert_string_equal(net_text(&n), "2001:db8::80/121");
    n = net("::/0");
    assert_string_equal(net_text(&n), "::/0");
}

static void test_cidr_bad(void **state)
{
    const char *bad[] = {
        "", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8",
        "10.0.0.0/ 8", " 10.0.0.0", "10.0.0.0/0008", "10.0.0", "10.0.0.0.0", "256.0.0.1",
        "01.2.3.4", "10.0.0.0/8x", "host.example", "::1/129", "2001:db8::/1000", "2001:db8:::1",
        "::ffff:10.0.0.0/95", "[::1]", "[::1]/128", "fe80::1%eth0", "1.2.3.4:80", "*",
        "1.2.3.4/a", "12345678901234567890123456789012345678901234567890",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!bad_net(bad[i])) fail_msg("accepted bad block \"%s\"", bad[i]);
    /* a block cut short by its length is judged on that length only */
    cidr_net n;
    assert_int_equal(cidr_net_parse("10.0.0.0/8", 4, &n), -1); /* "10.0" */
    assert_int_equal(cidr_net_parse("10.0.0.0/8,junk", 10, &n), 0);
    assert_string_equal(net_text(&n), "10.0.0.0/8");
}

static void test_list_parse(void **state)
{
    cidr_list l;
    char err[256];
    assert_int_equal(cidr_list_parse("", &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(cidr_list_parse("   ", &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(cidr_list_parse("127.0.0.1/32,10.0.0.0/8,::1", &l, err, sizeof err), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(net_text(&l.nets[1]), "10.0.0.0/8");
    assert_int_equal(cidr_list_parse(" 127.0.0.1 , fd00::/8\t", &l, err, sizeof err), 0);
    assert_int_equal(l.n, 2);

    /* malformed: -1, an empty list, and a message naming the entry */
    assert_int_equal(cidr_list_parse("127.0.0.1,10.0.0.0/33", &l, err, sizeof err), -1);
    assert_int_equal(l.n, 0);
    assert_non_null(strstr(err, "entry 2"));
    assert_non_null(strstr(err, "10.0.0.0/33"));
    assert_int_equal(cidr_list_parse("127.0.0.1,,::1", &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "entry 2 is empty"));
    assert_int_equal(cidr_list_parse("127.0.0.1,", &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "entry 2 is empty"));
    assert_int_equal(cidr_list_parse("nginx", &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"nginx\""));
    assert_int_equal(cidr_list_parse("10.0.0.0/8 192.168.0.0/16", &l, err, sizeof err), -1);

    /* at most CIDR_MAX_NETS entries */
    char big[CIDR_MAX_NETS * 16 + 32];
    size_t off = 0;
    for (int i = 0; i < CIDR_MAX_NETS; i++)
        off += (size_t)snprintf(big + off, sizeof big - off, "%s10.0.%d.0/24", i ? "," : "", i);
    assert_int_equal(cidr_list_parse(big, &l, err, sizeof err), 0);
    assert_int_equal(l.n, CIDR_MAX_NETS);
    snprintf(big + off, sizeof big - off, ",10.1.0.0/16");
    assert_int_equal(cidr_list_parse(big, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than"));

    /* the process-wide setting: a bad spec changes nothing */
    assert_int_equal(client_ip_configure("10.0.0.0/8,::1", err, sizeof err), 0);
    assert_int_equal(client_ip_trusted_count(), 2);
    assert_int_equal(client_ip_configure("10.0.0.0/8,oops", err, sizeof err), -1);
    assert_int_equal(client_ip_trusted_count(), 2);
    assert_int_equal(client_ip_configure("", err, sizeof err), 0);
    assert_int_equal(client_ip_trusted_count(), 0);
}

/* True when address text `ip` is in list `spec`. */
static bool in_list(const char *spec, const char *ip)
{
    cidr_list l;
    char err[256];
    assert_int_equal(cidr_list_parse(spec, &l, err, sizeof err), 0);
    cidr_addr a;
    assert_int_equal(cidr_addr_parse(ip, strlen(ip), &a), 0);
    return cidr_list_match(&l, &a);
}

static void test_match(void **state)
{
    const char *spec = "127.0.0.1,10.0.0.0/8,192.168.16.0/20,2001:db8:1::/48,::1";
    assert_true(in_list(spec, "127.0.0.1"));
    assert_false(in_list(spec, "127.0.0.2"));
    assert_true(in_list(spec, "10.255.1.2"));
    assert_false(in_list(spec, "11.0.0.1"));
    assert_true(in_list(spec, "192.168.31.255"));
    assert_false(in_list(spec, "192.168.32.0"));
    assert_false(in_list(spec, "192.168.15.255"));
    assert_true(in_list(spec, "2001:db8:1:ffff::9"));
    assert_false(in_list(spec, "2001:db8:2::9"));
    assert_true(in_list(spec, "::1"));
    assert_false(in_list(spec, "::2"));
    assert_true(in_list(spec, "::ffff:10.9.8.7")); /* a dual-stack socket's IPv4 peer */
    assert_false(in_list(spec, "::a00:1"));         /* IPv4-compatible is not IPv4 */
    assert_true(in_list("0.0.0.0/0", "203.0.113.9"));
    assert_false(in_list("0.0.0.0/0", "2001:db8::1"));
    assert_true(in_list("::/0", "2001:db8::1"));
}

static void test_hop_parse(void **state)
{
    char out[64];
    struct {
        const char *in, *want; /* want NULL: refused */
    } cases[] = {
        {"203.0.113.7", "203.0.113.7"},
        {"  203.0.113.7\t", "203.0.113.7"},
        {"203.0.113.7:51234", "203.0.113.7"},
        {"2001:DB8::7", "2001:db8::7"},
        {"[2001:db8::7]", "2001:db8::7"},
        {"[2001:db8::7]:443", "2001:db8::7"},
        {"::ffff:203.0.113.7", "203.0.113.7"},
        {"unknown", NULL},
        {"", NULL},
        {"203.0.113.7:", NULL},
        {"203.0.113.7:123456", NULL},
        {"203.0.113.7:http", NULL},
        {"[203.0.113.7]", NULL},
        {"[2001:db8::7", NULL},
        {"[2001:db8::7]x", NULL},
        {"[2001:db8::7]:", NULL},
        {"2001:db8::7:", NULL},
        {"_hidden", NULL},
        {"203.0.113.7 203.0.113.8", NULL},
        {"10.0.0.1/8", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cidr_addr a;
        int rc = client_ip_hop_parse(cases[i].in, strlen(cases[i].in), &a);
        if (!cases[i].want) {
            if (rc == 0) fail_msg("accepted bad entry \"%s\"", cases[i].in);
            continue;
        }
        if (rc != 0) fail_msg("refused entry \"%s\"", cases[i].in);
        cidr_addr_format(&a, out, sizeof out);
        assert_string_equal(out, cases[i].want);
    }
}

/* The client address under `spec` for a request from `peer` with the given
 * X-Forwarded-For values (NULL-terminated) and X-Real-IP. */
static const char *resolve(const char *spec, const char *peer, const char *const *xff,
                           const char *real_ip)
{
    static char out[48];
    cidr_list l;
    char err[256];
    assert_int_equal(cidr_list_parse(spec, &l, err, sizeof err), 0);
    int n = 0;
    while (xff && xff[n]) n++;
    client_ip_resolve(&l, peer, xff, n, real_ip, out, sizeof out);
    return out;
}

#define XFF(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_untrusted_peer(void **state)
{
    /* nobody trusted (the default): headers never matter */
    assert_string_equal(resolve("", "203.0.113.5", XFF("198.51.100.1"), "198.51.100.2"), "203.0.113.5");
    /* a spoofed header from a peer outside the list is ignored */
    const char *spec = "127.0.0.1,10.0.0.0/8";
    assert_string_equal(resolve(spec, "203.0.113.5", XFF("198.51.100.1"), NULL), "203.0.113.5");
    assert_string_equal(resolve(spec, "203.0.113.5", NULL, "198.51.100.2"), "203.0.113.5");
    assert_string_equal(resolve(spec, "11.0.0.1", XFF("10.0.0.1, 198.51.100.1"), NULL), "11.0.0.1");
    assert_string_equal(resolve(spec, "2001:db8::1", XFF("198.51.100.1"), NULL), "2001:db8::1");
    /* the peer text is passed on as it is */
    assert_string_equal(resolve(spec, "::ffff:203.0.113.5", XFF("198.51.100.1"), NULL),
                        "::ffff:203.0.113.5");
    /* an unreadable peer (getpeername failed) trusts nothing */
    assert_string_equal(resolve(spec, "", XFF("198.51.100.1"), NULL), "");
    assert_string_equal(resolve(spec, NULL, XFF("198.51.100.1"), NULL), "");
}

static void test_trusted_peer(void **state)
{
    const char *spec = "127.0.0.1,10.0.0.0/8";
    /* one proxy: nginx's $proxy_add_x_forwarded_for */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("198.51.100.1"), NULL), "198.51.100.1");
    assert_string_equal(resolve(spec, "::ffff:127.0.0.1", XFF("198.51.100.1"), NULL), "198.51.100.1");
    /* what the client wrote itself sits left of what the proxy appended */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("6.6.6.6, 198.51.100.1"), NULL), "198.51.100.1");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("6.6.6.6,198.51.100.1"), NULL), "198.51.100.1");
    /* no header: the peer (a health check by the proxy itself) */
    assert_string_equal(resolve(spec, "127.0.0.1", NULL, NULL), "127.0.0.1");
    /* X-Real-IP only without X-Forwarded-For */
    assert_string_equal(resolve(spec, "127.0.0.1", NULL, "198.51.100.9"), "198.51.100.9");
    assert_string_equal(resolve(spec, "127.0.0.1", NULL, " [2001:db8::9]:80 "), "2001:db8::9");
    assert_string_equal(resolve(spec, "127.0.0.1", NULL, "unknown"), "127.0.0.1");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("198.51.100.1"), "198.51.100.9"), "198.51.100.1");
    /* forwarded addresses come out in canonical text */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("[2001:DB8:0::1]:443"), NULL), "2001:db8::1");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("198.51.100.1:40000"), NULL), "198.51.100.1");
}

static void test_proxy_chains(void **state)
{
    const char *spec = "127.0.0.1,10.0.0.0/8,fd00::/8";
    /* client -> CDN edge (10.1.1.1) -> internal LB (10.2.2.2) -> nginx (127.0.0.1) */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("198.51.100.1, 10.1.1.1, 10.2.2.2"), NULL),
                        "198.51.100.1");
    /* the first untrusted from the right wins, not the leftmost */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("1.1.1.1, 198.51.100.1, 10.1.1.1"), NULL),
                        "198.51.100.1");
    /* an untrusted hop in the middle is the client: whatever lies left of it
     * was written by someone we do not trust */
    assert_string_equal(resolve(spec, "10.9.9.9", XFF("10.3.3.3, 203.0.113.4, 10.1.1.1"), NULL),
                        "203.0.113.4");
    /* several X-Forwarded-For headers are one list, in order */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("6.6.6.6", "198.51.100.1, 10.1.1.1", "10.2.2.2"), NULL),
                        "198.51.100.1");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("6.6.6.6", "198.51.100.1"), NULL), "198.51.100.1");
    /* every hop trusted: the leftmost (an internal client) */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("10.5.5.5, 10.1.1.1"), NULL), "10.5.5.5");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("127.0.0.1"), NULL), "127.0.0.1");
    /* IPv6 all the way */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("2001:db8:5::5, fd00::1, fd12::2"), NULL),
                        "2001:db8:5::5");
    assert_string_equal(resolve("::1,fd00::/8", "::1", XFF("2001:db8:5::5"), NULL), "2001:db8:5::5");
    assert_string_equal(resolve("::1,fd00::/8", "::1", XFF("fd00::9"), NULL), "fd00::9");
}

static void test_garbage(void **state)
{
    const char *spec = "127.0.0.1,10.0.0.0/8";
    /* garbage left of the client (written by the client) does not matter */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("'; DROP TABLE x, <script>, 198.51.100.1"), NULL),
                        "198.51.100.1");
    /* garbage rightmost: nothing to vouch for, the peer */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("198.51.100.1, unknown"), NULL), "127.0.0.1");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("not an address"), NULL), "127.0.0.1");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("\x01\xff\x7f"), NULL), "127.0.0.1");
    /* garbage behind trusted hops: the last address passed */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF("198.51.100.1, unknown, 10.1.1.1"), NULL), "10.1.1.1");
    /* empty elements are skipped; an empty or blank header is no address */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF(",198.51.100.1,, ,"), NULL), "198.51.100.1");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF(""), NULL), "127.0.0.1");
    assert_string_equal(resolve(spec, "127.0.0.1", XFF(" , ,"), NULL), "127.0.0.1");
    /* an empty X-Forwarded-For still hides X-Real-IP */
    assert_string_equal(resolve(spec, "127.0.0.1", XFF(""), "198.51.100.9"), "127.0.0.1");
    /* an over-long entry is refused, not truncated */
    char longe[200];
    memset(longe, '1', sizeof longe - 1);
    longe[sizeof longe - 1] = 0;
    assert_string_equal(resolve(spec, "127.0.0.1", XFF(longe), NULL), "127.0.0.1");
}

static void test_hop_cap(void **state)
{
    const char *spec = "10.0.0.0/8";
    /* 40 trusted hops then the client at the far left: only CLIENT_IP_MAX_HOPS are
     * walked, so the answer is the leftmost hop walked, not the client */
    char h[40 * 16 + 32];
    size_t off = (size_t)snprintf(h, sizeof h, "198.51.100.1");
    for (int i = 0; i < 40; i++) off += (size_t)snprintf(h + off, sizeof h - off, ", 10.0.0.%d", i);
    char want[32];
    snprintf(want, sizeof want, "10.0.0.%d", 40 - CLIENT_IP_MAX_HOPS);
    assert_string_equal(resolve(spec, "10.0.0.1", XFF(h), NULL), want);
    /* the client within the cap is found */
    off = (size_t)snprintf(h, sizeof h, "198.51.100.1");
    for (int i = 0; i < CLIENT_IP_MAX_HOPS - 1; i++) off += (size_t)snprintf(h + off, sizeof h - off, ",10.0.0.%d", i);
    assert_string_equal(resolve(spec, "10.0.0.1", XFF(h), NULL), "198.51.100.1");
    /* empty elements count towards the cap (a header of commas costs little) */
    char commas[20000];
    memset(commas, ',', sizeof commas - 1);
    commas[sizeof commas - 1] = 0;
    memcpy(commas, "198.51.100.1", 12);
    assert_string_equal(resolve(spec, "10.0.0.1", XFF(commas), NULL), "10.0.0.1");
    /* the cap spans headers too */
    const char *many[CLIENT_IP_MAX_HOPS + 3];
    many[0] = "198.51.100.1";
    for (int i = 1; i < CLIENT_IP_MAX_HOPS + 2; i++) many[i] = "10.0.0.7";
    many[CLIENT_IP_MAX_HOPS + 2] = NULL;
    assert_string_equal(resolve(spec, "10.0.0.1", many, NULL), "10.0.0.7");
    many[2] = NULL; /* "198.51.100.1", "10.0.0.7" */
    assert_string_equal(resolve(spec, "10.0.0.1", many, NULL), "198.51.100.1");
}

/* A request with the given header lines ("name", "value", ...; names
 * lower-case as the HTTP layer stores them). */
static sb_req *mkreq(int n, const char *const *nv)
{
    sb_req *r = calloc(1, sizeof *r);
    r->headers = calloc((size_t)n, sizeof *r->headers);
    for (int i = 0; i < n; i++) {
        r->headers[i].name = (char *)nv[2 * i];
        r->headers[i].value = (char *)nv[2 * i + 1];
    }
    r->nheaders = n;
    return r;
}

static void test_of_request(void **state)
{
    char err[256];
    const char *nv[] = {
        "host", "example",
        "x-forwarded-for", "6.6.6.6",
        "x-real-ip", "7.7.7.7",
        "x-forwarded-for", "198.51.100.1, 10.1.1.1",
        "x-forwarded-host", "1.1.1.1",
    };
    sb_req *r = mkreq(5, nv);
    /* none trusted: the peer */
    assert_int_equal(client_ip_configure("", err, sizeof err), 0);
    client_ip_of_request(r, "127.0.0.1");
    assert_string_equal(r->client_ip, "127.0.0.1");
    /* trusted: both X-Forwarded-For headers, in order */
    assert_int_equal(client_ip_configure("127.0.0.1,10.0.0.0/8", err, sizeof err), 0);
    client_ip_of_request(r, "127.0.0.1");
    assert_string_equal(r->client_ip, "198.51.100.1");
    client_ip_of_request(r, "192.0.2.1"); /* untrusted peer */
    assert_string_equal(r->client_ip, "192.0.2.1");
    /* the peer may be req->client_ip itself */
    snprintf(r->client_ip, sizeof r->client_ip, "127.0.0.1");
    client_ip_of_request(r, r->client_ip);
    assert_string_equal(r->client_ip, "198.51.100.1");
    /* X-Real-IP (the last one) when no X-Forwarded-For */
    const char *nv2[] = {"x-real-ip", "7.7.7.7", "x-real-ip", "2001:db8::2"};
    sb_req *r2 = mkreq(2, nv2);
    client_ip_of_request(r2, "127.0.0.1");
    assert_string_equal(r2->client_ip, "2001:db8::2");
    /* more headers than the hop cap: the last ones count */
    const char *nv3[2 * (CLIENT_IP_MAX_HOPS + 5)];
    for (int i = 0; i < CLIENT_IP_MAX_HOPS + 5; i++) {
        nv3[2 * i] = "x-forwarded-for";
        nv3[2 * i + 1] = i == 0 ? "198.51.100.1" : "10.0.0.3";
    }
    sb_req *r3 = mkreq(CLIENT_IP_MAX_HOPS + 5, nv3);
    client_ip_of_request(r3, "127.0.0.1");
    assert_string_equal(r3->client_ip, "10.0.0.3");
    r3->headers[4].value = "203.0.113.8"; /* 33rd header from the end: not reached */
    client_ip_of_request(r3, "127.0.0.1");
    assert_string_equal(r3->client_ip, "10.0.0.3");
    r3->headers[5].value = "203.0.113.8"; /* 32nd: reached */
    client_ip_of_request(r3, "127.0.0.1");
    assert_string_equal(r3->client_ip, "203.0.113.8");
    assert_int_equal(client_ip_configure("", err, sizeof err), 0);
    free(r->headers);
    free(r);
    free(r2->headers);
    free(r2);
    free(r3->headers);
    free(r3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_v4),        cmocka_unit_test(test_cidr_v6),
        cmocka_unit_test(test_cidr_bad),       cmocka_unit_test(test_list_parse),
        cmocka_unit_test(test_match),          cmocka_unit_test(test_hop_parse),
        cmocka_unit_test(test_untrusted_peer), cmocka_unit_test(test_trusted_peer),
        cmocka_unit_test(test_proxy_chains),   cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_hop_cap),        cmocka_unit_test(test_of_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
