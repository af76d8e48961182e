/* test_sync_payload.c — the pre-encoded event payloads of the tailer and
 * sync: jsonb text compacted into a prefix that a cursor completes, and the
 * per-recipient splice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "sync/cursor.h"
#include "sync/tailer.h"

static void expect_prefix(const char *in, const char *want)
{
    size_t n = 0;
    char *p = sync_payload_prefix(in, &n);
    assert_non_null(p);
    assert_string_equal(p, want);
    assert_int_equal(n, strlen(want));
    free(p);
}

static void compacts_jsonb_text(void **state)
{
    (void)state;
    expect_prefix("{\"a\": 1, \"b\": \"x y\", \"c\": {\"d\": [1, 2, {}]}}",
                  "{\"a\":1,\"b\":\"x y\",\"c\":{\"d\":[1,2,{}]},\"cursor\":\"");
    expect_prefix("{}", "{\"cursor\":\"");
    expect_prefix("{ }", "{\"cursor\":\"");
    /* spaces, colons, commas and escaped quotes inside strings stay */
    expect_prefix("{\"k\": \"a \\\" b: c, d \\\\\", \"e\": null}",
                  "{\"k\":\"a \\\" b: c, d \\\\\",\"e\":null,\"cursor\":\"");
    expect_prefix("{\"message\": {\"body\": \"h\\u00e9 \\n\"}}\n",
                  "{\"message\":{\"body\":\"h\\u00e9 \\n\"},\"cursor\":\"");
}

static void refuses_what_is_not_an_object(void **state)
{
    (void)state;
    size_t n;
    const char *bad[] = {"", "[]", "1", "\"x\"", "{", "}", "{\"a\": \"open}", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(sync_payload_prefix(bad[i], &n));
    assert_null(sync_payload_prefix(NULL, &n));
}

static void splice_makes_valid_json(void **state)
{
    (void)state;
    const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
    const char *ins[] = {"{\"message\": {\"id\": \"7\", \"body\": \"x, y: z\"}}", "{}"};
    for (size_t i = 0; i < 2; i++) {
        size_t pl = 0, tl = 0;
        char *prefix = sync_payload_prefix(ins[i], &pl);
        assert_non_null(prefix);
        char cur[CURSOR_LEN + 1];
        cursor_encode(secret, sizeof secret - 1, "12", (sync_pos){500, 9}, 1800000000, cur);
        char *text = tailer_splice(prefix, pl, cur, &tl);
        assert_non_null(text);
        assert_int_equal(strlen(text), tl);
        json_error_t err;
        json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "cursor")), cur);
        json_t *orig = json_loads(ins[i], 0, &err);
        json_object_del(o, "cursor");
        assert_true(json_equal(o, orig));
        json_decref(o);
        json_decref(orig);
        /* the position can be read back from the end of the text */
        sync_pos p;
        assert_int_equal(cursor_peek(text + tl - 2 - CURSOR_LEN, CURSOR_LEN, &p), 0);
        assert_true(p.tx == 500 && p.id == 9);
        free(text);
        free(prefix);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compacts_jsonb_text),
        cmocka_unit_test(refuses_what_is_not_an_object),
        cmocka_unit_test(splice_makes_valid_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
