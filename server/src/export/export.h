/* export.h — the conversation export (export_rest.c; docs/export.md). */
#ifndef SB_EXPORT_H
#define SB_EXPORT_H

/* Registers GET /api/v1/conversations/:id/export (once, before the
 * reactors start). */
void export_routes(void);

#endif
