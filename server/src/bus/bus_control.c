/* bus_control.c — control events (see bus_control.h). On the wire, between
 * nodes, both kinds travel as the control message "disconnect" with
 * {"by": "session" | "user", "id": ..., "code": ...}; a broadcast as
 * "broadcast" with {"payload": {...}}. */
#include "bus/bus_control.h"

#include <stdlib.h>
#include <string.h>
#include "base/token.h"
#include "bus/bus.h"

#define LISTENERS_MAX 8

typedef struct listener {
    bus_control_fn fn;
    void *arg;
} listener;

static listener g_listeners[BUS_CTL_KINDS][LISTENERS_MAX];
static int g_nlisteners[BUS_CTL_KINDS];

int bus_control_listen(bus_ctl_kind kind, bus_control_fn fn, void *arg)
{
    if ((unsigned)kind >= BUS_CTL_KINDS || !fn || g_nlisteners[kind] == LISTENERS_MAX) return -1;
    g_listeners[kind][g_nlisteners[kind]++] = (listener){fn, arg};
    return 0;
}

/* Runs this node's listeners of ev->kind, in registration order. */
static void run_listeners(const bus_ctl *ev)
{
    for (int i = 0; i < g_nlisteners[ev->kind]; i++)
        g_listeners[ev->kind][i].fn(ev, g_listeners[ev->kind][i].arg);
}

void bus_control_publish(const bus_ctl *ev)
{
    if ((unsigned)ev->kind >= BUS_CTL_KINDS || !ev->id || !ev->id[0]) return;
    run_listeners(ev);
    if (ev->kind == BUS_CTL_BROADCAST) {
        json_t *p = json_loads(ev->id, 0, NULL);
        json_t *j = json_is_object(p) ? json_pack("{s:O}", "payload", p) : NULL;
        json_decref(p);
        char *pj = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (pj) bus_publish_control("broadcast", pj);
        free(pj);
        return;
    }
    if (strlen(ev->id) > TOKEN_MAX_ID) return; /* not an id of ours: no node has it */
    const char *by = ev->kind == BUS_CTL_SESSION_REVOKED ? "session" : "user";
    json_t *j = json_pack("{s:s,s:s,s:i}", "by", by, "id", ev->id, "code", ev->code);
    char *pj = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (pj) bus_publish_control("disconnect", pj);
    free(pj);
}

int bus_control_receive(const char *event, json_t *payload)
{
    if (strcmp(event, "broadcast") == 0) {
        json_t *p = json_object_get(payload, "payload");
        char *pj = json_is_object(p) ? json_dumps(p, JSON_COMPACT) : NULL;
        if (pj) run_listeners(&(bus_ctl){BUS_CTL_BROADCAST, pj, 0});
        free(pj);
        return 1;
    }
    if (strcmp(event, "disconnect") != 0) return 0;
    const char *id = json_string_value(json_object_get(payload, "id"));
    const char *by = json_string_value(json_object_get(payload, "by"));
    json_int_t code = json_integer_value(json_object_get(payload, "code"));
    if (code < 1000 || code > 4999 || code == 1005 || code == 1006) code = 1008;
    if (id && by) {
        bus_ctl ev = {!strcmp(by, "session") ? BUS_CTL_SESSION_REVOKED : BUS_CTL_USER_DISCONNECT,
                      id, (int)code};
        run_listeners(&ev);
    }
    return 1;
}
