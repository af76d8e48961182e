/* bus_local.c — the single-node bus: there are no other nodes to reach. */
#include "bus.h"

void bus_topic_added(const char *topic) { (void)topic; }
void bus_topic_removed(const char *topic) { (void)topic; }
void bus_publish_text(const char *topic, const char *event, const char *payload_json, size_t len)
{
    (void)topic;
    (void)event;
    (void)payload_json;
    (void)len;
}
