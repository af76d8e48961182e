/* test_ratelimit.c — token-bucket arithmetic, limit parsing, the bounded LRU
 * table (including under concurrent use) and the named accounts limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "base/ratelimit.h"

static void test_bucket_math(void **state)
{
    ratelimit_limit lim = {.burst = 3, .period_s = 3}; /* 3 at once, then 1 per second */
    ratelimit_bucket b = {0};
    int64_t t = 1000000;
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t, 1), 0); /* a new bucket starts full */
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t, 1), 0);
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t, 1), 0);
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t, 1), 1000); /* empty: one token per second */
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t + 400, 1), 600);
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t + 999, 1), 1);
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t + 1000, 1), 0);
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t + 1000, 1), 1000);
    /* a long pause refills to the burst, never beyond */
    t += 1000000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_bucket_take(&b, &lim, t, 1), 0);
    assert_true(ratelimit_bucket_take(&b, &lim, t, 1) > 0);
    /* the clock going back refills nothing and does not underflow */
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t - 5000, 1), 1000);
    assert_int_equal(ratelimit_bucket_take(&b, &lim, t - 4000, 1), 0);
    /* costs above one */
    ratelimit_bucket c = {0};
    assert_int_equal(ratelimit_bucket_take(&c, &lim, 10, 2), 0);
    assert_int_equal(ratelimit_bucket_take(&c, &lim, 10, 2), 1000); /* 1 left, needs 2 */
    /* unlimited */
    ratelimit_limit off = {0, 0};
    ratelimit_bucket d = {0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ratelimit_bucket_take(&d, &off, 10, 1), 0);
    /* fractional rates round the wait up */
    ratelimit_limit slow = {.burst = 1, .period_s = 7.5};
    ratelimit_bucket e = {0};
    assert_int_equal(ratelimit_bucket_take(&e, &slow, 1, 1), 0);
    assert_int_equal(ratelimit_bucket_take(&e, &slow, 1, 1), 7500);
}

static void test_parse(void **state)
{
    ratelimit_limit l;
    assert_int_equal(ratelimit_limit_parse("10/60", &l), 0);
    assert_true(l.burst == 10 && l.period_s == 60);
    assert_int_equal(ratelimit_limit_parse("1.5/0.5", &l), 0);
    assert_true(l.burst == 1.5 && l.period_s == 0.5);
    assert_int_equal(ratelimit_limit_parse("0", &l), 0);
    assert_true(l.burst == 0);
    assert_int_equal(ratelimit_limit_parse("off", &l), 0);
    const char *bad[] = {"",     "10",   "10/",  "/10",    "a/b",    "10/0",
                         "0/10", "-1/5", "5/-1", "10/60x", "10 /60", "1e99/1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(ratelimit_limit_parse(bad[i], &l), -1);
    assert_int_equal(ratelimit_limit_parse(NULL, &l), -1);
}

static void test_table_keys_and_lru(void **state)
{
    ratelimit_table *t = ratelimit_table_new(3);
    assert_non_null(t);
    ratelimit_limit lim = {.burst = 1, .period_s = 1000};
    assert_int_equal(ratelimit_table_take(t, "a", &lim, 10, 1), 0);
    assert_true(ratelimit_table_take(t, "a", &lim, 10, 1) > 0);     /* a is spent */
    assert_int_equal(ratelimit_table_take(t, "b", &lim, 10, 1), 0); /* b is its own bucket */
    assert_int_equal(ratelimit_table_take(t, "c", &lim, 10, 1), 0);
    assert_int_equal(ratelimit_table_size(t), 3);
    assert_true(ratelimit_table_take(t, "a", &lim, 10, 1) > 0);     /* touch a: b is now the oldest */
    assert_int_equal(ratelimit_table_take(t, "d", &lim, 10, 1), 0); /* evicts b */
    assert_int_equal(ratelimit_table_size(t), 3);
    assert_true(ratelimit_table_take(t, "a", &lim, 10, 1) > 0);     /* a survived */
    assert_int_equal(ratelimit_table_take(t, "b", &lim, 10, 1), 0); /* b was forgotten: full again */
    assert_int_equal(ratelimit_table_size(t), 3);
    /* keys longer than 128 bytes count by their first 128 */
    char k1[300], k2[300];
    memset(k1, 'x', 299);
    k1[299] = 0;
    memcpy(k2, k1, 300);
    k2[200] = 'y';
    assert_int_equal(ratelimit_table_take(t, k1, &lim, 10, 1), 0);
    assert_true(ratelimit_table_take(t, k2, &lim, 10, 1) > 0);
    /* an unlimited limit never creates a bucket */
    ratelimit_table *u = ratelimit_table_new(1);
    ratelimit_limit off = {0, 0};
    assert_int_equal(ratelimit_table_take(u, "z", &off, 10, 1), 0);
    assert_int_equal(ratelimit_table_size(u), 0);
    ratelimit_table_free(u);
    ratelimit_table_free(t);
}

static void test_table_many_keys_bounded(void **state)
{
    ratelimit_table *t = ratelimit_table_new(1000);
    ratelimit_limit lim = {.burst = 5, .period_s = 60};
    char k[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof k, "ip-%d", i);
        assert_int_equal(ratelimit_table_take(t, k, &lim, 10, 1), 0);
    }
    assert_int_equal(ratelimit_table_size(t), 1000);
    ratelimit_table_free(t);
}

typedef struct worker {
    ratelimit_table *t;
    int allowed;
} worker;

static void *hammer(void *arg)
{
    worker *w = arg;
    ratelimit_limit lim = {.burst = 1000, .period_s = 1e9};
    char k[16];
    for (int i = 0; i < 2000; i++) {
        if (ratelimit_table_take(w->t, "shared", &lim, 10, 1) == 0) w->allowed++;
        snprintf(k, sizeof k, "k%d", i % 300);
        ratelimit_table_take(w->t, k, &lim, 10, 1);
    }
    return NULL;
}

/* Four threads on one table: exactly `burst` events get through, and the
 * table stays consistent (run under ASan/UBSan by `make test`). */
static void test_table_threads(void **state)
{
    ratelimit_table *t = ratelimit_table_new(1024);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){t, 0};
        pthread_create(&th[i], NULL, hammer, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += w[i].allowed;
    }
    assert_int_equal(total, 1000);
    assert_int_equal(ratelimit_table_size(t), 301);
    ratelimit_table_free(t);
}

static void test_named_limits(void **state)
{
    assert_int_equal(ratelimit_configure("2/3600", "3/600", "off", "2/10"), 0);
    assert_int_equal(ratelimit_hit(RL_LOGIN_IP, "10.0.0.1"), 0);
    assert_int_equal(ratelimit_hit(RL_LOGIN_IP, "10.0.0.1"), 0);
    int wait = ratelimit_hit(RL_LOGIN_IP, "10.0.0.1");
    assert_true(wait >= 1700 && wait <= 1800);                   /* one token per 1800 s */
    assert_int_equal(ratelimit_hit(RL_LOGIN_IP, "10.0.0.2"), 0); /* other address */
    /* kinds do not share buckets even with the same key */
    assert_int_equal(ratelimit_hit(RL_LOGIN_ACCOUNT, "10.0.0.1"), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ratelimit_hit(RL_SIGNUP_IP, "x"), 0);
    /* a malformed spec changes nothing */
    assert_int_equal(ratelimit_configure("1/1", "nonsense", NULL, NULL), -1);
    assert_true(ratelimit_hit(RL_LOGIN_IP, "10.0.0.1") >= 1700);
    /* NULL and "" keep the current value */
    assert_int_equal(ratelimit_configure(NULL, "", NULL, ""), 0);
    assert_true(ratelimit_hit(RL_LOGIN_IP, "10.0.0.1") >= 1700);
    assert_int_equal(ratelimit_hit(-1, "x"), 0);
    assert_int_equal(ratelimit_hit(RL_NKINDS, "x"), 0);
    /* connects: 2 at once, then one per 5 s */
    assert_int_equal(ratelimit_hit(RL_CONNECT_IP, "10.0.0.9"), 0);
    assert_int_equal(ratelimit_hit(RL_CONNECT_IP, "10.0.0.9"), 0);
    wait = ratelimit_hit(RL_CONNECT_IP, "10.0.0.9");
    assert_true(wait >= 1 && wait <= 5);
}

static void test_ip_key(void **state)
{
    char k[64];
    ratelimit_ip_key("192.0.2.7", k, sizeof k);
    assert_string_equal(k, "192.0.2.7");
    ratelimit_ip_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", k, sizeof k);
    assert_string_equal(k, "2001:db8:1:2::/64"); /* one /64, one bucket */
    ratelimit_ip_key("::ffff:192.0.2.7", k, sizeof k);
    assert_string_equal(k, "::ffff:192.0.2.7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_math),        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_table_keys_and_lru), cmocka_unit_test(test_table_many_keys_bounded),
        cmocka_unit_test(test_table_threads),      cmocka_unit_test(test_named_limits),
        cmocka_unit_test(test_ip_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
