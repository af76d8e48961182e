/* bus_local.c — the single-node bus: there are no other nodes to reach. */
#include "bus/bus.h"

/* Subscriptions: nothing upstream to follow. */
static void local_topic(const char *topic) { (void)topic; }

/* Publications: no other node to reach. */
static void local_publish(const char *topic, int kind, const char *event, const void *payload,
                          size_t len)
{
    (void)topic;
    (void)kind;
    (void)event;
    (void)payload;
    (void)len;
}

/* Control messages: no other node to tell. */
static void local_control(const char *event, const char *payload_json)
{
    (void)event;
    (void)payload_json;
}

/* /readyz: Redis is not configured. */
static const char *local_status(void) { return "not_configured"; }

const bus_ops bus_local_ops = {
    .topic_added = local_topic,
    .topic_removed = local_topic,
    .publish = local_publish,
    .control = local_control,
    .status = local_status,
};

const bus_ops *g_bus = &bus_local_ops;
