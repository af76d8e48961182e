/* bus.h — the node-to-node bus. A node delivers to its own subscribers
 * first and publishes once per event for the other nodes. With no Redis
 * configured (the single-node default) the bus is in-process: publishing
 * reaches no other node because there is none, and these calls do nothing. */
#ifndef SB_BUS_H
#define SB_BUS_H

#include <stddef.h>

/* A reactor gained its first local subscriber of topic (subscribe upstream). */
void bus_topic_added(const char *topic);
/* A reactor lost its last local subscriber of topic. */
void bus_topic_removed(const char *topic);
/* Publishes a text broadcast for the other nodes. */
void bus_publish_text(const char *topic, const char *event, const char *payload_json, size_t len);

#endif
