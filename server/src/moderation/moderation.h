/* moderation.h — the safety domain (api.md "Safety", docs/moderation.md):
 * blocks between users and user reports. Layer 10, above chat and calls.
 * The block checks themselves live in SQL (migrations/081_blocks_enforce.sql)
 * inside the statements of chat, calls and presence, so those lower domains
 * never call up here. */
#ifndef SB_MODERATION_H
#define SB_MODERATION_H

/* Registers GET|POST /api/v1/blocks, DELETE /api/v1/blocks/:user_id
 * (blocks_rest.c) and POST /api/v1/reports (reports_rest.c); reads the
 * report rate limit from g_config. Call once, before the reactors start. */
void moderation_routes(void);

/* The route registrations of each edge (called by moderation_routes). */
void blocks_rest_routes(void);
void reports_rest_routes(void);

#endif
