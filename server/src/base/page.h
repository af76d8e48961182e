/* page.h — pages of a listing: opaque cursors and the page body
 * {"items", "next_cursor"} (api.md "Pagination"). Layer-neutral: the REST
 * edges read ?limit= and ?cursor= (rest_page_parse), the cores build pages. */
#ifndef SB_PAGE_H
#define SB_PAGE_H

#include <jansson.h>

#define PAGE_CURSOR_MAX 256 /* longest decoded cursor, bytes */

/* Encodes cursor text as an opaque string (malloc'd), or NULL. */
char *page_cursor_encode(const char *text);
/* Decodes an opaque cursor; returns malloc'd text (printable ASCII, at most
 * PAGE_CURSOR_MAX bytes) or NULL if invalid. */
char *page_cursor_decode(const char *opaque);
/* {"items": items, "next_cursor": the encoded next_cursor_text or null};
 * steals items (NULL: an empty array). */
json_t *page_body(json_t *items, const char *next_cursor_text);
/* The same body as text, around items_json (the items' JSON array text,
 * items_len bytes, written as it is): a new string, *len its length, or
 * NULL when out of memory. */
char *page_body_text(const char *items_json, size_t items_len, const char *next_cursor_text, size_t *len);

#endif
