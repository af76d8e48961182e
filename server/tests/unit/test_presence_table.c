/* test_presence_table.c — the compact per-topic presence table
 * (presence_table.c): adds, duplicates, removals by (node, ref) and by
 * node, the cached presence_state text kept equal to a fresh encoding
 * through appends and rebuilds, JSON escaping, and coalesced diffs with
 * metas grouped by key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "presence/presence_table.h"

static pmeta meta(const char *key, const char *ref, uint16_t node, int64_t at)
{
    pmeta m = {0};
    snprintf(m.key, sizeof m.key, "%s", key);
    snprintf(m.ref, sizeof m.ref, "%s", ref);
    m.node = node;
    m.online_at = at;
    return m;
}

/* The table's state text, parsed. */
static json_t *state(ptab *t)
{
    size_t len = 0;
    const char *s = presence_table_state(t, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    json_error_t e;
    json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &e);
    assert_non_null(j);
    return j;
}

static size_t nmetas(json_t *st, const char *key)
{
    return json_array_size(json_object_get(json_object_get(st, key), "metas"));
}

/* The state rebuilt from scratch (a copy of t's presences in a new table)
 * equals t's cached text once parsed. */
static void check_cache(ptab *t)
{
    ptab *u = presence_table_new();
    assert_non_null(u);
    json_t *a = state(t);
    const char *key;
    json_t *v;
    json_object_foreach(a, key, v) {
        json_t *ms = json_object_get(v, "metas");
        for (size_t i = json_array_size(ms); i-- > 0;) { /* metas are listed newest first */
            json_t *m = json_array_get(ms, i);
            pmeta p = meta(key, json_string_value(json_object_get(m, "phx_ref")), 0,
                           json_integer_value(json_object_get(m, "online_at")));
            assert_int_equal(presence_table_add(u, &p), 0);
        }
    }
    assert_int_equal(presence_table_count(u), presence_table_count(t));
    json_t *b = state(u);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    presence_table_free(u);
}

static void count_cb(const pmeta *m, void *arg)
{
    (void)m;
    (*(size_t *)arg)++;
}

static void test_add_del(void **st)
{
    (void)st;
    ptab *t = presence_table_new();
    assert_non_null(t);
    json_t *s = state(t);
    assert_int_equal(json_object_size(s), 0);
    json_decref(s);

    pmeta a1 = meta("7", "r1", 0, 100), a2 = meta("7", "r2", 0, 101), b1 = meta("8", "r1", 1, 102);
    assert_int_equal(presence_table_add(t, &a1), 0);
    assert_int_equal(presence_table_add(t, &a1), 1); /* same (node, ref): ignored */
    assert_int_equal(presence_table_add(t, &b1), 0); /* same ref, other node: another presence */
    assert_int_equal(presence_table_add(t, &a2), 0);
    assert_int_equal(presence_table_count(t), 3);
    s = state(t);
    assert_int_equal(nmetas(s, "7"), 2);
    assert_int_equal(nmetas(s, "8"), 1);
    json_t *m = json_array_get(json_object_get(json_object_get(s, "8"), "metas"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "phx_ref")), "r1");
    assert_int_equal(json_integer_value(json_object_get(m, "online_at")), 102);
    json_decref(s);

    pmeta out;
    assert_int_equal(presence_table_del(t, 1, "r2", NULL), -1); /* node 1 has no r2 */
    assert_int_equal(presence_table_del(t, 0, "r1", &out), 0);
    assert_string_equal(out.key, "7");
    assert_int_equal(out.online_at, 100);
    assert_int_equal(presence_table_del(t, 0, "r1", NULL), -1);
    s = state(t);
    assert_int_equal(nmetas(s, "7"), 1);
    assert_int_equal(nmetas(s, "8"), 1);
    json_decref(s);
    check_cache(t);

    /* too long or empty: refused, nothing stored */
    pmeta bad = meta("9", "", 0, 1);
    assert_int_equal(presence_table_add(t, &bad), -1);
    memset(bad.key, 'k', sizeof bad.key); /* no terminator inside the key */
    snprintf(bad.ref, sizeof bad.ref, "x");
    assert_int_equal(presence_table_add(t, &bad), -1);
    assert_int_equal(presence_table_count(t), 2);

    size_t n = 0;
    presence_table_foreach(t, count_cb, &n);
    assert_int_equal(n, 2);
    presence_table_free(t);
}

/* Many keys: the appended state stays valid JSON equal to a rebuild, and
 * removals by node take exactly that node's presences. */
static void test_many_and_node(void **st)
{
    (void)st;
    ptab *t = presence_table_new();
    char k[PTAB_KEY_MAX], r[PTAB_REF_MAX];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "%d", i % 4000); /* 1000 keys with two metas */
        snprintf(r, sizeof r, "ref%d", i);
        pmeta m = meta(k, r, (uint16_t)(i % 3), i);
        assert_int_equal(presence_table_add(t, &m), 0);
        if (i % 997 == 0) check_cache(t);
    }
    assert_int_equal(presence_table_count(t), 5000);
    json_t *s = state(t);
    assert_int_equal(json_object_size(s), 4000);
    assert_int_equal(nmetas(s, "5"), 2);
    json_decref(s);
    size_t n = 0;
    assert_int_equal(presence_table_del_node(t, 1, count_cb, &n), 1667);
    assert_int_equal(n, 1667);
    assert_int_equal(presence_table_count(t), 5000 - 1667);
    check_cache(t);
    for (int i = 0; i < 5000; i++) {
        snprintf(r, sizeof r, "ref%d", i);
        presence_table_del(t, (uint16_t)(i % 3), r, NULL);
    }
    assert_int_equal(presence_table_count(t), 0);
    s = state(t);
    assert_int_equal(json_object_size(s), 0);
    json_decref(s);
    presence_table_free(t);
}

/* Keys and refs from other nodes may hold any characters. */
static void test_escaping(void **st)
{
    (void)st;
    ptab *t = presence_table_new();
    pmeta m = meta("a\"b\\c\n", "r\x01\"", 2, -5);
    assert_int_equal(presence_table_add(t, &m), 0);
    json_t *s = state(t);
    json_t *x = json_array_get(json_object_get(json_object_get(s, "a\"b\\c\n"), "metas"), 0);
    assert_non_null(x);
    assert_string_equal(json_string_value(json_object_get(x, "phx_ref")), "r\x01\"");
    assert_int_equal(json_integer_value(json_object_get(x, "online_at")), -5);
    json_decref(s);
    presence_table_free(t);
}

/* A coalesced diff: one key per object member, its metas together. */
static void test_diff_encode(void **st)
{
    (void)st;
    pmeta j[4] = {meta("1", "a", 0, 1), meta("2", "b", 0, 2), meta("1", "c", 0, 3),
                  meta("3", "d", 0, 4)};
    pmeta l[2] = {meta("2", "b", 0, 2), meta("9", "z", 0, 9)};
    size_t len = 0;
    char *txt = presence_table_diff_encode(j, 4, l, 2, &len);
    assert_non_null(txt);
    assert_int_equal(strlen(txt), len);
    json_error_t e;
    json_t *d = json_loads(txt, JSON_REJECT_DUPLICATES, &e);
    assert_non_null(d);
    json_t *joins = json_object_get(d, "joins"), *leaves = json_object_get(d, "leaves");
    assert_int_equal(json_object_size(joins), 3);
    json_t *m1 = json_object_get(json_object_get(joins, "1"), "metas");
    assert_int_equal(json_array_size(m1), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m1, 0), "phx_ref")), "a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m1, 1), "phx_ref")), "c");
    assert_int_equal(json_object_size(leaves), 2);
    assert_int_equal(nmetas(leaves, "9"), 1);
    json_decref(d);
    free(txt);

    txt = presence_table_diff_encode(NULL, 0, NULL, 0, &len);
    assert_string_equal(txt, "{\"joins\":{},\"leaves\":{}}");
    free(txt);
    txt = presence_table_diff_encode(j, 1, NULL, 0, &len);
    assert_string_equal(txt, "{\"joins\":{\"1\":{\"metas\":[{\"online_at\":1,\"phx_ref\":\"a\"}]}},"
                             "\"leaves\":{}}");
    free(txt);
    /* real timestamps and refs (the longest fields) are written whole */
    pmeta big = meta("12345678901234567890", "GOr0OJ1gSgziDAIC", 0, INT64_MIN);
    txt = presence_table_diff_encode(NULL, 0, &big, 1, &len);
    assert_string_equal(txt, "{\"joins\":{},\"leaves\":{\"12345678901234567890\":{\"metas\":"
                             "[{\"online_at\":-9223372036854775808,\"phx_ref\":\"GOr0OJ1gSgziDAIC\"}]}}}");
    free(txt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_del),
        cmocka_unit_test(test_many_and_node),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_diff_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
