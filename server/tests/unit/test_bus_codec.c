/* Unit tests for bus_codec.c: the inter-node envelope (round trip, every
 * malformed shape refused), the PUBLISH command as Redis reads it, and the
 * Redis URL parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "bus/bus.h"
#include "bus/bus_codec.h"

static void test_envelope_round_trip(void **st)
{
    const char payload[] = "{\"user_id\":\"42\",\"state\":\"start\"}";
    size_t n = bus_envelope_size(6, 6, sizeof payload - 1);
    char *buf = malloc(n);
    assert_int_equal(bus_envelope_encode(buf, BUS_TEXT, "node-a", 6, "typing", 6, payload,
                                         sizeof payload - 1),
                     n);
    bus_envelope e;
    assert_int_equal(bus_envelope_decode(buf, n, &e), 0);
    assert_int_equal(e.kind, BUS_TEXT);
    assert_int_equal(e.node_len, 6);
    assert_memory_equal(e.node, "node-a", 6);
    assert_int_equal(e.event_len, 6);
    assert_memory_equal(e.event, "typing", 6);
    assert_int_equal(e.payload_len, sizeof payload - 1);
    assert_memory_equal(e.payload, payload, sizeof payload - 1);
    free(buf);
}

static void test_envelope_binary_and_empty_payload(void **st)
{
    const unsigned char bin[] = {0, 1, 2, 0xff, 'S', 'B', 0};
    char buf[64];
    size_t n = bus_envelope_encode(buf, BUS_BINARY, "n", 1, "shout", 5, bin, sizeof bin);
    bus_envelope e;
    assert_int_equal(bus_envelope_decode(buf, n, &e), 0);
    assert_int_equal(e.kind, BUS_BINARY);
    assert_int_equal(e.payload_len, sizeof bin);
    assert_memory_equal(e.payload, bin, sizeof bin);
    n = bus_envelope_encode(buf, BUS_CONTROL, "n", 1, "hb", 2, NULL, 0);
    assert_int_equal(bus_envelope_decode(buf, n, &e), 0);
    assert_int_equal(e.kind, BUS_CONTROL);
    assert_int_equal(e.payload_len, 0);
}

static void test_envelope_encode_refuses_bad_names(void **st)
{
    char buf[600], big[300];
    memset(big, 'x', sizeof big);
    assert_int_equal(bus_envelope_encode(buf, BUS_TEXT, "", 0, "e", 1, "{}", 2), 0);
    assert_int_equal(bus_envelope_encode(buf, BUS_TEXT, "n", 1, "", 0, "{}", 2), 0);
    assert_int_equal(bus_envelope_encode(buf, BUS_TEXT, big, 256, "e", 1, "{}", 2), 0);
    assert_int_equal(bus_envelope_encode(buf, BUS_TEXT, "n", 1, big, 256, "{}", 2), 0);
    assert_int_equal(bus_envelope_encode(buf, 9, "n", 1, "e", 1, "{}", 2), 0);
    assert_true(bus_envelope_encode(buf, BUS_TEXT, big, 255, big, 255, "{}", 2) > 0);
}

static void test_envelope_decode_refuses_malformed(void **st)
{
    char good[32];
    size_t n = bus_envelope_encode(good, BUS_TEXT, "ab", 2, "ev", 2, "{}", 2);
    bus_envelope e;
    /* every truncation of a valid envelope short of its names is refused */
    for (size_t cut = 0; cut < 10; cut++) assert_int_equal(bus_envelope_decode(good, cut, &e), -1);
    assert_int_equal(bus_envelope_decode(good, 10, &e), 0); /* names complete, empty payload */
    assert_int_equal(bus_envelope_decode(good, n, &e), 0);
    char bad[32];
    memcpy(bad, good, n);
    bad[0] = 'X';
    assert_int_equal(bus_envelope_decode(bad, n, &e), -1);
    memcpy(bad, good, n);
    bad[2] = 2; /* version */
    assert_int_equal(bus_envelope_decode(bad, n, &e), -1);
    memcpy(bad, good, n);
    bad[3] = 0; /* kind */
    assert_int_equal(bus_envelope_decode(bad, n, &e), -1);
    memcpy(bad, good, n);
    bad[4] = 0; /* empty node */
    assert_int_equal(bus_envelope_decode(bad, n, &e), -1);
    memcpy(bad, good, n);
    bad[4] = (char)200; /* node longer than the buffer */
    assert_int_equal(bus_envelope_decode(bad, n, &e), -1);
    memcpy(bad, good, n);
    bad[7] = 0; /* empty event */
    assert_int_equal(bus_envelope_decode(bad, n, &e), -1);
    memcpy(bad, good, n);
    bad[7] = (char)250; /* event longer than the buffer */
    assert_int_equal(bus_envelope_decode(bad, n, &e), -1);
    assert_int_equal(bus_envelope_decode("", 0, &e), -1);
}

/* Reads a RESP bulk string "$<n>\r\n<data>\r\n" at *p. */
static void read_bulk(const char **p, const char **data, size_t *len)
{
    assert_int_equal(**p, '$');
    char *end;
    *len = strtoul(*p + 1, &end, 10);
    assert_memory_equal(end, "\r\n", 2);
    *data = end + 2;
    assert_memory_equal(*data + *len, "\r\n", 2);
    *p = *data + *len + 2;
}

static void test_resp_publish(void **st)
{
    size_t n;
    const char payload[] = "{\"a\":\"\r\n$5\r\n\"}"; /* RESP-looking bytes inside */
    char *cmd = bus_resp_publish("sb:", "t:", "conversation:7", BUS_TEXT, "node-1", "typing",
                                 payload, sizeof payload - 1, &n);
    assert_non_null(cmd);
    assert_memory_equal(cmd, "*3\r\n", 4);
    const char *p = cmd + 4, *d;
    size_t l;
    read_bulk(&p, &d, &l);
    assert_int_equal(l, 7);
    assert_memory_equal(d, "PUBLISH", 7);
    read_bulk(&p, &d, &l);
    assert_int_equal(l, strlen("sb:t:conversation:7"));
    assert_memory_equal(d, "sb:t:conversation:7", l);
    read_bulk(&p, &d, &l);
    bus_envelope e;
    assert_int_equal(bus_envelope_decode(d, l, &e), 0);
    assert_memory_equal(e.node, "node-1", 6);
    assert_memory_equal(e.event, "typing", 6);
    assert_int_equal(e.payload_len, sizeof payload - 1);
    assert_memory_equal(e.payload, payload, e.payload_len);
    assert_ptr_equal(p, cmd + n);
    free(cmd);
    assert_null(bus_resp_publish("sb:", "t:", "x", BUS_TEXT, "", "e", "{}", 2, &n));
    assert_null(bus_resp_publish("sb:", "t:", "x", 7, "n", "e", "{}", 2, &n));
}

static void test_parse_url(void **st)
{
    bus_redis_url u;
    char err[128];
    assert_int_equal(bus_parse_redis_url("redis://127.0.0.1:56379", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 56379);
    assert_string_equal(u.password, "");
    assert_int_equal(bus_parse_redis_url("redis://localhost", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(bus_parse_redis_url("redis://:s%40cret@10.0.0.1:7000/2", &u, err, sizeof err), 0);
    assert_string_equal(u.password, "s@cret");
    assert_string_equal(u.user, "");
    assert_string_equal(u.host, "10.0.0.1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(bus_parse_redis_url("redis://bob:pw@h:1", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "pw");
    assert_int_equal(bus_parse_redis_url("redis://[::1]:6380", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(bus_parse_redis_url("unix:///run/redis.sock", &u, err, sizeof err), 0);
    assert_string_equal(u.unix_path, "/run/redis.sock");
    const char *bad[] = {"http://h:1", "redis://", "redis://:1", "redis://h:", "redis://h:x",
                         "redis://h:70000", "redis://h:0", "redis://[::1", "redis://[::1]x",
                         "redis://:%zz@h", "unix://relative", "", "redis//h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(bus_parse_redis_url(bad[i], &u, err, sizeof err), -1);
        assert_true(err[0] != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_round_trip),
        cmocka_unit_test(test_envelope_binary_and_empty_payload),
        cmocka_unit_test(test_envelope_encode_refuses_bad_names),
        cmocka_unit_test(test_envelope_decode_refuses_malformed),
        cmocka_unit_test(test_resp_publish),
        cmocka_unit_test(test_parse_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
