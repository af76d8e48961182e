/* Unit tests for util.c (UTF-8 validation, URL decoding, time format) and
 * buf.c (reference counting, appends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "base/sb_buf.h"
#include "base/util.h"

static bool valid(const char *s, size_t n) { return util_utf8_valid((const uint8_t *)s, n); }

static void test_utf8_accepts_valid(void **st)
{
    assert_true(valid("", 0));
    assert_true(valid("hello", 5));
    assert_true(valid("h\xc3\xa9llo", 6));              /* é */
    assert_true(valid("\xe2\x82\xac", 3));              /* € */
    assert_true(valid("\xf0\x9f\x98\x80", 4));          /* 😀 */
    assert_true(valid("\xf4\x8f\xbf\xbf", 4));          /* U+10FFFF */
}

static void test_utf8_rejects_invalid(void **st)
{
    assert_false(valid("\xc3", 1));                     /* truncated */
    assert_false(valid("\xe2\x82", 2));                 /* truncated */
    assert_false(valid("\xc0\xaf", 2));                 /* overlong '/' */
    assert_false(valid("\xe0\x80\xaf", 3));             /* overlong */
    assert_false(valid("\xed\xa0\x80", 3));             /* surrogate U+D800 */
    assert_false(valid("\xf4\x90\x80\x80", 4));         /* > U+10FFFF */
    assert_false(valid("\xff", 1));
    assert_false(valid("\x80", 1));                     /* lone continuation */
    assert_false(valid("ok\xc3(", 4));                  /* bad continuation */
}

static void test_url_decode(void **st)
{
    char *s = util_url_decode("a%20b+c", 7, true);
    assert_string_equal(s, "a b c");
    free(s);
    s = util_url_decode("a+b", 3, false);
    assert_string_equal(s, "a+b");
    free(s);
    assert_null(util_url_decode("%zz", 3, false));
    assert_null(util_url_decode("%2", 2, false));
    assert_null(util_url_decode("%", 1, false));
    assert_null(util_url_decode("a%00b", 5, false)); /* embedded NUL refused */
}

static void test_rfc3339(void **st)
{
    char out[32];
    util_format_rfc3339_ms(1795515925123LL, out, sizeof out);
    assert_string_equal(out, "2026-11-24T10:25:25.123Z");
}

static void test_buf_append_and_refs(void **st)
{
    sb_buf *b = sb_buf_new(2);
    b = sb_buf_append(b, "hello ", 6);
    b = sb_buf_append(b, "world", 5);
    assert_int_equal(b->len, 11);
    assert_memory_equal(sb_buf_bytes(b), "hello world", 11);
    sb_buf_frame(b, 1);
    assert_int_equal(b->hdr, 2);
    assert_int_equal((uint8_t)sb_buf_bytes(b)[0], 0x81);
    assert_int_equal((uint8_t)sb_buf_bytes(b)[1], 11);
    assert_memory_equal(sb_buf_text(b), "hello world", 11);
    sb_buf_ref(b);
    assert_int_equal(atomic_load(&b->refs), 2);
    sb_buf_unref(b);
    sb_buf_unref(b); /* freed: ASan reports a leak or double free if refs are wrong */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_accepts_valid), cmocka_unit_test(test_utf8_rejects_invalid),
        cmocka_unit_test(test_url_decode),         cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_buf_append_and_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
