/* sync.c — the per-user event query and cursor checks (see sync.h and
 * docs/sync.md); GET /api/v1/sync, its REST edge, is sync_rest.c. */
#include "sync/sync.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "sync/tailer.h"

/* ------------------------------------------------------------------------ */
/* Cursors                                                                   */
/* ------------------------------------------------------------------------ */

int sync_cursor_check(const char *user_id, const char *s, size_t len, sync_pos *pos)
{
    int64_t issued = 0;
    if (cursor_decode((const uint8_t *)g_config.secret, g_config.secret_len, user_id, s, len, pos,
                      &issued) != CURSOR_OK)
        return SYNC_CUR_BAD;
    int64_t now_s = util_now_unix_ms() / 1000;
    if (g_config.sync_retention_s > 0 && issued < now_s - g_config.sync_retention_s)
        return SYNC_CUR_EXPIRED;
    return SYNC_CUR_OK;
}

/* ------------------------------------------------------------------------ */
/* The per-user query                                                        */
/* ------------------------------------------------------------------------ */

/* Stable events visible to user $1 after ($2, $3), at most $4 and about
 * 4 MiB, in (tx, id) order: sb_sync_page (migrations/043_sync_page_bytes.sql,
 * a plpgsql function so its plan is cached per connection). Columns:
 * horizon, prune watermark "tx:id", then per event tx, id, type, payload
 * (one row with NULL event columns when there is none), and whether events
 * were left out for size. */
static const char SQL_SYNC[] = "SELECT * FROM sb_sync_page($1::int8, $2::xid8, $3::int8, $4::int)";

typedef struct fetch_ctx {
    sync_page_cb cb;
    void *arg;
    sync_pos from;
    int limit;
} fetch_ctx;

static void page_free(sync_page *pg)
{
    for (int i = 0; i < pg->n; i++) free(pg->ev[i].prefix);
    free(pg->ev);
}

/* Reads "tx:id" into *p. Returns 0 or -1. */
static int parse_watermark(const char *s, sync_pos *p)
{
    const char *colon = strchr(s, ':');
    if (!colon) return -1;
    char tx[24];
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof tx) return -1;
    memcpy(tx, s, n);
    tx[n] = 0;
    uint64_t id;
    if (cursor_parse_u64(tx, &p->tx) != 0 || cursor_parse_u64(colon + 1, &id) != 0) return -1;
    p->id = (int64_t)id;
    return 0;
}

static void fetched(const PGresult *res, const char *err, void *arg)
{
    fetch_ctx *c = arg;
    sync_page pg = {0};
    if (err || !res) {
        c->cb(NULL, err ? err : "unavailable", c->arg);
        free(c);
        return;
    }
    int rows = PQntuples(res);
    uint64_t horizon = 0;
    if (rows < 1 || cursor_parse_u64(PQgetvalue(res, 0, 0), &horizon) != 0) {
        c->cb(NULL, "bad sync result", c->arg);
        free(c);
        return;
    }
    sync_pos wm = {0, 0};
    if (!PQgetisnull(res, 0, 1)) parse_watermark(PQgetvalue(res, 0, 1), &wm);
    pg.expired = sync_pos_cmp(c->from, wm) < 0;
    pg.ev = calloc((size_t)rows, sizeof *pg.ev);
    if (!pg.ev) {
        c->cb(NULL, "out of memory", c->arg);
        free(c);
        return;
    }
    for (int i = 0; i < rows && pg.n < c->limit; i++) {
        if (PQgetisnull(res, i, 2)) continue;
        sync_event *e = &pg.ev[pg.n];
        uint64_t id;
        if (cursor_parse_u64(PQgetvalue(res, i, 2), &e->pos.tx) != 0 ||
            cursor_parse_u64(PQgetvalue(res, i, 3), &id) != 0)
            continue;
        e->pos.id = (int64_t)id;
        e->type = PQgetvalue(res, i, 4);
        e->prefix = sync_payload_prefix(PQgetvalue(res, i, 5), &e->prefix_len);
        if (!e->prefix) {
            log_msg(LOG_WARN, "sync_bad_payload", "id", json_integer((json_int_t)id), NULL);
            continue; /* skipped, but its position still counts (below) */
        }
        pg.n++;
    }
    int events = 0;
    sync_pos last = c->from;
    for (int i = 0; i < rows; i++)
        if (!PQgetisnull(res, i, 2)) events++;
    /* more than the limit, or cut short for size (sb_sync_page's r_more) */
    pg.has_more = events > c->limit ||
                  (PQnfields(res) > 6 && !PQgetisnull(res, 0, 6) && PQgetvalue(res, 0, 6)[0] == 't');
    if (pg.n > 0) last = pg.ev[pg.n - 1].pos;
    if (pg.has_more) {
        pg.next = last;
    } else {
        sync_pos h = {horizon, 0};
        pg.next = sync_pos_cmp(h, last) > 0 ? h : last;
    }
    c->cb(&pg, NULL, c->arg);
    page_free(&pg);
    free(c);
}

void sync_fetch(db_pool *db, const char *uid, sync_pos from, int limit, sync_page_cb cb, void *arg)
{
    fetch_ctx *c = malloc(sizeof *c);
    if (!c) {
        cb(NULL, "unavailable", arg);
        return;
    }
    c->cb = cb;
    c->arg = arg;
    c->from = from;
    c->limit = limit;
    char tx[24], id[24], lim[16];
    snprintf(tx, sizeof tx, "%llu", (unsigned long long)from.tx);
    snprintf(id, sizeof id, "%lld", (long long)from.id);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[4] = {uid, tx, id, lim};
    db_query(db, SQL_SYNC, 4, p, fetched, c);
}
