/* media.h — uploaded photos, videos, voice notes and files (docs/api.md
 * "Media"): POST /api/v1/media streams an upload to disk (media_store.h),
 * GET /api/v1/media/:id serves it to those who may read it, with Range,
 * ETag and safe headers (media_rest.c); unreferenced media, and files no
 * media row names (a deleted account's uploads, migrations/125), are swept
 * (media_sweep.c). Who may read what, and the checks on messages and
 * avatars, live in SQL (migrations/105_media.sql). */
#ifndef SB_MEDIA_H
#define SB_MEDIA_H

/* Creates the media folders and registers the routes and the sweep (once,
 * before the reactors start). Returns 0, or -1 (logged). */
int media_routes(void);
/* Registers the periodic orphan sweep (a reactor tick hook). Returns 0 or -1. */
int media_sweep_register(void);

#endif
