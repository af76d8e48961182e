/* presence_table.h — the compact presence table of one topic and the
 * encoders of Phoenix Presence payloads (used by presence.c under its lock;
 * nothing here is thread-safe by itself).
 *
 * A presence is one small struct (phx_ref, online_at, node number, and a
 * pointer to its key's entry: each key — a user id — is stored once per
 * topic however many presences it has), indexed by (node, phx_ref) and
 * grouped by key. The table keeps the presence_state payload
 * {key:{"metas":[{"online_at":..,"phx_ref":..},..]},..} encoded: a join of
 * a new key appends to it, other changes make it rebuilt on the next
 * request, so a burst of joiners costs one encoding, not one per joiner. */
#ifndef SB_PRESENCE_TABLE_H
#define SB_PRESENCE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTAB_KEY_MAX 24 /* keys (user ids): shorter than this */
#define PTAB_REF_MAX 24 /* phx_refs: shorter than this (= PRESENCE_REF_MAX) */

/* One presence as a value: what a join or leave diff carries. */
typedef struct pmeta {
    char key[PTAB_KEY_MAX];
    char ref[PTAB_REF_MAX];
    int64_t online_at;
    uint16_t node; /* node number (presence.c interns names), 0 = this node */
} pmeta;

typedef struct ptab ptab;

/* A new empty table, or NULL when out of memory. */
ptab *presence_table_new(void);
/* Frees t and every presence in it (NULL ok). */
void presence_table_free(ptab *t);
/* Number of presences. */
size_t presence_table_count(const ptab *t);
/* Adds presence m. Returns 0, 1 when (node, ref) is already there (nothing
 * changes), or -1 when out of memory or key/ref too long or empty ref. */
int presence_table_add(ptab *t, const pmeta *m);
/* Removes the presence (node, ref); copies it to *out when out != NULL.
 * Returns 0, or -1 when there is none. */
int presence_table_del(ptab *t, uint16_t node, const char *ref, pmeta *out);
/* Removes every presence of `node`, calling fn for each (may be NULL).
 * Returns how many were removed. */
size_t presence_table_del_node(ptab *t, uint16_t node, void (*fn)(const pmeta *m, void *arg),
                               void *arg);
/* Calls fn for every presence (the table must not change meanwhile). */
void presence_table_foreach(const ptab *t, void (*fn)(const pmeta *m, void *arg), void *arg);
/* The presence_state payload text (valid until the next change of t);
 * *len gets its length. NULL when out of memory. */
const char *presence_table_state(ptab *t, size_t *len);

/* Encodes {"joins":{..},"leaves":{..}} from joins[0..nj) and
 * leaves[0..nl) (metas of one key grouped under it, in the given order).
 * Returns a malloc'd NUL-terminated text (*len its length) or NULL. */
char *presence_table_diff_encode(const pmeta *joins, size_t nj, const pmeta *leaves, size_t nl,
                        size_t *len);

#endif
