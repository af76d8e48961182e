/* call_view.h — the callee's per-device view of its call events on
 * user:<id> (the sync_view.h slot). The call:updated events of a callee who
 * answered carry "answered_on" (the answering device's session id,
 * migrations/100_calls_fast.sql): that device gets the event without the
 * key; every other device of the callee gets the call ended for it, state
 * "ended", end_reason "answered_elsewhere" (api.md: answered_elsewhere is
 * sent to the callee's other devices). Live pushes, the channel's catch-up
 * and GET /sync all show this view. */
#ifndef SB_CALL_VIEW_H
#define SB_CALL_VIEW_H

#include <stddef.h>

/* A sync_view_fn: the view of a call event for session_id, or NULL when it
 * is shown as it is (not a call event, no "answered_on"). */
char *call_view_event(const char *type, const char *payload, size_t len, const char *session_id,
                      size_t *out_len);

#endif
