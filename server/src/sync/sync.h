/* sync.h — the read side of the durable event log for one user:
 * GET /api/v1/sync (cursor paging and bootstrap) and the catch-up query the
 * user:<id> channel runs on join (docs/sync.md). */
#ifndef SB_SYNC_H
#define SB_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sync/cursor.h"
#include "store/db.h"

#define SYNC_LIMIT_DEFAULT 200
#define SYNC_LIMIT_MAX 1000
#define SYNC_BOOTSTRAP_MESSAGES_S "20" /* latest messages per conversation in a bootstrap */
#define SYNC_BOOTSTRAP_BYTES_S "4194304" /* and about this many bytes of them in all */

/* Registers GET /api/v1/sync (sync_rest.c, the REST edge). */
void sync_routes(void);

enum { SYNC_CUR_OK = 0, SYNC_CUR_BAD = 1, SYNC_CUR_EXPIRED = 2 };

/* Checks a cursor that user_id presented: SYNC_CUR_OK (*pos filled),
 * SYNC_CUR_BAD (forged, altered, another user's, not a cursor) or
 * SYNC_CUR_EXPIRED (issued longer ago than the retention). The prune
 * watermark is checked against the query's answer (sync_page_expired). */
int sync_cursor_check(const char *user_id, const char *s, size_t len, sync_pos *pos);

/* One page of a user's events after a position, as read by sync_fetch. */
typedef struct sync_event {
    sync_pos pos;
    const char *type;    /* points into the result */
    char *prefix;        /* payload text awaiting its cursor (tailer.h) */
    size_t prefix_len;
} sync_event;

typedef struct sync_page {
    sync_event *ev;
    int n;              /* events in ev (at most the limit asked) */
    bool has_more;      /* more stable events follow the last one */
    bool expired;       /* `from` is before the prune watermark: events were lost */
    sync_pos next;      /* the position after this page (last event, or the horizon) */
} sync_page;

/* Called with the page (NULL and err on failure: "unavailable", or the
 * server's message); the page is freed after the callback returns. */
typedef void (*sync_page_cb)(const sync_page *pg, const char *err, void *arg);

/* Reads at most `limit` stable events visible to user `uid` (decimal id)
 * after `from`, in (tx, id) order, on pool db. The callback runs once. */
void sync_fetch(db_pool *db, const char *uid, sync_pos from, int limit, sync_page_cb cb,
                void *arg);

#endif
