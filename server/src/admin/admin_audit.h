/* admin_audit.h — the audit log of admin actions (docs/operations.md): one
 * JSON line per action, {"ts", "who", "ip", "what", "target", "ok", ...},
 * appended to SB_ADMIN_AUDIT_LOG, or, when that is empty, written to the log
 * stream as the event "admin_audit". Core. */
#ifndef SB_ADMIN_AUDIT_H
#define SB_ADMIN_AUDIT_H

#include <jansson.h>
#include <stdbool.h>

/* Records one admin action: who (the actor: "admin", the holder of the admin
 * token), ip (the client address), what (the action: "ban", "unban",
 * "disconnect", "broadcast", "report_resolve"), target (its object's id, or
 * NULL), ok (whether it was done) and extra fields (stolen, may be NULL).
 * Thread-safe; a line is written whole (O_APPEND, one write). Returns 0, or
 * -1 when the audit file could not be written (logged). */
int admin_audit(const char *who, const char *ip, const char *what, const char *target, bool ok,
                json_t *extra);

#endif
