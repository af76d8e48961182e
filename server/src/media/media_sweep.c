/* media_sweep.c — deletes orphan media and the files no row names.
 *   * Rows: media referenced by no message and no avatar
 *     SB_MEDIA_ORPHAN_HOURS after its upload (so also media whose messages
 *     were deleted for everyone) are deleted, on one node of a cluster at a
 *     time (a Postgres advisory lock, sb_media_sweep_locked); then each file
 *     no row shares any more.
 *   * Files: the files under SB_MEDIA_DIR that no media row names (rows
 *     deleted with an account, migration 125, or by an earlier delete of a
 *     user; an upload whose row was refused) are removed, a few thousand
 *     names per sweep, folder after folder, on every node that sweeps (each
 *     its own SB_MEDIA_DIR; a node sharing the folder finds nothing left).
 * Both run every SB_MEDIA_SWEEP_MS from reactor 0's tick. A file written
 * within the last minute (or half the orphan age, if shorter) is kept: the
 * same content may just have been uploaded again, its row not yet written.
 * The file is moved aside before it is deleted and put back if what was
 * moved turns out fresh, so an upload renamed into place between the check
 * and the delete survives. File system calls run on the libuv thread pool. */
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "media/media.h"
#include "media/media_store.h"
#include "net/reactor.h"
#include "store/db.h"

#define SWEEP_BATCH 500
#define SCAN_BATCH 2000 /* file names checked per sweep (at least one folder) */

static uint64_t g_last_ms;
static bool g_busy, g_scan_busy;

/* The file scan's place: the folders of this round, the next one to read. */
static char (*g_dirs)[3];
static int g_ndirs, g_next_dir;

/* A list of sha256 hex names, worked on off the reactor. */
typedef struct sha_job {
    uv_work_t work;
    reactor *r;
    char (*sha)[65];
    int n, cap;
    int removed;
    bool scan; /* the file scan's listing, else removals */
} sha_job;

static sha_job *job_new(reactor *r, bool scan)
{
    sha_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->r = r;
    j->scan = scan;
    j->work.data = j;
    return j;
}

static void job_free(sha_job *j)
{
    if (!j) return;
    free(j->sha);
    free(j);
}

static int job_add(sha_job *j, const char *sha)
{
    if (j->n == j->cap) {
        int cap = j->cap ? j->cap * 2 : 64;
        char(*ns)[65] = realloc(j->sha, (size_t)cap * sizeof *ns);
        if (!ns) return -1;
        j->sha = ns;
        j->cap = cap;
    }
    memcpy(j->sha[j->n++], sha, 65);
    return 0;
}

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static double margin_s(void)
{
    double m = g_config.media_orphan_hours * 3600.0 / 2; /* the file is older than the age */
    return m > 60 ? 60 : m;
}

static bool fresh(const struct stat *st, double margin)
{
    double mtime = (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9;
    return mtime >= (double)util_now_unix_ms() / 1000.0 - margin;
}

/* Removes the file of content sha unless it is fresh (thread pool). */
static bool remove_if_old(const char *sha, double margin)
{
    static atomic_uint seq;
    char path[1024], aside[1100];
    struct stat st;
    media_store_path(sha, path, sizeof path);
    if (stat(path, &st) != 0 || fresh(&st, margin)) return false;
    snprintf(aside, sizeof aside, "%s/tmp/%s.%ld.%u.gone", g_config.media_dir, sha, (long)getpid(),
             atomic_fetch_add(&seq, 1));
    if (rename(path, aside) != 0) return false;
    if (stat(aside, &st) == 0 && fresh(&st, margin)) { /* an upload landed in between: put it back */
        if (rename(aside, path) != 0) unlink(aside);
        return false;
    }
    return unlink(aside) == 0;
}

static void remove_work(uv_work_t *w)
{
    sha_job *j = w->data;
    double margin = margin_s();
    for (int i = 0; i < j->n; i++)
        if (remove_if_old(j->sha[i], margin)) j->removed++;
}

static void remove_done(uv_work_t *w, int status)
{
    sha_job *j = w->data;
    (void)status;
    if (j->removed) log_msg(LOG_INFO, "media sweep", "files", json_integer(j->removed), NULL);
    if (j->scan) g_scan_busy = false;
    job_free(j);
}

/* Removes the old files among j's names; frees j (and ends the scan if
 * it is the scan's) in any case. */
static void remove_files(sha_job *j)
{
    if (!j->n || uv_queue_work(&j->r->loop, &j->work, remove_work, remove_done) != 0) {
        if (j->scan) g_scan_busy = false;
        job_free(j);
    }
}

static void swept(const PGresult *res, const char *err, void *arg)
{
    reactor *r = arg;
    g_busy = false;
    if (!res || err) {
        log_msg(LOG_WARN, "media sweep failed", "error", json_string(err ? err : "unavailable"), NULL);
        return;
    }
    sha_job *j = job_new(r, false);
    for (int i = 0; j && i < PQntuples(res); i++) {
        const char *sha = PQgetvalue(res, i, 0);
        if (is_hex(sha, 64)) job_add(j, sha);
    }
    if (j) remove_files(j);
}

/* The scan's listing (thread pool): a new round lists the folders; then
 * the names of the next folders, until SCAN_BATCH names. */
static void list_work(uv_work_t *w)
{
    sha_job *j = w->data;
    char path[1024];
    if (g_next_dir >= g_ndirs) {
        free(g_dirs);
        g_dirs = NULL;
        g_ndirs = g_next_dir = 0;
        DIR *d = opendir(g_config.media_dir);
        struct dirent *e;
        int cap = 0;
        while (d && (e = readdir(d))) {
            if (!is_hex(e->d_name, 2)) continue;
            if (g_ndirs == cap) {
                int nc = cap ? cap * 2 : 64;
                char(*nd)[3] = realloc(g_dirs, (size_t)nc * sizeof *nd);
                if (!nd) break;
                g_dirs = nd;
                cap = nc;
            }
            memcpy(g_dirs[g_ndirs++], e->d_name, 3);
        }
        if (d) closedir(d);
    }
    while (g_next_dir < g_ndirs && j->n < SCAN_BATCH) {
        const char *sub = g_dirs[g_next_dir++];
        snprintf(path, sizeof path, "%s/%s", g_config.media_dir, sub);
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (is_hex(e->d_name, 64) && !memcmp(e->d_name, sub, 2) && job_add(j, e->d_name) != 0) break;
        if (d) closedir(d);
    }
}

static void unnamed(const PGresult *res, const char *err, void *arg)
{
    sha_job *j = arg;
    if (!res || err) {
        log_msg(LOG_WARN, "media file scan failed", "error", json_string(err ? err : "unavailable"), NULL);
        g_scan_busy = false;
        job_free(j);
        return;
    }
    /* the names no row has: j's list becomes them */
    int n = PQntuples(res);
    j->n = 0;
    for (int i = 0; i < n; i++) {
        const char *sha = PQgetvalue(res, i, 0);
        if (is_hex(sha, 64)) memcpy(j->sha[j->n++], sha, 65); /* n <= the names sent */
    }
    remove_files(j);
}

static void list_done(uv_work_t *w, int status)
{
    sha_job *j = w->data;
    db_pool *db = db_of(j->r);
    if (status != 0 || !j->n || !db) {
        g_scan_busy = false;
        job_free(j);
        return;
    }
    /* a text[] literal: {sha,sha,...} (hex needs no quoting) */
    char *arr = malloc((size_t)j->n * 65 + 3);
    if (!arr) {
        g_scan_busy = false;
        job_free(j);
        return;
    }
    size_t o = 0;
    arr[o++] = '{';
    for (int i = 0; i < j->n; i++) {
        if (i) arr[o++] = ',';
        memcpy(arr + o, j->sha[i], 64);
        o += 64;
    }
    arr[o++] = '}';
    arr[o] = 0;
    const char *p[1] = {arr};
    db_query(db,
             "SELECT s FROM unnest($1::text[]) s WHERE NOT EXISTS (SELECT 1 FROM media x WHERE x.sha256 = s)",
             1, p, unnamed, j);
    free(arr);
}

static void scan_start(reactor *r)
{
    sha_job *j = job_new(r, true);
    if (!j) return;
    g_scan_busy = true;
    if (uv_queue_work(&r->loop, &j->work, list_work, list_done) != 0) {
        g_scan_busy = false;
        job_free(j);
    }
}

static void sweep_tick(reactor *r)
{
    if (r->id != 0 || !g_config.media_sweep_ms) return;
    uint64_t now = uv_now(&r->loop);
    if (g_last_ms && now - g_last_ms < g_config.media_sweep_ms) return;
    db_pool *db = db_of(r);
    if (!db) return;
    g_last_ms = now;
    if (!g_scan_busy) scan_start(r);
    if (g_busy) return;
    char before[48], lim[16];
    int64_t cut_ms = util_now_unix_ms() - (int64_t)(g_config.media_orphan_hours * 3600000.0);
    snprintf(before, sizeof before, "%.3f", (double)cut_ms / 1000.0);
    snprintf(lim, sizeof lim, "%d", SWEEP_BATCH);
    const char *p[2] = {before, lim};
    g_busy = true;
    if (db_query(db, "SELECT * FROM sb_media_sweep_locked(to_timestamp($1::float8), $2::int)", 2, p, swept, r) != 0)
        g_busy = false;
}
int media_sweep_register(void)
{
    static const reactor_hooks hooks = {.tick = sweep_tick};
    if (!g_config.database_url[0]) return 0;
    return reactor_register(&hooks) < 0 ? -1 : 0;
}
