/* reports.h — user reports (api.md "Safety"; migrations/080_moderation.sql,
 * table `reports`): the core API the admin edge calls to list and resolve
 * them. Core: knows neither HTTP nor Phoenix; implemented in
 * moderation/report.c (exported names carry the prefix report_).
 *
 * A Report, as both functions answer it:
 *   {"id", "reporter_id", "target_user_id"|null, "message_id"|null, "reason",
 *    "note"|null, "snapshot"|null, "state": "open"|"actioned"|"dismissed",
 *    "created_at", "resolved_at"|null, "resolved_by"|null,
 *    "resolution_note"|null}
 * snapshot (a message report): {"message_id", "conversation_id", "sender_id",
 * "kind", "body", "media_id", "inserted_at", "edited_at", "deleted"} as the
 * message was when reported; ids are decimal strings, times RFC 3339. */
#ifndef SB_REPORTS_H
#define SB_REPORTS_H

#include <jansson.h>

struct db_pool;

#define REPORT_LIMIT_DEFAULT 50
#define REPORT_LIMIT_MAX 200

/* The answer of an operation, on the calling reactor's thread: body (stolen)
 * on success, else code (an api.md error code: validation_failed,
 * not_found, conflict, unavailable) and a human message. */
typedef void (*report_done_fn)(void *arg, json_t *body, const char *code, const char *message);

/* GET /admin/reports?state=&cursor=&limit=: reports in `state` ("open",
 * "actioned", "dismissed"; NULL = every state), oldest first, `limit` per
 * page (1..REPORT_LIMIT_MAX; 0 = REPORT_LIMIT_DEFAULT), after `cursor` (the
 * opaque next_cursor of the previous page, or NULL). Answers
 * {"items":[Report...], "next_cursor": string|null}; a bad state or cursor
 * is validation_failed. */
void report_list(struct db_pool *db, const char *state, const char *cursor, int limit,
                 report_done_fn done, void *arg);

/* POST /admin/reports/:id {state, note}: moves an open report to `state`
 * ("actioned" | "dismissed"), recording note (may be NULL), `admin` (who
 * acted, free text, e.g. "admin") and the time. Answers {"report": Report};
 * not_found for an unknown id, conflict when it is no longer open (nothing
 * changed), validation_failed for another state or a note over 2000
 * characters. */
void report_resolve(struct db_pool *db, const char *id, const char *state, const char *note,
                    const char *admin, report_done_fn done, void *arg);

#endif
