/* tailer.c — the node's event tailer (see tailer.h and docs/sync.md).
 *
 * State machine on reactor 0's loop:
 *   DOWN --backoff--> CONNECTING --PQconnectPoll ok--> UP
 * Once UP it sends LISTEN sb_events, reads its start position (the stable
 * horizon) the first time, then fetches batches of stable events after its
 * position whenever a NOTIFY arrives, when the previous batch was full, when
 * committed events were seen above the horizon (soon, they will be stable),
 * or when the fallback timer fires. One query at a time on the connection.
 * Any failure drops the connection and retries with exponential backoff;
 * the position survives, so delivery resumes where it stopped. The
 * connection itself (set-up, backoff, flush, polling) is a pg_conn
 * (store/pg_conn.h), shared with the query pools. */
#include "sync/tailer.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "base/config.h"
#include "base/log.h"
#include "bus/pubsub.h"
#include "net/reactor.h"
#include "store/pg_conn.h"
#include "sync/sync_window.h"
#include "base/util.h"
#include "base/metrics.h"

#define TL_QUERY_TIMEOUT_MS 30000
#define TL_PENDING_MS 5 /* re-read soon when committed events wait above the horizon */

enum { Q_NONE = 0, Q_LISTEN, Q_PREPARE, Q_START, Q_FETCH, Q_PRUNE, Q_BACKFILL };

typedef struct tailer {
    pg_conn pc; /* the connection: set-up, backoff, flush, polling */
    reactor *r;
    uv_loop_t *loop;
    uv_timer_t timer; /* the next fetch */
    int query;         /* query in flight (Q_NONE: idle) */
    uint64_t sent_ms;  /* when it was sent */
    PGresult *res;     /* its result, once complete */
    bool want;         /* a NOTIFY came while a query was in flight */
    bool positioned;   /* pos has been read once */
    int backfill;      /* the sync window's start-up backfill: 0 to do, 1 running, 2 done */
    bool backfill_turn; /* the next idle query is a backfill chunk (alternates with fetches) */
    sync_pos backfill_base; /* the window's lower bound when the chunk in flight was asked */
    uint64_t fetch_seq; /* the number of the fetch in flight (sync_window_fetch_sent) */
    sync_pos pos;      /* last position read */
    uint64_t pending_ms;   /* current re-read delay while events wait above a stuck horizon */
    uint64_t last_horizon;
    uint64_t last_prune_ms;
} tailer;

static tailer *g_tl;
static pthread_mutex_t g_pos_mu = PTHREAD_MUTEX_INITIALIZER;
static sync_pos g_pos;
static bool g_pos_ready;

/* Joined user channels per hash bucket of the user id (false positives
 * only cost work; there are no false negatives). 2^17 buckets: 512 KiB,
 * whose pages a process touches all of within its first few thousand users
 * (2^20 cost 4 MiB of RSS per process: 250 B per connection at 16,000 per
 * process); at 16,000 users ~12 % of the buckets are taken. */
#define TL_ONLINE_BUCKETS (1u << 17)
static atomic_uint g_online[TL_ONLINE_BUCKETS];

static uint32_t uid_bucket(const char *uid)
{
    uint32_t h = 2166136261u;
    while (*uid) h = (h ^ (uint8_t)*uid++) * 16777619u;
    return h & (TL_ONLINE_BUCKETS - 1);
}

void tailer_user_online(const char *uid, int delta)
{
    if (delta > 0) atomic_fetch_add(&g_online[uid_bucket(uid)], 1);
    else atomic_fetch_sub(&g_online[uid_bucket(uid)], 1);
}

static atomic_int g_kick_pending;
static atomic_bool g_started; /* tailer_start scheduled the tailer */

static void tl_teardown(tailer *t, const char *why);
static void tl_next(tailer *t);
static void on_timer(uv_timer_t *h);

/* ------------------------------------------------------------------------ */
/* Published position                                                        */
/* ------------------------------------------------------------------------ */

sync_pos tailer_position(bool *ready)
{
    pthread_mutex_lock(&g_pos_mu);
    sync_pos p = g_pos;
    if (ready) *ready = g_pos_ready;
    pthread_mutex_unlock(&g_pos_mu);
    return p;
}

/* Publishes p (monotone) before the events up to it are handed out. */
static void publish_pos(sync_pos p)
{
    pthread_mutex_lock(&g_pos_mu);
    if (!g_pos_ready || sync_pos_cmp(p, g_pos) > 0) g_pos = p;
    g_pos_ready = true;
    pthread_mutex_unlock(&g_pos_mu);
}

/* ------------------------------------------------------------------------ */
/* Payload text                                                              */
/* ------------------------------------------------------------------------ */

char *sync_payload_prefix(const char *payload, size_t *len)
{
    /* jsonb's text form is canonical JSON whose only whitespace outside
     * strings is ", " and ": ": dropping it compacts the object in one pass,
     * without parsing (the text comes from our own event log) */
    size_t n = payload ? strlen(payload) : 0;
    while (n && (payload[n - 1] == ' ' || payload[n - 1] == '\n')) n--;
    if (n < 2 || payload[0] != '{' || payload[n - 1] != '}') return NULL;
    static const char tail[] = ",\"cursor\":\"";
    char *p = malloc(n + sizeof tail);
    if (!p) return NULL;
    size_t o = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i + 1 < n; i++) { /* all but the closing brace */
        char c = payload[i];
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            continue;
        }
        p[o++] = c;
    }
    if (in_str) {
        free(p);
        return NULL;
    }
    bool empty = o == 1; /* just "{" */
    const char *t = empty ? tail + 1 : tail;
    size_t tl = strlen(t);
    memcpy(p + o, t, tl + 1);
    *len = o + tl;
    return p;
}

char *tailer_splice(const char *prefix, size_t prefix_len, const char *cursor, size_t *len)
{
    size_t cl = strlen(cursor);
    char *s = malloc(prefix_len + cl + 3);
    if (!s) return NULL;
    memcpy(s, prefix, prefix_len);
    memcpy(s + prefix_len, cursor, cl);
    memcpy(s + prefix_len + cl, "\"}", 3);
    *len = prefix_len + cl + 2;
    return s;
}

/* ------------------------------------------------------------------------ */
/* Delivery                                                                  */
/* ------------------------------------------------------------------------ */

/* Hands one event to the `user:<id>` topic of each recipient in `arr` (a
 * Postgres int8[] text, "{1,2,3}") that has a user channel joined on this
 * node: the payload is compacted once (at the first such recipient), then
 * each recipient's cursor is spliced into it. Returns 0, or -1 when arr or
 * the payload is malformed. */
static int deliver_event(const char *arr, const char *type, const char *payload, sync_pos pos,
                         int64_t now_s)
{
    if (!arr || arr[0] != '{') return -1;
    const char *p = arr + 1;
    char *prefix = NULL;
    size_t plen = 0;
    int rc = 0;
    while (*p && *p != '}') {
        char uid[24];
        size_t k = 0;
        while (*p >= '0' && *p <= '9' && k < sizeof uid - 1) uid[k++] = *p++;
        uid[k] = 0;
        if (k == 0 || (*p != ',' && *p != '}')) {
            rc = -1;
            break;
        }
        if (*p == ',') p++;
        if (atomic_load(&g_online[uid_bucket(uid)]) == 0) continue; /* not joined here */
        if (!prefix && !(prefix = sync_payload_prefix(payload, &plen))) {
            rc = -1;
            break;
        }
        char cur[CURSOR_LEN + 1];
        cursor_encode((const uint8_t *)g_config.secret, g_config.secret_len, uid, pos, now_s, cur);
        size_t tl;
        char *text = tailer_splice(prefix, plen, cur, &tl);
        char topic[32];
        snprintf(topic, sizeof topic, "user:%s", uid);
        pubsub_msg *m = text ? pubsub_msg_text(topic, type, text, tl, NULL) : NULL;
        free(text);
        if (m) pubsub_deliver_node(m); /* every node tails for itself: not on the bus */
    }
    free(prefix);
    return rc;
}

/* Reads "tx:id" into *p. Returns 0 or -1. */
static int parse_pos(const char *s, sync_pos *p)
{
    char tx[24];
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : 0;
    uint64_t id;
    if (n == 0 || n >= sizeof tx) return -1;
    memcpy(tx, s, n);
    tx[n] = 0;
    if (cursor_parse_u64(tx, &p->tx) != 0 || cursor_parse_u64(colon + 1, &id) != 0) return -1;
    p->id = (int64_t)id;
    return 0;
}

/* Loads a backfill chunk (SQL_BACKFILL, newest first, asked below `base`)
 * into the sync window and lowers its exact lower bound: to the oldest event
 * taken when older ones are left, else to the prune watermark. Returns true
 * when more chunks may follow. */
static bool backfill(const PGresult *res, sync_pos base)
{
    int rows = PQntuples(res);
    if (rows < 1) { /* nothing to load: the window is complete as it is */
        log_msg(LOG_INFO, "sync_window_backfilled", "events", json_integer(0), NULL);
        reactor_trim_hint(REACTOR_TRIM_ANY); /* the start-up's results, given back */
        return false;
    }
    sync_pos wm = {0, 0};
    if (!PQgetisnull(res, 0, 0)) parse_pos(PQgetvalue(res, 0, 0), &wm);
    bool cut = PQgetvalue(res, 0, 1)[0] == 't'; /* older events are left */
    bool full = false; /* the window refused one: stop */
    sync_pos oldest = {0, 0};
    bool any = false;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 2)) continue;
        sync_pos p;
        uint64_t id;
        if (cursor_parse_u64(PQgetvalue(res, i, 2), &p.tx) != 0 ||
            cursor_parse_u64(PQgetvalue(res, i, 3), &id) != 0) {
            cut = full = true;
            break;
        }
        p.id = (int64_t)id;
        if (sync_window_prepend(base, p, PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
                                PQgetvalue(res, i, 6)) != 0) {
            full = true;
            break;
        }
        oldest = p;
        any = true;
    }
    if (!(cut ? any && sync_window_backfilled(base, oldest) : sync_window_backfilled(base, wm)) ||
        full || !cut) {
        size_t n = 0;
        sync_window_stats(NULL, NULL, &n, NULL);
        log_msg(LOG_INFO, "sync_window_backfilled", "events", json_integer((json_int_t)n), NULL);
        reactor_trim_hint(REACTOR_TRIM_ANY); /* the start-up's results, given back */
        return false;
    }
    return true;
}

/* Handles a fetch result: publishes the new position, then hands every event
 * to its recipients' topics. Returns true when more may be waiting now
 * (a full batch) and sets *pending when committed events sit above the
 * horizon. */
static bool deliver_batch(tailer *t, const PGresult *res, bool *pending)
{
    int rows = PQntuples(res);
    *pending = false;
    if (rows == 0) return false;
    uint64_t horizon = 0;
    if (cursor_parse_u64(PQgetvalue(res, 0, 0), &horizon) != 0) return false;
    *pending = PQgetvalue(res, 0, 1)[0] == 't';
    sync_pos wm;
    if (PQnfields(res) > 8 && !PQgetisnull(res, 0, 8) && parse_pos(PQgetvalue(res, 0, 8), &wm) == 0)
        sync_window_pruned(wm); /* a prune here or on another node */
    int events = 0;
    sync_pos last = t->pos;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 2)) continue;
        sync_pos p;
        uint64_t id;
        if (cursor_parse_u64(PQgetvalue(res, i, 2), &p.tx) != 0 ||
            cursor_parse_u64(PQgetvalue(res, i, 3), &id) != 0)
            continue;
        p.id = (int64_t)id;
        last = p;
        events++;
        sync_window_append(p, PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
    }
    /* a full batch, or one cut at about 4 MiB of payloads: more is waiting */
    bool cut = PQnfields(res) > 7 && PQgetvalue(res, 0, 7)[0] == 't';
    bool full = events >= g_config.tailer_batch || cut;
    sync_pos next = last;
    if (!full) { /* every stable event was read: move to the horizon */
        sync_pos h = {horizon, 0};
        if (sync_pos_cmp(h, next) > 0) next = h;
    }
    if (sync_pos_cmp(next, t->pos) > 0) t->pos = next;
    publish_pos(t->pos); /* before handing the events out (tailer.h) */
    sync_window_advance(t->pos, full ? 0 : t->fetch_seq);
    int64_t now_s = util_now_unix_ms() / 1000;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 2)) continue;
        sync_pos p;
        uint64_t id;
        if (cursor_parse_u64(PQgetvalue(res, i, 2), &p.tx) != 0 ||
            cursor_parse_u64(PQgetvalue(res, i, 3), &id) != 0)
            continue;
        p.id = (int64_t)id;
        if (deliver_event(PQgetvalue(res, i, 6), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), p,
                          now_s) < 0)
            log_msg(LOG_WARN, "tailer_bad_event", "id", json_integer((json_int_t)p.id), NULL);
    }
    return full;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

/* The stable events after ($1, $2), at most $3 and about 4 MiB of payloads
 * (memory per batch stays bounded), with the horizon, whether committed
 * events wait above it, each event's recipients, and whether the batch was
 * cut for size. "Events above the horizon" is max(tx) >= horizon, not
 * EXISTS (... tx >= horizon): the horizon is not known when the query is
 * planned, and the planner chose a sequential scan for the EXISTS (expecting
 * a third of the table to match, it expects an early hit; nothing matches
 * when the tailer is caught up), reading every event ever kept on each fetch
 * (P9 in docs/benchmarks.md, session 6: 484 pages per fetch, more with each
 * run on the same database); max() is always one backward step of
 * events_tx_id_idx. */
static const char SQL_FETCH[] =
    "WITH h AS MATERIALIZED ("
    " SELECT s.x, coalesce((SELECT max(p.tx) FROM events p) >= s.x, false) AS pending"
    " FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x) s),"
    " b AS MATERIALIZED (SELECT e.tx, e.id, e.stream, e.seq, e.type, e.payload::text AS pl"
    "  FROM h CROSS JOIN LATERAL (SELECT * FROM events e"
    "   WHERE (e.tx, e.id) > ($1::xid8, $2::int8) AND e.tx < h.x"
    "   ORDER BY e.tx, e.id LIMIT $3) e),"
    " z AS (SELECT b.*, sum(octet_length(b.pl)) OVER (ORDER BY b.tx, b.id) - octet_length(b.pl) AS before"
    "  FROM b),"
    " f AS (SELECT * FROM z WHERE z.before < 4194304) "
    "SELECT h.x::text, h.pending, f.tx::text, f.id::text, f.type, f.pl,"
    " CASE WHEN f.stream < 0 THEN ARRAY[-f.stream]"
    "  ELSE ARRAY(SELECT m.user_id FROM memberships m WHERE m.conversation_id = f.stream"
    "   AND m.from_seq <= f.seq AND (m.to_seq IS NULL OR f.seq <= m.to_seq)) END::text,"
    " (SELECT count(*) FROM f) < (SELECT count(*) FROM b),"
    " (SELECT w.tx::text || ':' || w.id FROM sync_prune w) "
    "FROM h LEFT JOIN f ON true "
    "ORDER BY f.tx, f.id";

/* A chunk of the sync window's start-up backfill (sync_window.h): the
 * events before ($1, $2), newest first, at most $3 and about 4 MiB of
 * payloads, each with its recipients; with the prune watermark "tx:id" and
 * whether older events (after the watermark) were left out. */
static const char SQL_BACKFILL[] =
    "WITH b AS MATERIALIZED (SELECT e.tx, e.id, e.stream, e.seq, e.type, e.payload::text AS pl"
    "  FROM events e WHERE (e.tx, e.id) < ($1::xid8, $2::int8) ORDER BY e.tx DESC, e.id DESC LIMIT $3),"
    " z AS (SELECT b.*, sum(octet_length(b.pl)) OVER (ORDER BY b.tx DESC, b.id DESC)"
    "  - octet_length(b.pl) AS before FROM b),"
    " f AS (SELECT * FROM z WHERE z.before < 4194304) "
    "SELECT (SELECT w.tx::text || ':' || w.id FROM sync_prune w),"
    " (SELECT count(*) FROM b) >= $3 OR (SELECT count(*) FROM f) < (SELECT count(*) FROM b),"
    " f.tx::text, f.id::text, f.type, f.pl,"
    " CASE WHEN f.stream < 0 THEN ARRAY[-f.stream]"
    "  ELSE ARRAY(SELECT m.user_id FROM memberships m WHERE m.conversation_id = f.stream"
    "   AND m.from_seq <= f.seq AND (m.to_seq IS NULL OR f.seq <= m.to_seq)) END::text "
    "FROM (SELECT 1) o LEFT JOIN f ON true "
    "ORDER BY f.tx DESC, f.id DESC";
#define TL_BACKFILL_ROWS "2000"

static const char SQL_START[] = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text";

/* Deletes, in (tx, id) order, a prefix of at most 5000 events all older than
 * the retention ($1 seconds), and moves the prune watermark past them. */
static const char SQL_PRUNE[] =
    "WITH b AS (SELECT tx, id, created_at < now() - $1::int8 * interval '1 second' AS old"
    "  FROM events ORDER BY tx, id LIMIT 5000),"
    " f AS (SELECT tx, id FROM b WHERE NOT old ORDER BY tx, id LIMIT 1),"
    " w AS (SELECT b.tx, b.id FROM b WHERE b.old AND NOT EXISTS"
    "  (SELECT 1 FROM f WHERE (f.tx, f.id) < (b.tx, b.id)) ORDER BY b.tx DESC, b.id DESC LIMIT 1),"
    " u AS (UPDATE sync_prune s SET tx = w.tx, id = w.id FROM w"
    "  WHERE (w.tx, w.id) > (s.tx, s.id) RETURNING 1),"
    " d AS (DELETE FROM events e USING w WHERE (e.tx, e.id) <= (w.tx, w.id) RETURNING 1) "
    "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM u)";

/* metrics: tailer lag, from the first write a fetch covers (tailer_kick)
 * to that fetch's result */
static atomic_uint_fast64_t g_kick_ns;  /* oldest kick not yet covered by a fetch */
static uint64_t g_fetch_kick_ns;        /* reactor 0: the kick the fetch in flight covers */
static metrics_hist m_lag;
static const int64_t k_lag_bounds[] = {1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
__attribute__((constructor)) static void tailer_metrics(void)
{
    metrics_histogram(&m_lag, "sb_tailer_lag_seconds",
                      "Time from a committed write (the tailer's wake-up) to the tailer fetching it for delivery.", NULL,
                      k_lag_bounds, (int)(sizeof k_lag_bounds / sizeof k_lag_bounds[0]), 1e6);
}

static void tl_sent(tailer *t, int q);

/* Sends a query; the result arrives in tl_read. */
static void tl_send(tailer *t, int q, const char *sql, int n, const char *const *params)
{
    if (!PQsendQueryParams(t->pc.pg, sql, n, NULL, params, NULL, NULL, 0)) {
        tl_teardown(t, PQerrorMessage(t->pc.pg));
        return;
    }
    tl_sent(t, q);
}

/* Records query q as in flight and flushes it. */
static void tl_sent(tailer *t, int q)
{
    t->query = q;
    t->sent_ms = uv_now(t->loop);
    if (pg_conn_flush(&t->pc) != 0) tl_teardown(t, PQerrorMessage(t->pc.pg));
}

/* Sends the fetch as the statement prepared on this connection. */
static void send_fetch(tailer *t)
{
    char tx[24], id[24], lim[16];
    snprintf(tx, sizeof tx, "%llu", (unsigned long long)t->pos.tx);
    snprintf(id, sizeof id, "%lld", (long long)t->pos.id);
    snprintf(lim, sizeof lim, "%d", g_config.tailer_batch > 0 ? g_config.tailer_batch : 500);
    const char *p[3] = {tx, id, lim};
    t->want = false;
    g_fetch_kick_ns = atomic_exchange(&g_kick_ns, 0); /* this fetch covers the kicks so far */
    t->fetch_seq = sync_window_fetch_sent(); /* sync requests before now wait for it */
    if (!PQsendQueryPrepared(t->pc.pg, "tl_fetch", 3, p, NULL, NULL, 0)) {
        tl_teardown(t, PQerrorMessage(t->pc.pg));
        return;
    }
    tl_sent(t, Q_FETCH);
}

/* Decides what to do while idle: prune when due, else fetch now or arm the
 * timer. */
static void tl_next(tailer *t)
{
    if (t->pc.state != PG_CONN_UP || t->query != Q_NONE) return;
    if (!t->positioned) {
        tl_send(t, Q_START, SQL_START, 0, NULL);
        return;
    }
    if (t->backfill == 0) t->backfill = g_config.sync_window_bytes > 0 ? 1 : 2;
    if (t->backfill == 1 && t->backfill_turn) { /* a chunk between two fetches */
        t->backfill_turn = false;
        sync_window_stats(&t->backfill_base, NULL, NULL, NULL);
        char tx[24], id[24];
        snprintf(tx, sizeof tx, "%llu", (unsigned long long)t->backfill_base.tx);
        snprintf(id, sizeof id, "%lld", (long long)t->backfill_base.id);
        const char *p[3] = {tx, id, TL_BACKFILL_ROWS};
        tl_send(t, Q_BACKFILL, SQL_BACKFILL, 3, p);
        return;
    }
    t->backfill_turn = true;
    uint64_t now = uv_now(t->loop);
    if (g_config.sync_prune_interval_s > 0 &&
        now - t->last_prune_ms >= (uint64_t)g_config.sync_prune_interval_s * 1000) {
        t->last_prune_ms = now;
        char ret[24];
        snprintf(ret, sizeof ret, "%lld", (long long)g_config.sync_retention_s);
        const char *p[1] = {ret};
        tl_send(t, Q_PRUNE, SQL_PRUNE, 1, p);
        return;
    }
    send_fetch(t);
}

/* A query finished with result res (NULL: the connection broke). */
static void tl_done(tailer *t, PGresult *res)
{
    int q = t->query;
    t->query = Q_NONE;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        log_msg(LOG_WARN, "tailer_query_failed", "query", json_integer(q), "error",
                json_string(m ? m : "?"), NULL);
        if (q == Q_PRUNE && PQstatus(t->pc.pg) == CONNECTION_OK) { /* not fatal: fetch on */
            tl_next(t);
            return;
        }
        tl_teardown(t, m ? m : "query failed");
        return;
    }
    if (q == Q_FETCH && g_fetch_kick_ns) {
        metrics_observe(&m_lag, (int64_t)((uv_hrtime() - g_fetch_kick_ns) / 1000));
        g_fetch_kick_ns = 0;
    }
    uint64_t delay = g_config.tailer_poll_ms ? g_config.tailer_poll_ms : 500;
    switch (q) {
    case Q_LISTEN:
        if (!PQsendPrepare(t->pc.pg, "tl_fetch", SQL_FETCH, 3, NULL)) {
            tl_teardown(t, PQerrorMessage(t->pc.pg));
            return;
        }
        tl_sent(t, Q_PREPARE);
        return;
    case Q_PREPARE:
        tl_next(t);
        return;
    case Q_START: {
        uint64_t h = 0;
        if (PQntuples(res) != 1 || cursor_parse_u64(PQgetvalue(res, 0, 0), &h) != 0) {
            tl_teardown(t, "bad start position");
            return;
        }
        t->pos = (sync_pos){h, 0};
        t->positioned = true;
        publish_pos(t->pos);
        sync_window_start(t->pos, g_config.sync_window_bytes);
        log_msg(LOG_INFO, "tailer_started", "horizon", json_integer((json_int_t)h), NULL);
        tl_next(t);
        return;
    }
    case Q_PRUNE:
        if (PQntuples(res) == 1 && atoll(PQgetvalue(res, 0, 0)) > 0) {
            log_msg(LOG_INFO, "events_pruned", "count", json_integer(atoll(PQgetvalue(res, 0, 0))),
                    NULL);
            /* more may be left: another round in a second */
            t->last_prune_ms = uv_now(t->loop) - (uint64_t)g_config.sync_prune_interval_s * 1000 + 1000;
        }
        tl_next(t);
        return;
    case Q_BACKFILL:
        if (!backfill(res, t->backfill_base)) t->backfill = 2;
        tl_next(t);
        return;
    case Q_FETCH: {
        bool pending = false;
        bool full = deliver_batch(t, res, &pending);
        if (full || t->want) {
            tl_next(t);
            return;
        }
        if (pending) {
            /* soon, but back off while the horizon does not move (a long
             * transaction elsewhere holds it) */
            if (t->pos.tx != t->last_horizon || t->pending_ms == 0) t->pending_ms = TL_PENDING_MS;
            else if (t->pending_ms * 2 < delay) t->pending_ms *= 2;
            else t->pending_ms = delay;
            t->last_horizon = t->pos.tx;
            delay = t->pending_ms;
        }
        break;
    }
    default:
        break;
    }
    uv_timer_start(&t->timer, on_timer, delay, 0);
}

/* ------------------------------------------------------------------------ */
/* Connection                                                                */
/* ------------------------------------------------------------------------ */

/* Drops the connection and schedules a reconnect with backoff + jitter. The
 * position is kept. */
static void tl_teardown(tailer *t, const char *why)
{
    char msg[PG_CONN_WHY];
    int report = pg_conn_drop(&t->pc, why, true, msg); /* copies why first */
    uv_timer_stop(&t->timer);
    if (t->res) PQclear(t->res);
    t->res = NULL;
    t->query = Q_NONE;
    sync_window_live(false); /* sync requests waiting for a fetch read Postgres */
    if (report != PG_CONN_QUIET)
        log_msg(LOG_WARN, report == PG_CONN_LOST ? "tailer_connection_lost" : "tailer_connect_failed",
                "error", json_string(msg), NULL);
}

/* pg_conn hook: reads what arrived: notifications (wake a fetch) and the
 * result of the query in flight. */
static void tl_read(pg_conn *pc)
{
    tailer *t = pc->owner;
    PGconn *pg = t->pc.pg;
    if (!PQconsumeInput(pg)) {
        tl_teardown(t, PQerrorMessage(pg));
        return;
    }
    PGnotify *n;
    bool notified = false;
    while ((n = PQnotifies(pg)) != NULL) {
        notified = true;
        PQfreemem(n);
    }
    while (t->query != Q_NONE && !PQisBusy(pg)) {
        PGresult *r = PQgetResult(pg);
        if (r) {
            if (t->res) PQclear(r); /* only the first result counts */
            else t->res = r;
            continue;
        }
        PGresult *res = t->res;
        t->res = NULL;
        if (!res) {
            tl_teardown(t, "no result");
            return;
        }
        tl_done(t, res);
        PQclear(res);
        if (t->pc.state != PG_CONN_UP) return;
    }
    /* notifications may have come with the result */
    while ((n = PQnotifies(pg)) != NULL) {
        notified = true;
        PQfreemem(n);
    }
    if (notified) {
        if (t->query != Q_NONE) t->want = true;
        else {
            uv_timer_stop(&t->timer);
            tl_next(t);
        }
    }
}

/* pg_conn hook: connected: LISTEN first, then fetch. */
static void tl_up(pg_conn *pc, bool restored)
{
    tailer *t = pc->owner;
    sync_window_live(true);
    if (restored) log_msg(LOG_INFO, "tailer_connection_restored", NULL);
    tl_send(t, Q_LISTEN, "LISTEN sb_events", 0, NULL);
}

/* pg_conn hook: the attempt or the connection failed. */
static void tl_fail(pg_conn *pc, const char *why)
{
    tl_teardown(pc->owner, why);
}

static const pg_conn_hooks tl_hooks = {
    .up = tl_up,
    .readable = tl_read,
    .fail = tl_fail,
};

/* The fetch timer: the next fetch (or prune, or backfill chunk) when idle. */
static void on_timer(uv_timer_t *h)
{
    tailer *t = h->data;
    if (t->pc.state == PG_CONN_UP && t->query == Q_NONE) tl_next(t);
}

/* Once a second: a query that takes too long means the server is stuck. */
static void on_watchdog(uv_timer_t *h)
{
    tailer *t = h->data;
    if (t->pc.state == PG_CONN_UP && t->query != Q_NONE &&
        uv_now(t->loop) - t->sent_ms > TL_QUERY_TIMEOUT_MS)
        tl_teardown(t, "query timeout");
}

static uv_timer_t g_watchdog;

/* Runs on reactor 0: creates the tailer and starts connecting. */
static void start_task(void *arg)
{
    reactor *r = reactor_self();
    tailer *t = calloc(1, sizeof *t);
    if (!t || !r) {
        free(t);
        log_msg(LOG_ERROR, "tailer_start_failed", NULL);
        return;
    }
    t->r = r;
    t->loop = &r->loop;
    uv_timer_init(t->loop, &t->timer);
    t->timer.data = t;
    uv_unref((uv_handle_t *)&t->timer);
    uv_timer_init(t->loop, &g_watchdog);
    g_watchdog.data = t;
    uv_timer_start(&g_watchdog, on_watchdog, 1000, 1000);
    uv_unref((uv_handle_t *)&g_watchdog);
    t->last_prune_ms = uv_now(t->loop); /* the first prune one interval after start */
    g_tl = t;
    pg_conn_init(&t->pc, t->loop, &tl_hooks, t, g_config.database_url, "switchboard-tailer", false);
    pg_conn_start(&t->pc);
}

/* Runs on reactor 0: fetch now if idle, else right after the query in
 * flight. */
static void kick_task(void *arg)
{
    (void)arg;
    atomic_store(&g_kick_pending, 0);
    tailer *t = g_tl;
    if (!t || t->pc.state != PG_CONN_UP) return;
    if (t->query != Q_NONE) {
        t->want = true;
        return;
    }
    uv_timer_stop(&t->timer);
    tl_next(t);
}

void tailer_kick(void)
{
    if (!atomic_load(&g_started)) return;
    uint_fast64_t none = 0;
    atomic_compare_exchange_strong(&g_kick_ns, &none, (uint_fast64_t)uv_hrtime());
    if (atomic_exchange(&g_kick_pending, 1) == 0 && reactor_post(&reactor_all[0], kick_task, NULL) != 0)
        atomic_store(&g_kick_pending, 0);
}

int tailer_start(void)
{
    if (!g_config.database_url[0] || reactor_count < 1) return 0;
    if (reactor_post(&reactor_all[0], start_task, NULL) != 0) return -1;
    atomic_store(&g_started, true);
    return 0;
}
