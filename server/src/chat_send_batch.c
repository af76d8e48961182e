/* chat_send_batch.c — the per-reactor send batcher (see chat_send_batch.h). */
#include "chat_send_batch.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "db.h"
#include "log.h"
#include "reactor.h"
#include "tailer.h"

/* Batches in flight per reactor. One keeps a socket's sends in order (a
 * later batch starts after the earlier one committed). */
#define SEND_BATCH_INFLIGHT 1

static const char SQL_BATCH[] = "SELECT * FROM sb_message_send_batch($1::jsonb)";

typedef struct send_item {
    struct send_item *next;
    chat_sink *s;
    char *json;
    size_t len;
} send_item;

typedef struct batcher {
    bool init;
    uv_check_t check; /* flushes at the end of the loop iteration */
    send_item *head, *tail;
    size_t nq;        /* items queued */
    int inflight;     /* batches sent, not answered */
} batcher;

typedef struct send_batch {
    batcher *b;
    send_item *items;
    int n;
} send_batch;

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


static void submit(batcher *b, send_item *items, int n, size_t bytes);

/* The answer of one batch: one row per item, in item order. */
static void batch_done(const PGresult *res, const char *err, void *arg)
{
    send_batch *sb = arg;
    batcher *b = sb->b;
    b->inflight--;
    if (!res || err) {
        bool conn = !res || (err && !strcmp(err, "unavailable"));
        if (!conn && sb->n > 1) {
            /* a server error failed the whole batch (nothing of it was
             * written): retry each send alone, so only the bad one fails */
            log_msg(LOG_WARN, "send batch failed; retrying its sends one by one", "error",
                    json_string(err ? err : ""), "sends", json_integer(sb->n), NULL);
            send_item *it = sb->items;
            while (it) {
                send_item *next = it->next;
                it->next = NULL;
                submit(b, it, 1, it->len);
                it = next;
            }
            free(sb);
            return;
        }
        for (send_item *it = sb->items; it; it = it->next) chat_sink_fail_db(it->s, res, err);
    } else if (PQntuples(res) != sb->n || PQnfields(res) != 1) {
        log_msg(LOG_ERROR, "send batch: wrong number of results", "sends", json_integer(sb->n),
                "rows", json_integer(PQntuples(res)), NULL);
        for (send_item *it = sb->items; it; it = it->next)
            chat_fail(it->s, 500, "internal", "bad result", NULL);
    } else {
        int i = 0;
        for (send_item *it = sb->items; it; it = it->next, i++) {
            if (PQgetisnull(res, i, 0))
                chat_fail(it->s, 404, "not_found", "not found", NULL);
            else
                chat_sink_answer_text(it->s, PQgetvalue(res, i, 0));
        }
        tailer_kick(); /* the batch committed: wake this node's event tailer once */
    }
    items_free(sb->items);
    free(sb);
    arm(b);
}

/* Sends items (a list of n, bytes of JSON in all) as one batch. */
static void submit(batcher *b, send_item *items, int n, size_t bytes)
{
    send_batch *sb = malloc(sizeof *sb);
    char *text = malloc(bytes + (size_t)n + 2);
    if (!sb || !text) {
        free(sb);
        free(text);
        for (send_item *it = items; it; it = it->next)
            chat_fail(it->s, 503, "unavailable", "out of memory; nothing was done", NULL);
        items_free(items);
        return;
    }
    size_t o = 0;
    text[o++] = '[';
    for (send_item *it = items; it; it = it->next) {
        if (it != items) text[o++] = ',';
        memcpy(text + o, it->json, it->len);
        o += it->len;
    }
    text[o++] = ']';
    text[o] = 0;
    sb->b = b;
    sb->items = items;
    sb->n = n;
    b->inflight++;
    const char *p[1] = {text};
    db_query(chat_sink_db(items->s), SQL_BATCH, 1, p, batch_done, sb); /* copies p */
    free(text);
}

/* Sends queued items in batches while fewer than SEND_BATCH_INFLIGHT are in
 * flight. */
static void flush(batcher *b)
{
    while (b->head && b->inflight < SEND_BATCH_INFLIGHT) {
        send_item *first = b->head, *last = NULL, *it = b->head;
        int n = 0;
        size_t bytes = 0;
        /* one pool per reactor: every queued sink shares it */
        while (it && n < SEND_BATCH_MAX_ITEMS && (n == 0 || bytes + it->len <= SEND_BATCH_MAX_BYTES)) {
            bytes += it->len;
            n++;
            last = it;
            it = it->next;
        }
        b->head = it;
        if (!it) b->tail = NULL;
        b->nq -= (size_t)n;
        last->next = NULL;
        submit(b, first, n, bytes);
    }
}

void send_batch_add(chat_sink *s, char *json)
{
    send_item *it = malloc(sizeof *it);
    batcher *b = &tl_batcher;
    if (!it || b->nq >= SEND_BATCH_QUEUE_MAX) {
        free(it);
        free(json);
        chat_fail(s, 503, "unavailable", "too many sends waiting; nothing was done", NULL);
        return;
    }
    it->next = NULL;
    it->s = s;
    it->json = json;
    it->len = strlen(json);
    if (b->tail) b->tail->next = it;
    else b->head = it;
    b->tail = it;
    b->nq++;
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
