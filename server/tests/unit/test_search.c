/* test_search.c — the search query parser and the page cursor (search/search.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "search/search.h"

static const char *parse(const char *q)
{
    static char out[SEARCH_TSQUERY_MAX];
    const char *err = NULL;
    if (search_parse_query(q, out, &err) != 0) {
        assert_non_null(err);
        return NULL;
    }
    return out;
}

static void test_words(void **st)
{
    (void)st;
    assert_string_equal(parse("hel"), "'hel':*");
    assert_string_equal(parse("hello wor"), "'hello' & 'wor':*");
    assert_string_equal(parse("  Hello,   world!! "), "'Hello' & 'world':*");
    assert_string_equal(parse("see u"), "'see' & 'u'"); /* one-byte last word: no prefix */
    assert_string_equal(parse("it's"), "'it' & 's'");
    assert_string_equal(parse("a & b | !c"), "'a' & 'b' & 'c'");
    assert_string_equal(parse("'):* x <-> y\\z"), "'x' & 'y' & 'z'");
    assert_string_equal(parse("Привет мир"), "'Привет' & 'мир':*");
    assert_string_equal(parse("日本語"), "'日本語':*");
}

static void test_limits(void **st)
{
    (void)st;
    assert_null(parse(""));
    assert_null(parse("   !!! ?? "));
    assert_null(parse("a b c d e f g h i"));          /* 9 words */
    assert_non_null(parse("a b c d e f g h"));        /* 8 */
    char big[300];
    memset(big, 'x', 257);
    big[257] = 0;
    assert_null(parse(big));
    big[256] = 0;
    const char *o = parse(big); /* one 256-byte word: cut to 64 */
    assert_non_null(o);
    assert_int_equal(strlen(o), 64 + 4);
    assert_null(parse("bad \xff utf8"));
    /* a long word of 2-byte characters is cut on a character boundary */
    char cyr[200] = "";
    for (int i = 0; i < 40; i++) strcat(cyr, "ж");
    o = parse(cyr);
    assert_non_null(o);
    assert_int_equal(strlen(o), 64 + 4);
}

static void test_cursor(void **st)
{
    (void)st;
    assert_string_equal(search_cursor_id("s:12345"), "12345");
    assert_string_equal(search_cursor_id("s:0.0607927:42"), "42"); /* ranked order (before 170) */
    assert_string_equal(search_cursor_id("s:6.07927e-05:9007199254740993"), "9007199254740993");
    assert_null(search_cursor_id("s:"));
    assert_null(search_cursor_id("s:abc"));
    assert_null(search_cursor_id("s:0.5:"));
    assert_null(search_cursor_id("s:-1"));
    assert_null(search_cursor_id("x:12"));
    assert_null(search_cursor_id("12"));
    assert_null(search_cursor_id(""));
    assert_null(search_cursor_id("s:123456789012345678901")); /* more than 20 digits */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_cursor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
