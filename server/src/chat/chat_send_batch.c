/* chat_send_batch.c — the per-reactor send batcher (see chat_send_batch.h).
 *
 * Up to SEND_BATCH_INFLIGHT batches per reactor are in flight at once (on
 * different pool connections, so Postgres runs them in parallel), but never
 * two that hold the same conversation: a queued send whose conversation is
 * in a batch in flight waits for it, and so do the sends queued behind it
 * for that conversation. So the sends of one socket to one conversation
 * commit in the order they arrived. */
#include "chat/chat_send_batch.h"
#include "chat/chat_push.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "store/db.h"
#include "base/log.h"
#include "net/reactor.h"
#include "sync/tailer.h"

#define SEND_BATCH_INFLIGHT 2
/* Queued sends one flush looks at past waiting ones (bounds its work). */
#define SCAN_MAX (SEND_BATCH_MAX_ITEMS * 4)
#define SKIP_SLOTS 2048 /* > SCAN_MAX, power of two */

static const char SQL_BATCH[] = "SELECT * FROM sb_message_send_batch($1::jsonb)";

typedef struct send_item {
    struct send_item *next;
    chat_sink *s;
    char *json;
    size_t len;
    int64_t conv;
    bool alone; /* retried after its batch failed: goes in a batch of its own */
} send_item;

typedef struct send_batch {
    struct batcher *b;
    struct send_batch *next; /* in flight */
    send_item *items;
    int n;
    int nconv;
    int64_t *convs; /* sorted, distinct */
} send_batch;

typedef struct batcher {
    bool init;
    uv_check_t check; /* flushes at the end of the loop iteration */
    send_item *head, *tail;
    size_t nq;        /* items queued */
    size_t qbytes;    /* bytes of their JSON */
    int inflight;     /* batches sent, not answered */
    send_batch *flying;
} batcher;

static _Thread_local batcher tl_batcher;

static void flush(batcher *b);

static void on_check(uv_check_t *h)
{
    uv_check_stop(h);
    flush(h->data);
}

static void items_free(send_item *it)
{
    while (it) {
        send_item *next = it->next;
        free(it->json);
        free(it);
        it = next;
    }
}

static void batch_free(send_batch *sb)
{
    items_free(sb->items);
    free(sb->convs);
    free(sb);
}

/* Wakes the end-of-iteration flush when something is queued and a batch
 * may leave. */
static void arm(batcher *b)
{
    if (!b->head || b->inflight >= SEND_BATCH_INFLIGHT) return;
    if (b->init)
        uv_check_start(&b->check, on_check);
    else
        flush(b); /* no reactor loop on this thread */
}

/* Takes sb off the in-flight list. */
static void landed(batcher *b, send_batch *sb)
{
    for (send_batch **p = &b->flying; *p; p = &(*p)->next)
        if (*p == sb) {
            *p = sb->next;
            break;
        }
    b->inflight--;
}

/* Puts items (a list) back at the front of the queue, each to go alone. */
static void requeue_alone(batcher *b, send_item *items)
{
    send_item *last = NULL;
    int n = 0;
    for (send_item *it = items; it; it = it->next) {
        it->alone = true;
        last = it;
        n++;
    }
    if (!last) return;
    last->next = b->head;
    b->head = items;
    if (!b->tail) b->tail = last;
    b->nq += (size_t)n;
    for (send_item *it = items; it != last->next; it = it->next) b->qbytes += it->len;
}

/* The answer of one batch: one row per item, in item order. */
static void batch_done(const PGresult *res, const char *err, void *arg)
{
    send_batch *sb = arg;
    batcher *b = sb->b;
    landed(b, sb);
    if (!res || err) {
        bool conn = !res || (err && !strcmp(err, "unavailable"));
        if (!conn && sb->n > 1) {
            /* a server error failed the whole batch (nothing of it was
             * written): retry each send alone, so only the bad one fails */
            log_msg(LOG_WARN, "send batch failed; retrying its sends one by one", "error",
                    json_string(err ? err : ""), "sends", json_integer(sb->n), NULL);
            requeue_alone(b, sb->items);
            sb->items = NULL;
        } else {
            for (send_item *it = sb->items; it; it = it->next) chat_sink_fail_db(it->s, res, err);
        }
    } else if (PQntuples(res) != sb->n || PQnfields(res) != 1) {
        log_msg(LOG_ERROR, "send batch: wrong number of results", "sends", json_integer(sb->n),
                "rows", json_integer(PQntuples(res)), NULL);
        for (send_item *it = sb->items; it; it = it->next)
            chat_fail(it->s, "internal", "bad result", NULL);
    } else {
        int i = 0;
        for (send_item *it = sb->items; it; it = it->next, i++) {
            if (PQgetisnull(res, i, 0))
                chat_fail(it->s, "not_found", "not found", NULL);
            else
                chat_sink_answer_text(it->s, PQgetvalue(res, i, 0));
        }
        /* after every sender was answered: the push hook only queues */
        if (g_chat_push_hook)
            for (i = 0; i < sb->n; i++)
                if (!PQgetisnull(res, i, 0)) g_chat_push_hook(PQgetvalue(res, i, 0));
        tailer_kick(); /* the batch committed: wake this node's event tailer once */
    }
    batch_free(sb);
    arm(b);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* True when a batch in flight holds conversation conv. */
static bool busy(const batcher *b, int64_t conv)
{
    for (const send_batch *sb = b->flying; sb; sb = sb->next)
        if (bsearch(&conv, sb->convs, (size_t)sb->nconv, sizeof conv, cmp_i64)) return true;
    return false;
}

/* A set of conversations seen skipped in one scan (open addressing; at most
 * SCAN_MAX entries, 0 = empty: conversation ids are positive). */
static bool skip_has(const int64_t *t, int64_t conv)
{
    for (size_t i = (size_t)conv * 0x9E3779B97F4A7C15ull & (SKIP_SLOTS - 1);; i = (i + 1) & (SKIP_SLOTS - 1)) {
        if (t[i] == conv) return true;
        if (t[i] == 0) return false;
    }
}

static void skip_add(int64_t *t, int64_t conv)
{
    size_t i = (size_t)conv * 0x9E3779B97F4A7C15ull & (SKIP_SLOTS - 1);
    while (t[i] != 0 && t[i] != conv) i = (i + 1) & (SKIP_SLOTS - 1);
    t[i] = conv;
}

/* Sends items (a list of n, bytes of JSON in all) as one batch. */
static void submit(batcher *b, send_item *items, int n, size_t bytes)
{
    send_batch *sb = calloc(1, sizeof *sb);
    char *text = malloc(bytes + (size_t)n + 2);
    int64_t *convs = malloc((size_t)n * sizeof *convs);
    if (!sb || !text || !convs) {
        free(sb);
        free(text);
        free(convs);
        for (send_item *it = items; it; it = it->next)
            chat_fail(it->s, "unavailable", "out of memory; nothing was done", NULL);
        items_free(items);
        return;
    }
    size_t o = 0;
    int k = 0;
    text[o++] = '[';
    for (send_item *it = items; it; it = it->next) {
        if (it != items) text[o++] = ',';
        memcpy(text + o, it->json, it->len);
        o += it->len;
        convs[k++] = it->conv;
    }
    text[o++] = ']';
    text[o] = 0;
    qsort(convs, (size_t)n, sizeof *convs, cmp_i64);
    int d = 0;
    for (int i = 0; i < n; i++)
        if (d == 0 || convs[d - 1] != convs[i]) convs[d++] = convs[i];
    sb->b = b;
    sb->items = items;
    sb->n = n;
    sb->convs = convs;
    sb->nconv = d;
    sb->next = b->flying;
    b->flying = sb;
    b->inflight++;
    const char *p[1] = {text};
    db_query(chat_sink_db(items->s), SQL_BATCH, 1, p, batch_done, sb); /* copies p */
    free(text);
}

/* Sends queued items in batches while fewer than SEND_BATCH_INFLIGHT are in
 * flight. A batch takes queued sends in order, skipping those whose
 * conversation is in flight or had an earlier send skipped in this scan. */
static void flush(batcher *b)
{
    int64_t skipped[SKIP_SLOTS];
    while (b->head && b->inflight < SEND_BATCH_INFLIGHT) {
        memset(skipped, 0, sizeof skipped);
        send_item *first = NULL, *last = NULL, **pp = &b->head, *prev = NULL;
        int n = 0, seen = 0;
        size_t bytes = 0;
        bool closed = false; /* the batch took an item that must go alone */
        while (*pp && seen < SCAN_MAX && n < SEND_BATCH_MAX_ITEMS && !closed) {
            send_item *it = *pp;
            seen++;
            bool take = !skip_has(skipped, it->conv) && !busy(b, it->conv) &&
                        (n == 0 || (!it->alone && bytes + it->len <= SEND_BATCH_MAX_BYTES));
            if (!take) {
                if (n > 0 && bytes + it->len > SEND_BATCH_MAX_BYTES) break;
                skip_add(skipped, it->conv);
                prev = it;
                pp = &it->next;
                continue;
            }
            *pp = it->next; /* unlink */
            if (b->tail == it) b->tail = prev;
            it->next = NULL;
            if (last) last->next = it;
            else first = it;
            last = it;
            n++;
            bytes += it->len;
            if (it->alone) closed = true;
        }
        if (!b->head) b->tail = NULL;
        if (n == 0) break; /* everything queued waits for a batch in flight */
        b->nq -= (size_t)n;
        b->qbytes -= bytes;
        submit(b, first, n, bytes);
    }
}

void chat_send_batch_add(chat_sink *s, int64_t conv, char *json)
{
    send_item *it = malloc(sizeof *it);
    batcher *b = &tl_batcher;
    size_t len = strlen(json);
    if (!it || b->nq >= SEND_BATCH_QUEUE_MAX || b->qbytes + len > SEND_BATCH_QUEUE_MAX_BYTES) {
        free(it);
        free(json);
        chat_fail(s, "unavailable", "too many sends waiting; nothing was done", NULL);
        return;
    }
    it->next = NULL;
    it->s = s;
    it->json = json;
    it->len = len;
    it->conv = conv;
    it->alone = false;
    if (b->tail) b->tail->next = it;
    else b->head = it;
    b->tail = it;
    b->nq++;
    b->qbytes += len;
    reactor *r = reactor_self();
    if (!b->init && r) {
        uv_check_init(&r->loop, &b->check);
        b->check.data = b;
        b->init = true;
    }
    if (!b->init || (r && r->stopping)) {
        flush(b); /* no loop to wait on (or shutting down): send now */
        return;
    }
    if (b->inflight < SEND_BATCH_INFLIGHT && !uv_is_active((uv_handle_t *)&b->check))
        uv_check_start(&b->check, on_check);
}
