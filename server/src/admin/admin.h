/* admin.h — the admin listener's routes (api.md §4; docs/operations.md):
 * /metrics, /admin/stats, user disconnect / ban / unban, reports, broadcast,
 * and the dashboard page at /admin/. */
#ifndef SB_ADMIN_H
#define SB_ADMIN_H

/* The event pushed on every user: channel by POST /admin/broadcast. */
#define ADMIN_BROADCAST_EVENT "broadcast"

/* Registers the admin routes with router_add_admin (once, before the
 * reactors start) and the process metrics. */
void admin_routes(void);

#endif
