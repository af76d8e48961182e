/* search.h — full-text search over the caller's messages (api.md
 * "Messages", GET /api/v1/search/messages; docs/search.md): the query
 * parser and the sb_search function (migrations/051_search.sql, replaced by
 * 120_search_scoped.sql: a per-conversation index, and by
 * 170_search_newest.sql: newest first, cost bounded by the page). The
 * core: no HTTP; search_rest.c is the edge. */
#ifndef SB_SEARCH_H
#define SB_SEARCH_H

#include <jansson.h>
#include <stddef.h>

struct db_pool;

#define SEARCH_QUERY_MAX 256 /* bytes of q */
#define SEARCH_WORDS_MAX 8   /* words in q */
#define SEARCH_WORD_MAX 64   /* bytes of one word (longer ones are cut) */
#define SEARCH_TSQUERY_MAX (SEARCH_WORDS_MAX * (SEARCH_WORD_MAX + 8) + 8)

/* Turns the text a user typed into tsquery text for to_tsquery('simple',
 * ...): words are runs of ASCII letters and digits and of any non-ASCII
 * character (so words of any script); everything else separates them. The
 * words are quoted and joined with " & "; the last one becomes a prefix
 * (":*") when it has at least 2 bytes, so "hel" finds "hello" as the user
 * types. Returns 0 with the text in out (>= SEARCH_TSQUERY_MAX bytes), or
 * -1 with *err a sentence: q longer than SEARCH_QUERY_MAX bytes, not
 * UTF-8, no word, more than SEARCH_WORDS_MAX words. Pure. */
int search_parse_query(const char *q, char *out, const char **err);

/* The message id in a page cursor (decoded) "s:<id>": a pointer into cursor,
 * or NULL if it is not one. The "s:<rank>:<id>" cursors of the ranked order
 * (before migration 170) are taken by their id, so a page fetched across
 * the upgrade goes on newest first below that message. Pure. */
const char *search_cursor_id(const char *cursor);

/* The statement search_run sends (sb_search_page,
 * migrations/185_search_page.sql): user, tsquery text, conversation, the
 * cursor id (results below it), rows; it answers the items' JSON array text
 * and the next cursor's id (NULL on the last page). scripts/bench.sh's
 * pgbench reference for P12 runs this same text (it reads it from here). */
#define SEARCH_SQL "SELECT p.items, p.next_id FROM sb_search_page($1::int8, $2, $3::int8, $4::int8, $5::int) p"

/* Where the answer goes (the REST edge's function table). */
typedef struct search_sink_ops {
    void (*ok)(void *to, const char *json, size_t len); /* the page's JSON text */
    void (*fail)(void *to, const char *code, const char *message, json_t *details, int retry_after_s);
} search_sink_ops;

/* One page of user_id's search, newest first: tsq from search_parse_query,
 * conv_id NULL or a valid id, before_id the decoded cursor (the last id of
 * the previous page; NULL: first page), limit 1..200. Answers {"items":
 * [Message + "snippet"], "next_cursor"} through ops/to, once: the items'
 * text as Postgres wrote it, spliced, never parsed here. */
void search_run(const search_sink_ops *ops, void *to, struct db_pool *db, const char *user_id,
                const char *tsq, const char *conv_id, const char *before_id, int limit);

/* Registers GET /api/v1/search/messages (search_rest.c). */
void search_routes(void);

#endif
