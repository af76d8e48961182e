/* test_db.c — the asynchronous Postgres pool against the private test
 * database (SB_TEST_DATABASE_URL; the tests are skipped without it):
 * pipelined FIFO results, error isolation between pipelined queries, a
 * connection killed under in-flight queries (every callback still runs, the
 * pool reconnects by itself), an unreachable server (immediate
 * "unavailable"), the pending cap, and closing with queries in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "store/db.h"
#include "net/reactor.h"

static const char *g_url;
static char g_url_app[1024]; /* g_url with an application_name of our own */
static char g_appname[64];

typedef struct fixture {
    reactor r;
    db_pool *db;     /* the pool under test */
    uv_timer_t keep; /* keeps the loop blocking in I/O while a test waits */
} fixture;

static void keep_cb(uv_timer_t *t) {}

static int setup(void **state)
{
    if (!g_url) return 0;
    fixture *f = calloc(1, sizeof *f);
    uv_loop_init(&f->r.loop);
    uv_timer_init(&f->r.loop, &f->keep);
    uv_timer_start(&f->keep, keep_cb, 20, 20);
    *state = f;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f) return 0;
    if (f->db) db_pool_close(f->db);
    uv_close((uv_handle_t *)&f->keep, NULL);
    uv_run(&f->r.loop, UV_RUN_DEFAULT);
    uv_walk(&f->r.loop, close_walk, NULL);
    uv_run(&f->r.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->r.loop), 0);
    free(f);
    return 0;
}

/* Runs the loop until *flag reaches want or timeout_ms passes. */
static void run_until(fixture *f, int *flag, int want, int timeout_ms)
{
    uint64_t end = uv_now(&f->r.loop) + (uint64_t)timeout_ms;
    while (*flag < want && uv_now(&f->r.loop) < end)
        uv_run(&f->r.loop, UV_RUN_ONCE);
}

#define SKIP_WITHOUT_DB()                                                                          \
    do {                                                                                           \
        if (!g_url) {                                                                              \
            fprintf(stderr, "test_db: SB_TEST_DATABASE_URL not set, skipped\n");                   \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- FIFO results over one pipelined connection ---- */

typedef struct seq {
    int done;
    int next_expected;
    int out_of_order;
    int errors;
    int unavailable;
} seq;

typedef struct seq_q {
    seq *s;
    int n;
} seq_q;

static void seq_cb(const PGresult *res, const char *err, void *arg)
{
    seq_q *q = arg;
    seq *s = q->s;
    if (err) {
        if (!strcmp(err, "unavailable"))
            s->unavailable++;
        else
            s->errors++;
    } else {
        int got = atoi(PQgetvalue(res, 0, 0));
        if (got != q->n || q->n != s->next_expected) s->out_of_order++;
    }
    s->next_expected = q->n + 1;
    s->done++;
    free(q);
}

static void test_pipeline_fifo(void **state)
{
    SKIP_WITHOUT_DB();
    fixture *f = *state;
    f->db = db_pool_new(&f->r, g_url, 1); /* one connection: strict FIFO */
    seq s = {0};
    const int N = 2000;
    for (int i = 0; i < N; i++) { /* queued before the connection is even up */
        seq_q *q = malloc(sizeof *q);
        q->s = &s;
        q->n = i;
        char p[16];
        snprintf(p, sizeof p, "%d", i);
        const char *params[1] = {p};
        assert_int_equal(db_query(f->db, "SELECT $1::int", 1, params, seq_cb, q), 0);
    }
    run_until(f, &s.done, N, 10000);
    assert_int_equal(s.done, N);
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.unavailable, 0);
    assert_true(db_pool_ready(f->db));
}

/* ---- a failing query does not disturb its neighbours ---- */

typedef struct iso {
    int done;
    char log[8][128];
} iso;

static void iso_cb(const PGresult *res, const char *err, void *arg)
{
    iso *s = arg;
    if (err) {
        const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "none";
        snprintf(s->log[s->done], 128, "err:%s", st ? st : "?");
    } else {
        snprintf(s->log[s->done], 128, "ok:%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "-");
    }
    s->done++;
}

static void test_error_isolation(void **state)
{
    SKIP_WITHOUT_DB();
    fixture *f = *state;
    f->db = db_pool_new(&f->r, g_url, 1);
    iso s = {0};
    const char *one[1] = {"x"};
    db_query(f->db, "SELECT 'a'", 0, NULL, iso_cb, &s);
    db_query(f->db, "SELECT $1::int", 1, one, iso_cb, &s);  /* 22P02 */
    db_query(f->db, "SELEC nonsense", 0, NULL, iso_cb, &s); /* 42601 */
    db_query(f->db, "SELECT 'b'", 0, NULL, iso_cb, &s);
    const char *null_param[1] = {NULL};
    db_query(f->db, "SELECT coalesce($1::text, 'null')", 1, null_param, iso_cb, &s);
    run_until(f, &s.done, 5, 5000);
    assert_int_equal(s.done, 5);
    assert_string_equal(s.log[0], "ok:a");
    assert_string_equal(s.log[1], "err:22P02");
    assert_string_equal(s.log[2], "err:42601");
    assert_string_equal(s.log[3], "ok:b");
    assert_string_equal(s.log[4], "ok:null");
}

/* ---- connection killed with queries in flight ---- */

typedef struct killed {
    int done;
    int unavailable;
    int ok;
    int other;
} killed;

static void killed_cb(const PGresult *res, const char *err, void *arg)
{
    killed *k = arg;
    if (!err)
        k->ok++;
    else if (!strcmp(err, "unavailable"))
        k->unavailable++;
    else
        k->other++;
    k->done++;
}

static void killer_cb(const PGresult *res, const char *err, void *arg)
{
    int *n = arg;
    if (err)
        fprintf(stderr, "killer: %s\n", err);
    else
        *n = atoi(PQgetvalue(res, 0, 0));
    n[1] = 1;
}

static void test_killed_in_flight(void **state)
{
    SKIP_WITHOUT_DB();
    fixture *f = *state;
    f->db = db_pool_new(&f->r, g_url_app, 2);
    /* wait for both connections */
    for (int i = 0; i < 200; i++) {
        uv_run(&f->r.loop, UV_RUN_ONCE);
        if (db_pool_ready(f->db)) break;
    }
    assert_true(db_pool_ready(f->db));
    usleep(50000);
    for (int i = 0; i < 10; i++)
        uv_run(&f->r.loop, UV_RUN_NOWAIT);
    /* slow queries on both connections */
    killed k = {0};
    for (int i = 0; i < 6; i++)
        db_query(f->db, "SELECT pg_sleep(3)", 0, NULL, killed_cb, &k);
    /* from a separate blocking connection, terminate our pool's backends */
    usleep(200000);
    PGconn *admin = PQconnectdb(g_url);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    const char *p[1] = {g_appname};
    PGresult *r = PQexecParams(admin,
                               "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE application_name = $1",
                               1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int terminated = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(admin);
    assert_true(terminated >= 1);
    run_until(f, &k.done, 6, 5000);
    assert_int_equal(k.done, 6); /* every in-flight query got its callback */
    assert_int_equal(k.ok + k.unavailable, 6);
    assert_true(k.unavailable >= 1);
    assert_int_equal(k.other, 0);
    /* the pool reconnects by itself (backoff starts at ~100 ms) */
    int got[2] = {0, 0};
    for (int attempt = 0; attempt < 60 && got[0] != 7; attempt++) {
        got[1] = 0;
        db_query(f->db, "SELECT 7", 0, NULL, killer_cb, got);
        run_until(f, &got[1], 1, 2000);
        if (got[0] != 7) {
            uint64_t end = uv_now(&f->r.loop) + 100;
            while (uv_now(&f->r.loop) < end)
                uv_run(&f->r.loop, UV_RUN_ONCE);
        }
    }
    assert_int_equal(got[0], 7);
}

/* ---- nothing listening ---- */

typedef struct unav {
    int done;
    int unavailable;
    int sync_answered;
} unav;

static void unav_cb(const PGresult *res, const char *err, void *arg)
{
    unav *u = arg;
    if (err && !strcmp(err, "unavailable") && !res) u->unavailable++;
    u->done++;
}

static void test_unreachable(void **state)
{
    SKIP_WITHOUT_DB();
    fixture *f = *state;
    /* a port where nothing listens */
    f->db = db_pool_new(&f->r, "postgresql://switchboard@127.0.0.1:1/none?connect_timeout=2", 2);
    unav u = {0};
    /* during the first attempts, queries wait; the refused connect fails them */
    db_query(f->db, "SELECT 1", 0, NULL, unav_cb, &u);
    run_until(f, &u.done, 1, 3000);
    assert_int_equal(u.done, 1);
    assert_int_equal(u.unavailable, 1);
    assert_false(db_pool_ready(f->db));
    /* after that: answered at once, before db_query returns */
    db_query(f->db, "SELECT 1", 0, NULL, unav_cb, &u);
    assert_int_equal(u.done, 2);
    assert_int_equal(u.unavailable, 2);
    /* NULL pool (no database configured): also at once */
    db_query(NULL, "SELECT 1", 0, NULL, unav_cb, &u);
    assert_int_equal(u.done, 3);
    assert_int_equal(u.unavailable, 3);
}

/* ---- closing with queries in flight ---- */

static void test_close_in_flight(void **state)
{
    SKIP_WITHOUT_DB();
    fixture *f = *state;
    f->db = db_pool_new(&f->r, g_url, 2);
    killed k = {0};
    for (int i = 0; i < 4; i++)
        db_query(f->db, "SELECT pg_sleep(2)", 0, NULL, killed_cb, &k);
    for (int i = 0; i < 50 && !db_pool_ready(f->db); i++)
        uv_run(&f->r.loop, UV_RUN_ONCE);
    db_pool_close(f->db);
    f->db = NULL;
    assert_int_equal(k.done, 4);
    assert_int_equal(k.unavailable, 4);
}

/* ---- the pending cap ---- */

static void test_pending_cap(void **state)
{
    SKIP_WITHOUT_DB();
    fixture *f = *state;
    f->db = db_pool_new(&f->r, g_url, 1);
    for (int i = 0; i < 200 && !db_pool_ready(f->db); i++)
        uv_run(&f->r.loop, UV_RUN_ONCE);
    assert_true(db_pool_ready(f->db));
    killed k = {0};
    const int N = 5000; /* more than the per-pool cap (4096) */
    for (int i = 0; i < N; i++)
        db_query(f->db, "SELECT 1", 0, NULL, killed_cb, &k);
    int immediate = k.unavailable;
    assert_true(immediate >= N - 4096);
    run_until(f, &k.done, N, 20000);
    assert_int_equal(k.done, N);
    assert_int_equal(k.ok + k.unavailable, N);
    assert_true(k.ok >= 4096 - 1);
}

int main(void)
{
    g_url = getenv("SB_TEST_DATABASE_URL");
    if (g_url && !*g_url) g_url = NULL;
    snprintf(g_appname, sizeof g_appname, "sb_test_db_%d", (int)getpid());
    if (g_url)
        snprintf(g_url_app, sizeof g_url_app, "%s%capplication_name=%s", g_url,
                 strchr(g_url, '?') ? '&' : '?', g_appname);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipeline_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
