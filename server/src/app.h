/* app.h — the composition of the server: what `switchboard serve` registers
 * (routes, channels, the hooks that let lower layers reach higher ones, the
 * per-reactor modules). main.c and the fuzz harnesses' environment
 * (fuzz/fuzz_env.c) both call it, so the fuzzers exercise exactly what the
 * server serves. Like main.c it is a composition root and may include any
 * folder (scripts/layering.py). */
#ifndef SB_APP_H
#define SB_APP_H

/* Registers the transport stack (HTTP first, then WebSocket and Phoenix),
 * the health routes, every domain's routes and channels, the test channels
 * when g_config.test_channels, and the push hooks when push is configured.
 * Call once after config_load, before the reactors start. Returns 0, 1 when
 * a module could not be set up, or 2 for a bad setting (SB_FCM_CREDENTIALS);
 * the failure is logged and printed on stderr. */
int app_register(void);

/* Registers the per-reactor modules (database pool, pub/sub, long-poll,
 * accounts' housekeeping, the Phoenix fan-out, push; in this order: their
 * tick and stop hooks run in it) and this node's listeners of the cluster
 * control events. Call once after app_register, before the reactors start.
 * Returns 0 or -1. */
int app_register_modules(void);

#endif
