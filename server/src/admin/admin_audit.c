/* admin_audit.c — see admin_audit.h. */
#include "admin/admin_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

int admin_audit(const char *who, const char *ip, const char *what, const char *target, bool ok,
                json_t *extra)
{
    char ts[32];
    util_format_rfc3339_ms(util_now_unix_ms(), ts, sizeof ts);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:b}", "ts", ts, "who", who ? who : "admin", "ip",
                          ip ? ip : "", "what", what, "target", target ? json_string(target) : json_null(),
                          "ok", ok);
    if (!o) {
        json_decref(extra);
        return -1;
    }
    if (extra) json_object_update(o, extra);
    json_decref(extra);
    int rc = 0;
    if (!g_config.admin_audit_log[0]) {
        /* the log stream: one event carrying the same fields */
        log_msg(LOG_INFO, "admin_audit", "audit", o, NULL);
        return 0;
    }
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!line) return -1;
    size_t n = strlen(line);
    char *buf = malloc(n + 2);
    if (!buf) {
        free(line);
        return -1;
    }
    memcpy(buf, line, n);
    buf[n] = '\n';
    free(line);
    pthread_mutex_lock(&g_mu);
    int fd = open(g_config.admin_audit_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, buf, n + 1) != (ssize_t)(n + 1)) {
        log_msg(LOG_ERROR, "admin_audit_write_failed", "path", json_string(g_config.admin_audit_log),
                "error", json_string(strerror(errno)), NULL);
        rc = -1;
    }
    if (fd >= 0) close(fd);
    pthread_mutex_unlock(&g_mu);
    free(buf);
    return rc;
}
