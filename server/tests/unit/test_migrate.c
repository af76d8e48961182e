/* test_migrate.c — numbered migrations: file names, order, each applied
 * once, a failing one rolled back whole, concurrent runs serialised by the
 * advisory lock. Runs in a schema of its own in the private test database
 * (SB_TEST_DATABASE_URL; skipped without it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store/migrate.h"

static const char *g_url;
static char g_schema[64];
static char g_murl[1024]; /* g_url with search_path = g_schema */
static char g_dir[256];

static void test_parse_name(void **state)
{
    const char *name;
    size_t n;
    assert_int_equal(migrate_parse_name("001_accounts.sql", &name, &n), 1);
    assert_int_equal(n, 8);
    assert_memory_equal(name, "accounts", 8);
    assert_int_equal(migrate_parse_name("42_x.sql", &name, &n), 42);
    assert_int_equal(migrate_parse_name("0010_more_things.sql", NULL, NULL), 10);
    const char *bad[] = {"accounts.sql",
                         "_a.sql",
                         "001.sql",
                         "001_.sql",
                         "001_a.sq",
                         "001_a.sql~",
                         "001-a.sql",
                         "a001_a.sql",
                         "1234567890123456_a.sql",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(migrate_parse_name(bad[i], NULL, NULL), -1);
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    unlink(path);
}

/* One integer from a query in the test schema. */
static long scalar(const char *sql)
{
    PGconn *c = PQconnectdb(g_murl);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
    long v = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

static void quiet(void *arg, const char *msg) {}

static void admin_exec(const char *sql)
{
    PGconn *c = PQconnectdb(g_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static void *run_thread(void *arg)
{
    char err[512];
    *(int *)arg = migrate_run(g_murl, g_dir, err, sizeof err);
    if (*(int *)arg != 0) fprintf(stderr, "thread: %s\n", err);
    return NULL;
}

static void test_apply(void **state)
{
    if (!g_url) {
        fprintf(stderr, "test_migrate: SB_TEST_DATABASE_URL not set, skipped\n");
        skip();
    }
    char err[512];
    write_file("001_one.sql", "CREATE TABLE t (x int NOT NULL);\nINSERT INTO t VALUES (1);\n");
    write_file("002_two.sql", "-- a comment\nINSERT INTO t VALUES (2);");
    write_file("README", "not a migration");
    write_file("3_three.txt", "SELECT nonsense;");
    assert_int_equal(migrate_run(g_murl, g_dir, err, sizeof err), 0);
    assert_int_equal(scalar("SELECT count(*) FROM t"), 2);
    assert_int_equal(scalar("SELECT count(*) FROM schema_migrations"), 2);
    assert_int_equal(scalar("SELECT count(*) FROM schema_migrations WHERE version = 2 AND "
                            "name = 'two' AND applied_at <= now()"),
                     1);

    /* again: nothing to do */
    assert_int_equal(migrate_run(g_murl, g_dir, err, sizeof err), 0);
    assert_int_equal(scalar("SELECT count(*) FROM t"), 2);

    /* a failing migration is rolled back whole and named in the error */
    write_file("010_three.sql", "INSERT INTO t VALUES (3);\nSELECT no_such_function();\n");
    assert_int_equal(migrate_run(g_murl, g_dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "010_three.sql"));
    assert_non_null(strstr(err, "no_such_function"));
    assert_int_equal(scalar("SELECT count(*) FROM t"), 2);
    assert_int_equal(scalar("SELECT count(*) FROM schema_migrations"), 2);

    /* fixed, it applies; versions sort numerically (10 after 2) */
    write_file("010_three.sql", "INSERT INTO t VALUES (3);\n");
    assert_int_equal(migrate_run(g_murl, g_dir, err, sizeof err), 0);
    assert_int_equal(scalar("SELECT count(*) FROM t"), 3);
    assert_int_equal(scalar("SELECT max(version) FROM schema_migrations"), 10);

    /* four nodes starting at once: the new migration runs exactly once */
    write_file("011_four.sql", "SELECT pg_sleep(0.2);\nINSERT INTO t VALUES (4);\n");
    pthread_t th[4];
    int rc[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, run_thread, &rc[i]);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rc[i], 0);
    }
    assert_int_equal(scalar("SELECT count(*) FROM t WHERE x = 4"), 1);

    /* two files with one version: refused before touching anything */
    write_file("011_dup.sql", "INSERT INTO t VALUES (5);");
    assert_int_equal(migrate_run(g_murl, g_dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "version 11"));
    remove_file("011_dup.sql");

    /* a version recorded in the database but absent here (a newer node ran
     * it) is not an error */
    remove_file("011_four.sql");
    assert_int_equal(migrate_run(g_murl, g_dir, err, sizeof err), 0);

    /* no such folder; no database */
    assert_int_equal(migrate_run(g_murl, "/nonexistent/migrations", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/migrations"));
    assert_int_equal(migrate_run("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", g_dir,
                                 err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "cannot connect"));
}

/* The project's own migrations apply cleanly to an empty schema, twice. */
static void test_project_migrations(void **state)
{
    if (!g_url) skip();
    char err[512];
    const char *dir = getenv("SB_MIGRATIONS_DIR") ? getenv("SB_MIGRATIONS_DIR") : "migrations";
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "test_migrate: %s not found (run from the repository root), skipped\n",
                dir);
        skip();
    }
    char schema[64], sql[128], url[1024];
    snprintf(schema, sizeof schema, "sb_mig_project_%d", (int)getpid());
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    admin_exec(sql);
    snprintf(url, sizeof url, "%s%coptions=-csearch_path%%3D%s", g_url,
             strchr(g_url, '?') ? '&' : '?', schema);
    int rc = migrate_run(url, dir, err, sizeof err);
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    if (rc != 0) {
        admin_exec(sql);
        fail_msg("%s", err);
    }
    rc = migrate_run(url, dir, err, sizeof err);
    admin_exec(sql);
    assert_int_equal(rc, 0);
}

static int group_setup(void **state)
{
    g_url = getenv("SB_TEST_DATABASE_URL");
    if (g_url && !*g_url) g_url = NULL;
    if (!g_url) return 0;
    snprintf(g_schema, sizeof g_schema, "sb_mig_test_%d", (int)getpid());
    snprintf(g_murl, sizeof g_murl, "%s%coptions=-csearch_path%%3D%s", g_url,
             strchr(g_url, '?') ? '&' : '?', g_schema);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", g_schema);
    admin_exec(sql);
    snprintf(g_dir, sizeof g_dir, "/tmp/sb_mig_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    return 0;
}

static int group_teardown(void **state)
{
    if (!g_url) return 0;
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", g_schema);
    admin_exec(sql);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) return -1;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_project_migrations),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
