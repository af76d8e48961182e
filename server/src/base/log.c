/* log.c — JSON-lines logging (see log.h). One write(2) per line, so lines
 * from different reactor threads never interleave. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/util.h"

static int g_level = LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) g_level = i;
}

int log_enabled(int level) { return level >= g_level; }

void log_msg(int level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    json_t *o = log_enabled(level) ? json_object() : NULL;
    char ts[32];
    if (o) {
        util_format_rfc3339_ms(util_now_unix_ms(), ts, sizeof ts);
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "level", json_string(names[level]));
        json_object_set_new(o, "msg", json_string(msg));
    }
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        json_t *v = va_arg(ap, json_t *);
        if (o && v) json_object_set_new(o, k, v);
        else json_decref(v);
    }
    va_end(ap);
    if (!o) return;
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line) return;
    size_t n = strlen(line);
    line[n] = '\n';
    ssize_t w = write(2, line, n + 1);
    (void)w;
    free(line);
}
