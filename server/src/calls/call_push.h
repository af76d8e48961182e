/* call_push.h — the push hook of calls (issue 13, point 12): every call
 * invitation, answer and end is handed to a push interface with the
 * callee's user id, so a killed app can ring and stop ringing. A slot the
 * push domain (or main.c) fills; NULL: a no-op. */
#ifndef SB_CALL_PUSH_H
#define SB_CALL_PUSH_H

#include <jansson.h>

typedef enum call_push_kind {
    CALL_PUSH_INVITE = 0, /* a call rings this user: {type:"call", call_id, caller, media} */
    CALL_PUSH_ANSWER,     /* this user answered (on one device): the others stop ringing */
    CALL_PUSH_END,        /* the call ended: {type:"call_cancel", call_id, reason} */
} call_push_kind;

/* The hook: kind, the callee's user id, the Call object (borrowed). Runs on
 * the reactor thread that made the transition; must not block. */
typedef void (*call_push_fn)(call_push_kind kind, const char *user_id, const json_t *call);

/* The slot (set once at start, before the reactors run). */
extern call_push_fn g_call_push_hook;

/* Calls the hook for every participant of `call` but its caller (INVITE:
 * those invited; ANSWER: `user_id` only). No-op when the slot is NULL. */
void call_push_notify(call_push_kind kind, const json_t *call, const char *user_id);

#endif
