/* test_phx_origin.c — the socket transports' Origin check (phoenix/phx_origin.c):
 * the same-site default, explicit lists, wildcards, ports and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include "phoenix/phx_origin.h"

static void test_no_origin_passes(void **state)
{
    (void)state;
    assert_true(phx_origin_allowed(NULL, "chat.example.com", NULL));
    assert_true(phx_origin_allowed(NULL, NULL, "https://a.example"));
}

static void test_same_site_default(void **state)
{
    (void)state;
    assert_true(phx_origin_allowed("http://127.0.0.1:4000", "127.0.0.1:4000", ""));
    assert_true(phx_origin_allowed("https://chat.example.com", "chat.example.com", NULL));
    assert_true(phx_origin_allowed("https://Chat.Example.com", "chat.example.COM:443", NULL));
    assert_true(phx_origin_allowed("http://chat.example.com", "chat.example.com", NULL));
    assert_true(phx_origin_allowed("http://[::1]:8080", "[::1]:8080", NULL));
    assert_true(phx_origin_allowed("https://chat.example.com/", "chat.example.com", NULL));
    /* another host, another port, a default port against an explicit one */
    assert_false(phx_origin_allowed("https://evil.example", "chat.example.com", NULL));
    assert_false(phx_origin_allowed("http://127.0.0.1:4001", "127.0.0.1:4000", NULL));
    assert_false(phx_origin_allowed("http://127.0.0.1", "127.0.0.1:4000", NULL));
    assert_false(phx_origin_allowed("https://chat.example.com:8443", "chat.example.com", NULL));
    assert_false(phx_origin_allowed("https://chat.example.com.evil.example", "chat.example.com", NULL));
    /* no Host to compare with, malformed origins, null */
    assert_false(phx_origin_allowed("https://chat.example.com", NULL, NULL));
    assert_false(phx_origin_allowed("https://chat.example.com", "", NULL));
    assert_false(phx_origin_allowed("null", "chat.example.com", NULL));
    assert_false(phx_origin_allowed("", "chat.example.com", NULL));
    assert_false(phx_origin_allowed("chat.example.com", "chat.example.com", NULL));
    assert_false(phx_origin_allowed("https://chat.example.com:99999", "chat.example.com:99999", NULL));
    assert_false(phx_origin_allowed("https://user@chat.example.com", "chat.example.com", NULL));
    assert_false(phx_origin_allowed("https://chat.example.com/x", "chat.example.com", NULL));
}

static void test_list(void **state)
{
    (void)state;
    const char *l = "https://app.example.com, //admin.example.com:8443 https://*.clients.example null";
    assert_true(phx_origin_allowed("https://app.example.com", "api.example.com", l));
    assert_true(phx_origin_allowed("https://app.example.com:443", "api.example.com", l));
    assert_false(phx_origin_allowed("http://app.example.com", "api.example.com", l));
    assert_false(phx_origin_allowed("https://app.example.com:444", "api.example.com", l));
    assert_true(phx_origin_allowed("http://admin.example.com:8443", "x", l));
    assert_true(phx_origin_allowed("https://admin.example.com:8443", "x", l));
    assert_false(phx_origin_allowed("https://admin.example.com", "x", l));
    assert_true(phx_origin_allowed("https://a.clients.example", "x", l));
    assert_true(phx_origin_allowed("https://a.b.clients.example", "x", l));
    assert_false(phx_origin_allowed("https://clients.example", "x", l));
    assert_false(phx_origin_allowed("https://evilclients.example", "x", l));
    assert_true(phx_origin_allowed("null", "x", l));
    /* a list replaces the same-site default unless "same" is in it */
    assert_false(phx_origin_allowed("https://api.example.com", "api.example.com", l));
    assert_true(phx_origin_allowed("https://api.example.com", "api.example.com", "same,https://app.example.com"));
    assert_true(phx_origin_allowed("https://anything.example", "x", "*"));
    assert_true(phx_origin_allowed("garbage", "x", "*"));
    /* a list of separators only is the default */
    assert_true(phx_origin_allowed("https://h.example", "h.example", " , "));
}

static void test_list_check(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(phx_origin_list_check("", err, sizeof err), 0);
    assert_int_equal(phx_origin_list_check("*, same, null, https://a.example:1, //b.example, wss://*.c.example", err, sizeof err), 0);
    assert_int_equal(phx_origin_list_check("https://a.example, a.example", err, sizeof err), -1);
    assert_non_null(strstr(err, "a.example"));
    assert_int_equal(phx_origin_list_check("https://", err, sizeof err), -1);
    assert_int_equal(phx_origin_list_check("https://*.", err, sizeof err), -1);
    assert_int_equal(phx_origin_list_check("https://a*b.example", err, sizeof err), -1);
    assert_int_equal(phx_origin_list_check("https://a.example:0", err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_origin_passes),
        cmocka_unit_test(test_same_site_default),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_list_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
