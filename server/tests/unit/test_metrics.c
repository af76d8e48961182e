/* test_metrics.c — the metrics registry (base/metrics.c): series identity,
 * per-thread shards summed, gauges up and down, histogram buckets, the text
 * exposition, scrape-time values and collectors; and the admin token check
 * (admin/admin_auth.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "admin/admin_auth.h"
#include "base/metrics.h"

static void test_series_identity(void **state)
{
    metrics_id a = metrics_counter("t_ident_total", "help", "k=\"a\"");
    metrics_id a2 = metrics_counter("t_ident_total", "help", "k=\"a\"");
    metrics_id b = metrics_counter("t_ident_total", "help", "k=\"b\"");
    assert_true(a != 0 && b != 0);
    assert_int_equal(a, a2);
    assert_int_not_equal(a, b);
    metrics_add(a, 3);
    metrics_inc(a2);
    assert_int_equal(metrics_sum(a), 4);
    assert_int_equal(metrics_sum(b), 0);
    assert_true(metrics_value("t_ident_total") == 4.0);
    metrics_inc(0); /* unregistered: the scratch slot, harmless */
    assert_int_equal(metrics_sum(0), 0);
}

static metrics_id g_thr;
static void *bump(void *arg)
{
    for (int i = 0; i < 100000; i++) metrics_inc(g_thr);
    return arg;
}

static void test_threads_sum(void **state)
{
    g_thr = metrics_counter("t_threads_total", "help", NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    assert_int_equal(metrics_sum(g_thr), 400000); /* each thread counted on its own shard */
}

static void *gauge_down(void *arg)
{
    metrics_gauge_add(*(metrics_id *)arg, -5);
    return NULL;
}

static void test_gauge(void **state)
{
    metrics_id g = metrics_gauge("t_gauge", "help", NULL);
    metrics_gauge_add(g, 2);
    pthread_t t;
    pthread_create(&t, NULL, gauge_down, &g); /* another shard goes below zero */
    pthread_join(t, NULL);
    assert_int_equal((int64_t)metrics_sum(g), -3);
    strbuf out = {0};
    assert_int_equal(metrics_text(&out), 0);
    assert_non_null(strstr(out.p, "# HELP t_gauge help\n# TYPE t_gauge gauge\nt_gauge -3\n"));
    strbuf_free(&out);
}

static void test_histogram(void **state)
{
    static const int64_t bounds[] = {1000, 10000, 100000};
    metrics_hist h;
    metrics_histogram(&h, "t_latency_seconds", "latency", "op=\"x\"", bounds, 3, 1e6);
    metrics_observe(&h, 500);    /* <= 1 ms */
    metrics_observe(&h, 1000);   /* <= 1 ms: bounds are inclusive */
    metrics_observe(&h, 50000);  /* <= 100 ms */
    metrics_observe(&h, 900000); /* +Inf */
    uint64_t counts[4], sum;
    metrics_hist_read(&h, counts, &sum);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[2], 1);
    assert_int_equal(counts[3], 1);
    assert_int_equal(sum, 951500);
    strbuf out = {0};
    metrics_text(&out);
    assert_non_null(strstr(out.p, "# TYPE t_latency_seconds histogram\n"
                                  "t_latency_seconds_bucket{op=\"x\",le=\"0.001\"} 2\n"
                                  "t_latency_seconds_bucket{op=\"x\",le=\"0.01\"} 2\n"
                                  "t_latency_seconds_bucket{op=\"x\",le=\"0.1\"} 3\n"
                                  "t_latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
                                  "t_latency_seconds_sum{op=\"x\"} 0.9515\n"
                                  "t_latency_seconds_count{op=\"x\"} 4\n"));
    strbuf_free(&out);
    double b[8];
    uint64_t c[9];
    assert_int_equal(metrics_hist_value("t_latency_seconds", b, c, 8), 3);
    assert_true(b[0] == 0.001 && c[0] == 2 && c[3] == 1);
    assert_int_equal(metrics_hist_value("t_nope", b, c, 8), -1);
}

static double seven(void *arg) { return 7; }
static void collect(strbuf *out, void *arg)
{
    strbuf_addf(out, "# HELP t_push_results_total pushes\n# TYPE t_push_results_total counter\n"
                     "t_push_results_total{result=\"%s\"} 1\n", (const char *)arg);
}

static void test_scrape_time_values(void **state)
{
    metrics_gauge_fn("t_fn", "fn gauge", NULL, seven, NULL);
    metrics_counter_fn("t_fn_total", "fn counter", "k=\"v\"", seven, NULL);
    metrics_collector_add(collect, "sent"); /* the hook of a module counting on its own (push) */
    strbuf out = {0};
    metrics_text(&out);
    assert_non_null(strstr(out.p, "# TYPE t_fn gauge\nt_fn 7\n"));
    assert_non_null(strstr(out.p, "# TYPE t_fn_total counter\nt_fn_total{k=\"v\"} 7\n"));
    assert_non_null(strstr(out.p, "t_push_results_total{result=\"sent\"} 1\n"));
    assert_true(metrics_value("t_fn_total") == 7.0);
    strbuf_free(&out);
}

static void test_admin_auth(void **state)
{
    const char *tok = "s3cret-admin-token";
    assert_int_equal(admin_auth_check("Bearer s3cret-admin-token", tok), ADMIN_AUTH_OK);
    assert_int_equal(admin_auth_check("bearer   s3cret-admin-token  ", tok), ADMIN_AUTH_OK);
    assert_int_equal(admin_auth_check("Bearer s3cret-admin-tokem", tok), ADMIN_AUTH_WRONG);
    assert_int_equal(admin_auth_check("Bearer s3cret-admin-token2", tok), ADMIN_AUTH_WRONG);
    assert_int_equal(admin_auth_check("Bearer s3cret", tok), ADMIN_AUTH_WRONG);
    assert_int_equal(admin_auth_check("Bearer ", tok), ADMIN_AUTH_MISSING);
    assert_int_equal(admin_auth_check("Basic czNjcmV0", tok), ADMIN_AUTH_MISSING);
    assert_int_equal(admin_auth_check("s3cret-admin-token", tok), ADMIN_AUTH_MISSING);
    assert_int_equal(admin_auth_check("Bearers3cret-admin-token", tok), ADMIN_AUTH_MISSING);
    assert_int_equal(admin_auth_check(NULL, tok), ADMIN_AUTH_MISSING);
    assert_int_equal(admin_auth_check("Bearer s3cret-admin-token", ""), ADMIN_AUTH_DISABLED);
    assert_int_equal(admin_auth_check("Bearer ", NULL), ADMIN_AUTH_DISABLED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_series_identity), cmocka_unit_test(test_threads_sum),
        cmocka_unit_test(test_gauge),           cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_scrape_time_values), cmocka_unit_test(test_admin_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
