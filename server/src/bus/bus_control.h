/* bus_control.h — control events: node-wide notices (a session revoked, a
 * user's sockets to close) that modules above the bus act on. A publication
 * runs this node's listeners at once, on the publishing thread, then goes to
 * every other node over the bus (bus.h), where the same listeners run on
 * that node's bus reactor. The publisher never names who listens: the
 * socket layer closes sockets, the HTTP layer refuses a revoked session's
 * tokens, each through a listener registered at start (main.c). */
#ifndef SB_BUS_CONTROL_H
#define SB_BUS_CONTROL_H

#include <jansson.h>

typedef enum bus_ctl_kind {
    BUS_CTL_SESSION_REVOKED = 0, /* a session ended (logout, refresh-token reuse) */
    BUS_CTL_USER_DISCONNECT,     /* close every socket of a user (ban, admin) */
    BUS_CTL_BROADCAST,           /* an admin broadcast: id is its payload (JSON object text) */
    BUS_CTL_KINDS
} bus_ctl_kind;

typedef struct bus_ctl {
    bus_ctl_kind kind;
    const char *id;  /* session id (SESSION_REVOKED), user id, or a BROADCAST's JSON payload */
    int code;        /* WebSocket close code for the sockets (1008: policy) */
} bus_ctl;

/* A listener: ev and its strings are valid during the call only. Runs on
 * the publisher's thread (local event) or the bus reactor (another node's);
 * must be thread-safe and must not block. */
typedef void (*bus_control_fn)(const bus_ctl *ev, void *arg);

/* Adds a listener for kind (before the reactors start). Listeners of a kind
 * run in registration order. Returns 0, or -1 when the table is full. */
int bus_control_listen(bus_ctl_kind kind, bus_control_fn fn, void *arg);
/* Runs this node's listeners of ev->kind, then sends ev to every other
 * node. Thread-safe. Nothing happens for a NULL or empty id. */
void bus_control_publish(const bus_ctl *ev);
/* The bus received event `event` (payload: a JSON object) from another
 * node: runs the listeners of the control event it carries. Returns 1 if it
 * was one, 0 if `event` is not a control event of this file. */
int bus_control_receive(const char *event, json_t *payload);

#endif
