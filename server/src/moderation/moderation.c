/* moderation.c — registration of the moderation domain (moderation.h). */
#include "moderation/moderation.h"

/* Registers the block and report routes. */
void moderation_routes(void)
{
    blocks_rest_routes();
    reports_rest_routes();
}
