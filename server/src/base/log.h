/* log.h — structured logs: one JSON object per line on stderr, with a level.
 * log_msg(LOG_INFO, "listening", "port", json_integer(4000), NULL): the
 * variadic tail is key / json_t* pairs (values are stolen), ending in NULL. */
#ifndef SB_LOG_H
#define SB_LOG_H

#include <jansson.h>

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the minimum level from a name ("debug", "info", "warn", "error"). */
void log_set_level(const char *name);
/* True if messages at `level` are written. */
int log_enabled(int level);
/* Writes one line {"ts","level","msg",...pairs} if level is enabled. */
void log_msg(int level, const char *msg, ...);

#endif
