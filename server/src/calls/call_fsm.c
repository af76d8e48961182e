/* call_fsm.c — the call state machine (call_fsm.h): pure, no I/O. */
#include "calls/call_fsm.h"

#include <string.h>

static const char *const STATE_NAMES[CALL_STATE_N] = {"dialing", "ringing", "connecting",
                                                      "connected", "ended"};
static const char *const PSTATE_NAMES[CALL_PSTATE_N] = {
    "none", "invited", "ringing", "joined", "connected", "declined", "missed", "busy", "left"};
static const char *const REASON_NAMES[] = {NULL,     "hangup", "declined",
                                           "missed", "busy",   "failed",
                                           "connection_lost", "answered_elsewhere"};
static const char *const EVENT_NAMES[CALL_EVENT_N] = {
    "ringing", "accept", "decline", "connected", "hangup", "signal",
    "ring_timeout", "connect_timeout", "grace_timeout", "busy"};

const char *call_fsm_state_name(call_state s)
{
    return (unsigned)s < CALL_STATE_N ? STATE_NAMES[s] : "?";
}

const char *call_fsm_pstate_name(call_pstate s)
{
    return (unsigned)s < CALL_PSTATE_N ? PSTATE_NAMES[s] : "?";
}

const char *call_fsm_reason_name(call_reason r)
{
    return (unsigned)r <= CALL_R_ANSWERED_ELSEWHERE ? REASON_NAMES[r] : NULL;
}

const char *call_fsm_event_name(call_event e)
{
    return (unsigned)e < CALL_EVENT_N ? EVENT_NAMES[e] : "?";
}

int call_fsm_state_parse(const char *s)
{
    for (int i = 0; s && i < CALL_STATE_N; i++)
        if (!strcmp(s, STATE_NAMES[i])) return i;
    return -1;
}

int call_fsm_pstate_parse(const char *s)
{
    for (int i = 1; s && i < CALL_PSTATE_N; i++)
        if (!strcmp(s, PSTATE_NAMES[i])) return i;
    return -1;
}

int call_fsm_event_parse(const char *s)
{
    for (int i = 0; s && i <= CALL_EV_SIGNAL; i++)
        if (!strcmp(s, EVENT_NAMES[i])) return i;
    return -1;
}

static bool pending(call_pstate p) { return p == CALL_P_INVITED || p == CALL_P_RINGING; }
static bool active(call_pstate p) { return p == CALL_P_JOINED || p == CALL_P_CONNECTED; }
static bool answered(call_state s) { return s == CALL_CONNECTING || s == CALL_CONNECTED; }

static void illegal(call_fsm_out *o, const char *msg)
{
    o->verdict = CALL_ILLEGAL;
    o->error = "conflict";
    o->message = msg;
}

/* The call ends with `r`: invitees still pending become end_pending. */
static void end(call_fsm_out *o, call_reason r, call_pstate end_pending)
{
    o->state = CALL_ENDED;
    o->reason = r;
    o->due = CALL_DUE_NONE;
    o->end_pending = end_pending;
    o->end_active = CALL_P_LEFT;
    o->push_end = true;
}

/* An active participant goes (hangup, or gone past the grace period): the
 * call ends when nobody would be left to talk to. */
static void leave(const call_fsm_in *in, call_fsm_out *o, call_reason r)
{
    o->actor = CALL_P_LEFT;
    int remaining = in->n_active - 1;
    if (remaining <= 0 || (remaining == 1 && (in->n_pending == 0 || answered(in->state))))
        end(o, r, CALL_P_MISSED);
}

/* A pending invitee says no (decline, or hangup before answering): the call
 * ends declined when no other invitee is still pending and nobody answered. */
static void refuse(const call_fsm_in *in, call_fsm_out *o)
{
    o->actor = CALL_P_DECLINED;
    if (in->n_pending - 1 <= 0 && in->n_active <= 1) end(o, CALL_R_DECLINED, CALL_P_MISSED);
}

void call_fsm_step(const call_fsm_in *in, call_fsm_out *o)
{
    memset(o, 0, sizeof *o);
    o->verdict = CALL_APPLY;
    o->state = in->state;
    o->actor = CALL_P_NONE;
    if ((unsigned)in->state >= CALL_STATE_N || (unsigned)in->ev >= CALL_EVENT_N) {
        illegal(o, "unknown state or event");
        return;
    }
    if (in->state == CALL_ENDED) {
        illegal(o, "the call has ended");
        return;
    }
    bool timer = in->ev == CALL_EV_RING_TIMEOUT || in->ev == CALL_EV_CONNECT_TIMEOUT ||
                 in->ev == CALL_EV_BUSY;
    if (!timer && !pending(in->actor) && !active(in->actor)) {
        illegal(o, "you are no longer in this call");
        return;
    }
    switch (in->ev) {
    case CALL_EV_RINGING:
        if (in->actor == CALL_P_RINGING) {
            o->verdict = CALL_NOOP;
        } else if (in->actor == CALL_P_INVITED) {
            o->actor = CALL_P_RINGING;
            if (in->state == CALL_DIALING) o->state = CALL_RINGING;
        } else {
            illegal(o, in->actor_is_caller ? "the caller does not ring"
                                           : "the call is already answered");
        }
        return;
    case CALL_EV_ACCEPT:
        if (pending(in->actor)) {
            o->actor = CALL_P_JOINED;
            o->push_answer = true;
            if (!answered(in->state)) {
                o->state = CALL_CONNECTING;
                o->answered = true;
                o->due = CALL_DUE_CONNECT;
            }
        } else if (in->actor_is_caller) {
            illegal(o, "the caller cannot accept its own call");
        } else if (in->same_session) {
            o->verdict = CALL_NOOP;
        } else {
            o->verdict = CALL_ELSEWHERE;
            o->error = "conflict";
            o->message = "the call was answered on another device";
        }
        return;
    case CALL_EV_DECLINE:
        if (pending(in->actor)) refuse(in, o);
        else illegal(o, in->actor_is_caller ? "the caller cannot decline; hang up instead"
                                            : "the call is already answered; hang up instead");
        return;
    case CALL_EV_CONNECTED:
        if (!active(in->actor)) {
            illegal(o, "accept the call first");
        } else if (!answered(in->state)) {
            illegal(o, "the call is not answered yet");
        } else if (in->actor == CALL_P_CONNECTED) {
            o->verdict = CALL_NOOP;
        } else {
            o->actor = CALL_P_CONNECTED;
            if (in->state == CALL_CONNECTING) {
                o->state = CALL_CONNECTED;
                o->connected = true;
                o->due = CALL_DUE_NONE;
            }
        }
        return;
    case CALL_EV_HANGUP:
        if (pending(in->actor)) refuse(in, o);
        else leave(in, o, CALL_R_HANGUP);
        return;
    case CALL_EV_SIGNAL:
        if (active(in->actor)) o->verdict = CALL_NOOP;
        else illegal(o, "accept the call first");
        return;
    case CALL_EV_RING_TIMEOUT:
        if (answered(in->state)) illegal(o, "the call was answered");
        else end(o, CALL_R_MISSED, CALL_P_MISSED);
        return;
    case CALL_EV_CONNECT_TIMEOUT:
        if (in->state != CALL_CONNECTING) illegal(o, "the call is not connecting");
        else end(o, CALL_R_FAILED, CALL_P_MISSED);
        return;
    case CALL_EV_GRACE_TIMEOUT:
        if (!active(in->actor)) illegal(o, "the participant is not in the call");
        else leave(in, o, CALL_R_CONNECTION_LOST);
        return;
    case CALL_EV_BUSY:
        if (in->state != CALL_DIALING) illegal(o, "only a new call can be busy");
        else end(o, CALL_R_BUSY, CALL_P_BUSY);
        return;
    default:
        illegal(o, "unknown event");
    }
}
