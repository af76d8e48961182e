/* test_json_depth.c — the JSON nesting pre-scan shared by REST bodies and
 * Phoenix messages (base/json_depth). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include "base/json_depth.h"

static void test_depth_max(void **state)
{
    assert_int_equal(json_depth_max("", 0, 32), 0);
    assert_int_equal(json_depth_max("1", 1, 32), 0);
    assert_int_equal(json_depth_max("{}", 2, 32), 1);
    assert_int_equal(json_depth_max("[[[]]]", 6, 32), 3);
    assert_int_equal(json_depth_max("[{},{\"a\":[1]}]", 14, 32), 3);
    const char *s = "[\"[[[{{\"]"; /* brackets inside a string do not count */
    assert_int_equal(json_depth_max(s, strlen(s), 32), 1);
    s = "[\"a\\\"[[[\"]"; /* an escaped quote does not end the string */
    assert_int_equal(json_depth_max(s, strlen(s), 32), 1);
    s = "[\"a\\\\\",[[]]]"; /* an escaped backslash does: the rest counts */
    assert_int_equal(json_depth_max(s, strlen(s), 32), 3);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_int_equal(json_depth_max(deep, 200, 32), 33); /* stops at limit + 1 */
    assert_int_equal(json_depth_max(deep, 200, 1000), 100);
    /* a closer with nothing open is not counted (the parser refuses it) */
    assert_int_equal(json_depth_max("]][[", 4, 32), 2);
    assert_int_equal(json_depth_max("[]]]{}", 6, 32), 1);
}

static void test_depth_ok(void **state)
{
    char deep[64];
    memset(deep, '{', 32);
    memset(deep + 32, '}', 32);
    assert_true(json_depth_ok(deep, 64, 32)); /* exactly at the limit */
    assert_false(json_depth_ok(deep, 64, 31));
    assert_true(json_depth_ok("", 0, 0));
    assert_false(json_depth_ok("[]", 2, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_max),
        cmocka_unit_test(test_depth_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
