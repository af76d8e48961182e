/* sync_view.h — the per-device view of durable events (a hook slot).
 *
 * An event of a user's stream goes to every device of that user alike;
 * a higher layer may want one device to see it differently (calls: the
 * callee's devices other than the one that answered see the call ended,
 * answered_elsewhere). It fills this slot once at start (main.c, before
 * the reactors run); every edge that hands out events of user:<id> (the
 * live push, the channel's catch-up, GET /sync) asks it per event and per
 * requesting session. */
#ifndef SB_SYNC_VIEW_H
#define SB_SYNC_VIEW_H

#include <stdbool.h>
#include <stddef.h>

/* The view of the event (type, payload text: a JSON object, possibly with
 * its "cursor") for the device of session_id: malloc'd text (length in
 * *out_len) when it differs, NULL when the event is shown as it is. Called
 * on any reactor thread: must be thread-safe. */
typedef char *(*sync_view_fn)(const char *type, const char *payload, size_t len,
                              const char *session_id, size_t *out_len);

/* Fills the slot (NULL: every event as it is): fn is asked about the
 * events whose type starts with type_prefix and whose payload text holds
 * `marker` only (both kept, not copied). Not thread-safe: once, at start. */
void sync_view_set(const char *type_prefix, const char *marker, sync_view_fn fn);

/* True when the slot may show an event of this type differently (a cheap
 * test before building the event's text). */
bool sync_view_wants(const char *type);

/* The slot's view of an event for session_id, or NULL (as it is, or no
 * view registered). */
char *sync_view_apply(const char *type, const char *payload, size_t len, const char *session_id,
                      size_t *out_len);

/* A GET /sync body ({"events": [{"type", ...payload, "cursor"}], ...})
 * with each event as session_id's device sees it: malloc'd text (length in
 * *out_len) when one differs, else NULL (the body holds no marker: no
 * parsing). */
char *sync_view_page(const char *body, size_t len, const char *session_id, size_t *out_len);

#endif
