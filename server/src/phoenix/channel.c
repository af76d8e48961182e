/* channel.c — the registry of channel handlers by topic prefix. */
#include "phoenix/channel.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HANDLERS 16
static const channel_handler *g_handlers[MAX_HANDLERS];
static int g_nhandlers;

void channel_register(const channel_handler *h)
{
    if (g_nhandlers < MAX_HANDLERS) g_handlers[g_nhandlers++] = h;
}

const channel_handler *channel_find(const char *topic)
{
    for (int i = 0; i < g_nhandlers; i++) {
        size_t n = strlen(g_handlers[i]->prefix);
        if (strncmp(topic, g_handlers[i]->prefix, n) == 0) return g_handlers[i];
    }
    return NULL;
}
