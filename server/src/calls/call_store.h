/* call_store.h — calls persisted in Postgres (migrations/060_calls.sql):
 * creation, one event decided by the state machine (call_fsm.h) and written
 * with one conditional UPDATE (retried after a lost race, when the machine
 * decides again on the new state), presence on call:<id>, offers, the active
 * call and history. Core: knows neither HTTP nor Phoenix. After every
 * transition it wakes the event tailer (the durable call:incoming /
 * call:updated of the participants' user:<id> topics), broadcasts
 * `state {call}` on call:<id> and calls the push hook. */
#ifndef SB_CALL_STORE_H
#define SB_CALL_STORE_H

#include <jansson.h>
#include "calls/call_fsm.h"

struct db_pool;

#define CALL_MAX_PARTICIPANTS 8
#define CALL_TOPIC_PREFIX "call:"
/* Internal broadcast on call:<id> after a winning accept: {"user_id",
 * "session_id", "call"}: the user's other devices get `state` with the call
 * ended for them (answered_elsewhere). */
#define CALL_ELSEWHERE_EVENT "call:elsewhere"

/* The answer of an operation: body (stolen) on success, else code (an
 * api.md error code) and message; `created`: a call was created (201). */
typedef void (*call_done_fn)(void *arg, json_t *body, const char *code, const char *message,
                             int created);

/* Inside a call_done_fn answering an error: the error's `details` object
 * (the fields it names, api.md validation_failed), borrowed, or NULL. NULL
 * outside such a callback. */
json_t *call_store_err_details(void);

/* POST /calls: user (with session) calls `other` or conversation `conv`
 * (one of them NULL) with media "audio"|"video". Answers {"call"} (a busy
 * callee: the call already ended busy); glare: the earlier call, accepted. */
void call_store_create(struct db_pool *db, const char *user, const char *session,
                       const char *other, const char *conv, const char *media, call_done_fn done,
                       void *arg);

/* One event on a call by `user` from device `session` (user NULL: a timer;
 * for the grace timer, user is the participant gone). Answers {"call"}.
 * known: the Call object (with its "version") as this node last saw it, or
 * NULL. A transition the machine decides on it is written on that version
 * at once (one round trip instead of load + write); the write's condition
 * lets it through only if nothing changed since, else the event is decided
 * again on a load, as without a snapshot. */
void call_store_event(struct db_pool *db, const char *call_id, const char *user,
                      const char *session, call_event ev, const json_t *known, call_done_fn done,
                      void *arg);

/* Reads the call as sb_call_load does for `user` (answers the loaded object,
 * or not_found when the user is not a participant). */
void call_store_load(struct db_pool *db, const char *call_id, const char *user,
                     call_done_fn done, void *arg);

/* Counts a channel of user on call:<id> on this node (delta 1 / -1); fire
 * and forget. */
void call_store_presence(struct db_pool *db, const char *call_id, const char *user, int delta);

/* Remembers (type "offer") or clears (type "answer", by its sender) the last
 * offer addressed to a user; fire and forget. data_json: the data, as JSON. */
void call_store_offer(struct db_pool *db, const char *call_id, const char *from, const char *to,
                      const char *type, const char *data_json);

/* GET /calls/active for user: {"call"|null, "offer", "ring_remaining_ms"}. */
void call_store_active(struct db_pool *db, const char *user, call_done_fn done, void *arg);

/* GET /calls: {"items"} (limit + 1 rows, newest first, ids below before
 * when not NULL). */
void call_store_history(struct db_pool *db, const char *user, const char *before, int limit,
                        call_done_fn done, void *arg);

/* Starts the call timers on reactor 0 (after the reactors started): every
 * SB_CALL_TICK_MS this node claims due calls (sb_call_tick) and ends each
 * through call_store_event. */
void call_store_timers_start(void);

#endif
