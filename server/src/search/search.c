/* search.c — the search core (search.h): query parsing and the page (its
 * items built by Postgres, spliced into the body here). */
#include "search/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/page.h"
#include "base/util.h"
#include "store/db.h"

static bool word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int search_parse_query(const char *q, char *out, const char **err)
{
    out[0] = 0;
    size_t n = q ? strlen(q) : 0;
    if (n > SEARCH_QUERY_MAX) {
        *err = "must be at most 256 bytes";
        return -1;
    }
    if (!util_utf8_valid((const uint8_t *)q, n)) {
        *err = "must be UTF-8 text";
        return -1;
    }
    const char *w[SEARCH_WORDS_MAX];
    size_t wl[SEARCH_WORDS_MAX];
    int nw = 0;
    for (size_t i = 0; i < n;) {
        if (!word_byte((unsigned char)q[i])) {
            i++;
            continue;
        }
        size_t s = i;
        while (i < n && word_byte((unsigned char)q[i])) i++;
        if (nw == SEARCH_WORDS_MAX) {
            *err = "must have at most 8 words";
            return -1;
        }
        size_t len = i - s;
        if (len > SEARCH_WORD_MAX) { /* cut on a character boundary */
            len = SEARCH_WORD_MAX;
            while (len > 0 && ((unsigned char)q[s + len] & 0xC0) == 0x80) len--;
        }
        w[nw] = q + s;
        wl[nw++] = len;
    }
    if (nw == 0) {
        *err = "must contain a word";
        return -1;
    }
    size_t o = 0;
    for (int i = 0; i < nw; i++) {
        bool prefix = i == nw - 1 && wl[i] >= 2;
        o += (size_t)snprintf(out + o, SEARCH_TSQUERY_MAX - o, "%s'%.*s'%s", i ? " & " : "",
                              (int)wl[i], w[i], prefix ? ":*" : "");
    }
    return 0;
}

const char *search_cursor_id(const char *cursor)
{
    if (strncmp(cursor, "s:", 2)) return NULL;
    const char *id = strrchr(cursor, ':') + 1;
    return id_parse(id) ? id : NULL;
}

typedef struct search_req {
    const search_sink_ops *ops;
    void *to;
} search_req;

static void done(const PGresult *res, const char *err, void *arg)
{
    search_req *q = arg;
    if (!res || err) {
        const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (!st || !strncmp(st, "08", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2)) {
            q->ops->fail(q->to, "unavailable", "the database is unavailable", NULL, 1);
        } else {
            log_msg(LOG_ERROR, "search db error", "sqlstate", json_string(st), "error",
                    json_string(err ? err : ""), NULL);
            q->ops->fail(q->to, "internal", "internal error", NULL, 0);
        }
        free(q);
        return;
    }
    const char *items = PQntuples(res) == 1 && PQnfields(res) == 2 && !PQgetisnull(res, 0, 0)
                            ? PQgetvalue(res, 0, 0)
                            : NULL;
    const char *next = items && !PQgetisnull(res, 0, 1) ? PQgetvalue(res, 0, 1) : NULL;
    char pos[32];
    if (next) snprintf(pos, sizeof pos, "s:%s", next);
    size_t len = 0;
    char *body = items && items[0] == '[' && (!next || id_parse(next))
                     ? page_body_text(items, (size_t)PQgetlength(res, 0, 0), next ? pos : NULL, &len)
                     : NULL;
    if (body) q->ops->ok(q->to, body, len);
    else q->ops->fail(q->to, "internal", items ? "out of memory" : "bad result", NULL, 0);
    free(body);
    free(q);
}

/* The search statement, prepared once per connection (db_query_prepared). */
static const db_stmt search_stmt = {"sb_search", SEARCH_SQL, 5};

void search_run(const search_sink_ops *ops, void *to, struct db_pool *db, const char *user_id,
                const char *tsq, const char *conv_id, const char *before_id, int limit)
{
    if (!db) {
        ops->fail(to, "unavailable", "no database is configured", NULL, 1);
        return;
    }
    if (!id_parse(user_id)) {
        ops->fail(to, "unauthorized", "this account no longer exists", NULL, 0);
        return;
    }
    search_req *q = calloc(1, sizeof *q);
    if (!q) {
        ops->fail(to, "internal", "out of memory", NULL, 0);
        return;
    }
    q->ops = ops;
    q->to = to;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[5] = {user_id, tsq, conv_id, before_id, lim};
    db_query_prepared(db, g_config.search_db_conns, &search_stmt, p, done, q);
}
