/* media_sweep.c — deletes orphan media: rows referenced by no message and
 * no avatar SB_MEDIA_ORPHAN_HOURS after their upload (so also media whose
 * messages were deleted for everyone), then each file no row shares any
 * more. Runs every SB_MEDIA_SWEEP_MS from reactor 0's tick, on one node of a
 * cluster at a time (a Postgres advisory lock, sb_media_sweep_locked). A
 * file written within the last minute (or half the orphan age, if shorter)
 * is kept: the same content may just have been uploaded again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "media/media.h"
#include "media/media_store.h"
#include "net/reactor.h"
#include "store/db.h"

#define SWEEP_BATCH 500

static uint64_t g_last_ms;
static bool g_busy;

typedef struct unlink_job {
    uv_fs_t fs;
    char path[1024];
    double margin_s;
} unlink_job;

static void on_unlinked(uv_fs_t *req)
{
    unlink_job *j = req->data;
    if (req->result < 0 && req->result != UV_ENOENT)
        log_msg(LOG_WARN, "media sweep: unlink failed", "path", json_string(j->path), "error",
                json_string(uv_strerror((int)req->result)), NULL);
    uv_fs_req_cleanup(req);
    free(j);
}

static void on_stat(uv_fs_t *req)
{
    unlink_job *j = req->data;
    uv_loop_t *loop = req->loop;
    bool old = false;
    if (req->result == 0) {
        double mtime = (double)req->statbuf.st_mtim.tv_sec + req->statbuf.st_mtim.tv_nsec / 1e9;
        old = mtime < (double)util_now_unix_ms() / 1000.0 - j->margin_s;
    }
    uv_fs_req_cleanup(req);
    if (!old || uv_fs_unlink(loop, &j->fs, j->path, on_unlinked) != 0) free(j);
}

static void swept(const PGresult *res, const char *err, void *arg)
{
    reactor *r = arg;
    g_busy = false;
    if (!res || err) {
        log_msg(LOG_WARN, "media sweep failed", "error", json_string(err ? err : "unavailable"), NULL);
        return;
    }
    double margin = g_config.media_orphan_hours * 3600.0 / 2; /* the file is older than the age */
    if (margin > 60) margin = 60;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        const char *sha = PQgetvalue(res, i, 0);
        if (strlen(sha) != 64) continue;
        unlink_job *j = calloc(1, sizeof *j);
        if (!j) break;
        j->margin_s = margin;
        media_store_path(sha, j->path, sizeof j->path);
        j->fs.data = j;
        if (uv_fs_stat(&r->loop, &j->fs, j->path, on_stat) != 0) free(j);
    }
    if (n) log_msg(LOG_INFO, "media sweep", "files", json_integer(n), NULL);
}

static void sweep_tick(reactor *r)
{
    if (r->id != 0 || g_busy || !g_config.media_sweep_ms) return;
    uint64_t now = uv_now(&r->loop);
    if (g_last_ms && now - g_last_ms < g_config.media_sweep_ms) return;
    db_pool *db = db_of(r);
    if (!db) return;
    g_last_ms = now;
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
