/* migrate.c — applies numbered SQL migrations once each (see migrate.h). */
#include "store/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/log.h"
#include "base/util.h"
#include "base/strbuf.h"

#define MIGRATE_LOCK_KEY "5346480813370001" /* pg_advisory_lock key of migrations */
#define MIGRATE_MAX_FILE (16 << 20)

typedef struct mig {
    long long version;
    char *file; /* file name within the folder */
    char *name;
} mig;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = 0;
}

long long migrate_parse_name(const char *file, const char **name, size_t *namelen)
{
    size_t n = strlen(file), d = 0;
    while (d < n && file[d] >= '0' && file[d] <= '9')
        d++;
    if (d == 0 || d > 15 || d >= n || file[d] != '_') return -1;
    if (n < d + 1 + 1 + 4 || strcmp(file + n - 4, ".sql") != 0) return -1;
    if (name) *name = file + d + 1;
    if (namelen) *namelen = n - 4 - (d + 1);
    return strtoll(file, NULL, 10);
}

static int mig_cmp(const void *a, const void *b)
{
    const mig *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

static void migs_free(mig *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].file);
        free(m[i].name);
    }
    free(m);
}

/* Lists the migrations of dir sorted by version into *out. Returns the count
 * or -1 (err set). */
static long list_migrations(const char *dir, mig **out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        set_err(err, errlen, "cannot open migrations folder %s: %s", dir, strerror(errno));
        return -1;
    }
    mig *m = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name;
        size_t namelen;
        long long v = migrate_parse_name(e->d_name, &name, &namelen);
        if (v < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            mig *nm = realloc(m, cap * sizeof *m);
            if (!nm) goto oom;
            m = nm;
        }
        m[n].version = v;
        m[n].file = strdup(e->d_name);
        m[n].name = strndup(name, namelen);
        n++;
        if (!m[n - 1].file || !m[n - 1].name) goto oom;
    }
    closedir(d);
    if (n) qsort(m, n, sizeof *m, mig_cmp);
    for (size_t i = 1; i < n; i++)
        if (m[i].version == m[i - 1].version) {
            set_err(err, errlen, "two migrations have version %lld: %s and %s", m[i].version,
                    m[i - 1].file, m[i].file);
            migs_free(m, n);
            return -1;
        }
    *out = m;
    return (long)n;
oom:
    closedir(d);
    migs_free(m, n);
    set_err(err, errlen, "out of memory");
    return -1;
}

/* Reads a whole file (NUL-terminated, malloc'd) or returns NULL (err set). */
static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    strbuf s = {0};
    char chunk[8192];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (strbuf_add(&s, chunk, k, MIGRATE_MAX_FILE) != 0) {
            set_err(err, errlen, "%s is too large or out of memory", path);
            fclose(f);
            strbuf_free(&s);
            return NULL;
        }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        set_err(err, errlen, "cannot read %s", path);
        strbuf_free(&s);
        return NULL;
    }
    if (!s.p) return strdup("");
    return s.p;
}

/* Runs a command; returns true if it succeeded (err set otherwise). */
static bool exec_ok(PGconn *pg, const char *sql, int nparams, const char *const *params,
                    const char *what, char *err, size_t errlen)
{
    PGresult *r =
        nparams ? PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) set_err(err, errlen, "%s: %s", what, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

static void quiet_notices(void *arg, const char *msg) {}

/* Applies one migration in a transaction with its schema_migrations row. */
static int apply_one(PGconn *pg, const char *dir, const mig *m, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, m->file);
    char *sql = read_file(path, err, errlen);
    if (!sql) return -1;
    int64_t t0 = util_now_unix_ms();
    char what[600];
    snprintf(what, sizeof what, "migration %s failed", m->file);
    char ver[32];
    snprintf(ver, sizeof ver, "%lld", m->version);
    const char *params[2] = {ver, m->name};
    bool ok = exec_ok(pg, "BEGIN", 0, NULL, "BEGIN", err, errlen) &&
              exec_ok(pg, sql, 0, NULL, what, err, errlen) &&
              exec_ok(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                      params, what, err, errlen) &&
              exec_ok(pg, "COMMIT", 0, NULL, what, err, errlen);
    free(sql);
    if (!ok) {
        PQclear(PQexec(pg, "ROLLBACK"));
        return -1;
    }
    log_msg(LOG_INFO, "migration applied", "version", json_integer(m->version), "name",
            json_string(m->name), "ms", json_integer(util_now_unix_ms() - t0), NULL);
    return 0;
}

int migrate_run(const char *conninfo, const char *dir, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    mig *m = NULL;
    long n = list_migrations(dir, &m, err, errlen);
    if (n < 0) return -1;
    PGconn *pg = PQconnectdb(conninfo);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        set_err(err, errlen, "cannot connect to the database: %s",
                pg ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        migs_free(m, (size_t)n);
        return -1;
    }
    PQsetNoticeProcessor(pg, quiet_notices, NULL);
    const char *key[1] = {MIGRATE_LOCK_KEY};
    int rc = -1;
    if (!exec_ok(pg, "SELECT pg_advisory_lock($1::bigint)", 1, key, "advisory lock", err, errlen))
        goto done;
    if (!exec_ok(pg,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version bigint PRIMARY KEY,"
                 " name text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 0, NULL, "create schema_migrations", err, errlen))
        goto unlock;
    PGresult *r = PQexec(pg, "SELECT version FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(err, errlen, "read schema_migrations: %s", PQerrorMessage(pg));
        PQclear(r);
        goto unlock;
    }
    int applied = 0;
    rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        bool done_already = false;
        for (int row = 0; row < PQntuples(r) && !done_already; row++)
            if (strtoll(PQgetvalue(r, row, 0), NULL, 10) == m[i].version) done_already = true;
        if (done_already) continue;
        rc = apply_one(pg, dir, &m[i], err, errlen);
        if (rc == 0) applied++;
    }
    PQclear(r);
    if (rc == 0)
        log_msg(LOG_INFO, "migrations up to date", "applied", json_integer(applied), "known",
                json_integer(n), NULL);
unlock:
    PQclear(PQexecParams(pg, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, key, NULL, NULL, 0));
done:
    PQfinish(pg);
    migs_free(m, (size_t)n);
    return rc;
}
