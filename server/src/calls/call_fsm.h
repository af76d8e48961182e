/* call_fsm.h — the call state machine of api.md (`call:<call_id>`) as one
 * pure function: (call state, the actor's participant state, counts, event)
 * -> next call state, next actor state, end reason and actions. No I/O: the
 * store (call_store.c) persists what it decides with one conditional write,
 * and docs/calls.md shows it as a table.
 *
 * Call states: dialing -> ringing -> connecting -> connected -> ended (the
 * `ending` of api.md is the single write that ends a call; it is never
 * stored). Participant states: invited (not yet answered), ringing (a device
 * acknowledged), joined (the caller from the start; an invitee after accept),
 * connected, and the final declined, missed, busy, left. */
#ifndef SB_CALL_FSM_H
#define SB_CALL_FSM_H

#include <stdbool.h>

typedef enum call_state {
    CALL_DIALING = 0, CALL_RINGING, CALL_CONNECTING, CALL_CONNECTED, CALL_ENDED,
    CALL_STATE_N
} call_state;

typedef enum call_pstate {
    CALL_P_NONE = 0, /* no actor (timer events) */
    CALL_P_INVITED, CALL_P_RINGING, CALL_P_JOINED, CALL_P_CONNECTED,
    CALL_P_DECLINED, CALL_P_MISSED, CALL_P_BUSY, CALL_P_LEFT,
    CALL_PSTATE_N
} call_pstate;

typedef enum call_event {
    CALL_EV_RINGING = 0, /* an invitee's device received the invitation */
    CALL_EV_ACCEPT,
    CALL_EV_DECLINE,
    CALL_EV_CONNECTED,   /* a joined participant's media is up */
    CALL_EV_HANGUP,
    CALL_EV_SIGNAL,      /* relay only: allowed or not, changes nothing */
    CALL_EV_RING_TIMEOUT,    /* SB_CALL_RING_MS passed while dialing/ringing */
    CALL_EV_CONNECT_TIMEOUT, /* SB_CALL_CONNECT_MS passed while connecting */
    CALL_EV_GRACE_TIMEOUT,   /* the actor's sockets gone for SB_CALL_GRACE_MS */
    CALL_EV_BUSY,            /* at creation: the callee is in another call */
    CALL_EVENT_N
} call_event;

typedef enum call_reason {
    CALL_R_NONE = 0, CALL_R_HANGUP, CALL_R_DECLINED, CALL_R_MISSED, CALL_R_BUSY,
    CALL_R_FAILED, CALL_R_CONNECTION_LOST, CALL_R_ANSWERED_ELSEWHERE
} call_reason;

/* Timer of the call after the transition. */
typedef enum call_due {
    CALL_DUE_KEEP = 0, /* unchanged */
    CALL_DUE_NONE,     /* no call timer */
    CALL_DUE_CONNECT,  /* now + SB_CALL_CONNECT_MS */
} call_due;

/* Outcome kinds. */
typedef enum call_verdict {
    CALL_APPLY = 0,   /* a transition: persist `out` */
    CALL_NOOP,        /* legal and already so (a repeated ringing, connected): answer ok */
    CALL_ILLEGAL,     /* not allowed in this state: error reply, nothing changed */
    CALL_ELSEWHERE,   /* accept lost: another device of this user answered */
} call_verdict;

typedef struct call_fsm_in {
    call_state state;
    bool group;          /* a group call (mesh): per-participant rules */
    call_pstate actor;   /* the acting participant's state (CALL_P_NONE for timers) */
    bool actor_is_caller;
    bool same_session;   /* the actor's device is the one that joined (accept retried) */
    int n_active;        /* participants joined or connected, the actor included */
    int n_pending;       /* participants invited or ringing, the actor included */
    call_event ev;
} call_fsm_in;

typedef struct call_fsm_out {
    call_verdict verdict;
    call_state state;        /* next call state */
    call_pstate actor;       /* next actor state (CALL_P_NONE: unchanged/no actor) */
    call_reason reason;      /* end reason when state == CALL_ENDED */
    call_due due;
    bool answered;           /* set answered_at (first accept) */
    bool connected;          /* set connected_at (first connected) */
    bool pending_missed;     /* every invited/ringing participant becomes missed */
    /* when the call ends: what invited/ringing and joined/connected
     * participants become */
    call_pstate end_pending, end_active;
    bool push_answer, push_end;  /* push hook (call_push.h) */
    const char *error;       /* CALL_ILLEGAL: api.md error code */
    const char *message;     /* CALL_ILLEGAL: a sentence */
} call_fsm_out;

/* Decides one event. Pure and total: every input gives a verdict. */
void call_fsm_step(const call_fsm_in *in, call_fsm_out *out);

/* Names (api.md wire strings) and their parsers (-1 when unknown). */
const char *call_fsm_state_name(call_state s);
const char *call_fsm_pstate_name(call_pstate s);
const char *call_fsm_reason_name(call_reason r);
const char *call_fsm_event_name(call_event e);
int call_fsm_state_parse(const char *s);
int call_fsm_pstate_parse(const char *s);
/* Client event names (ringing, accept, decline, connected, hangup, signal). */
int call_fsm_event_parse(const char *s);

#endif
