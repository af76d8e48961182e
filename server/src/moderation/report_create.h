/* report_create.h — making a report (POST /api/v1/reports, reports_rest.c);
 * the admin side is reports.h. */
#ifndef SB_REPORT_CREATE_H
#define SB_REPORT_CREATE_H

#include "moderation/reports.h"

/* A report by `reporter` of message_id (one the reporter can see; its
 * snapshot is stored) and/or user_id (either may be NULL, not both; both
 * validated ids). reason 1..64 characters, note NULL or up to 2000.
 * Answers {"report": Report}, or not_found (no such message or user). */
void report_create(struct db_pool *db, const char *reporter, const char *message_id,
                   const char *user_id, const char *reason, const char *note,
                   report_done_fn done, void *arg);

#endif
