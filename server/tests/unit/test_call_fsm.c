/* test_call_fsm.c — the call state machine (calls/call_fsm.c), no I/O:
 * every legal transition of a 1:1 call and of a group call with its next
 * state, actor state, end reason and actions; every illegal one refused
 * (ended calls, participants who left, wrong roles, timers out of their
 * state); and, over the whole product state x actor x event, the
 * invariants the store relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include "calls/call_fsm.h"

#define D CALL_DIALING
#define R CALL_RINGING
#define CI CALL_CONNECTING
#define CO CALL_CONNECTED
#define E CALL_ENDED
#define PN CALL_P_NONE
#define PI CALL_P_INVITED
#define PR CALL_P_RINGING
#define PJ CALL_P_JOINED
#define PC CALL_P_CONNECTED
#define PL CALL_P_LEFT

typedef struct row {
    int state, actor, caller, same, n_active, n_pending, group, ev;
    int verdict, next, next_actor, reason;
} row;

/* 1:1 call: caller A (joined), callee B (invited/ringing until accept). */
static const row ONE_TO_ONE[] = {
    /* ringing from a callee device */
    {D, PI, 0, 0, 1, 1, 0, CALL_EV_RINGING, CALL_APPLY, R, PR, 0},
    {R, PR, 0, 0, 1, 1, 0, CALL_EV_RINGING, CALL_NOOP, R, PN, 0},
    {R, PI, 0, 0, 1, 1, 0, CALL_EV_RINGING, CALL_APPLY, R, PR, 0},
    {R, PJ, 1, 1, 1, 1, 0, CALL_EV_RINGING, CALL_ILLEGAL, R, PN, 0},
    {CI, PJ, 0, 1, 2, 0, 0, CALL_EV_RINGING, CALL_ILLEGAL, CI, PN, 0},
    /* accept */
    {D, PI, 0, 0, 1, 1, 0, CALL_EV_ACCEPT, CALL_APPLY, CI, PJ, 0},
    {R, PR, 0, 0, 1, 1, 0, CALL_EV_ACCEPT, CALL_APPLY, CI, PJ, 0},
    {R, PJ, 1, 1, 1, 1, 0, CALL_EV_ACCEPT, CALL_ILLEGAL, R, PN, 0},
    {CI, PJ, 0, 0, 2, 0, 0, CALL_EV_ACCEPT, CALL_ELSEWHERE, CI, PN, 0},
    {CI, PJ, 0, 1, 2, 0, 0, CALL_EV_ACCEPT, CALL_NOOP, CI, PN, 0},
    {CO, PC, 0, 0, 2, 0, 0, CALL_EV_ACCEPT, CALL_ELSEWHERE, CO, PN, 0},
    /* decline */
    {D, PI, 0, 0, 1, 1, 0, CALL_EV_DECLINE, CALL_APPLY, E, CALL_P_DECLINED, CALL_R_DECLINED},
    {R, PR, 0, 0, 1, 1, 0, CALL_EV_DECLINE, CALL_APPLY, E, CALL_P_DECLINED, CALL_R_DECLINED},
    {R, PJ, 1, 1, 1, 1, 0, CALL_EV_DECLINE, CALL_ILLEGAL, R, PN, 0},
    {CI, PJ, 0, 1, 2, 0, 0, CALL_EV_DECLINE, CALL_ILLEGAL, CI, PN, 0},
    /* connected */
    {CI, PJ, 1, 1, 2, 0, 0, CALL_EV_CONNECTED, CALL_APPLY, CO, PC, 0},
    {CI, PJ, 0, 1, 2, 0, 0, CALL_EV_CONNECTED, CALL_APPLY, CO, PC, 0},
    {CO, PJ, 0, 1, 2, 0, 0, CALL_EV_CONNECTED, CALL_APPLY, CO, PC, 0},
    {CO, PC, 1, 1, 2, 0, 0, CALL_EV_CONNECTED, CALL_NOOP, CO, PN, 0},
    {D, PJ, 1, 1, 1, 1, 0, CALL_EV_CONNECTED, CALL_ILLEGAL, D, PN, 0},
    {R, PR, 0, 0, 1, 1, 0, CALL_EV_CONNECTED, CALL_ILLEGAL, R, PN, 0},
    /* hangup */
    {D, PJ, 1, 1, 1, 1, 0, CALL_EV_HANGUP, CALL_APPLY, E, PL, CALL_R_HANGUP},
    {R, PJ, 1, 1, 1, 1, 0, CALL_EV_HANGUP, CALL_APPLY, E, PL, CALL_R_HANGUP},
    {R, PR, 0, 0, 1, 1, 0, CALL_EV_HANGUP, CALL_APPLY, E, CALL_P_DECLINED, CALL_R_DECLINED},
    {CI, PJ, 0, 1, 2, 0, 0, CALL_EV_HANGUP, CALL_APPLY, E, PL, CALL_R_HANGUP},
    {CO, PC, 1, 1, 2, 0, 0, CALL_EV_HANGUP, CALL_APPLY, E, PL, CALL_R_HANGUP},
    /* signal: relay only */
    {R, PJ, 1, 1, 1, 1, 0, CALL_EV_SIGNAL, CALL_NOOP, R, PN, 0},
    {CO, PC, 0, 1, 2, 0, 0, CALL_EV_SIGNAL, CALL_NOOP, CO, PN, 0},
    {R, PR, 0, 0, 1, 1, 0, CALL_EV_SIGNAL, CALL_ILLEGAL, R, PN, 0},
    /* timers */
    {D, PN, 0, 0, 1, 1, 0, CALL_EV_RING_TIMEOUT, CALL_APPLY, E, PN, CALL_R_MISSED},
    {R, PN, 0, 0, 1, 1, 0, CALL_EV_RING_TIMEOUT, CALL_APPLY, E, PN, CALL_R_MISSED},
    {CI, PN, 0, 0, 2, 0, 0, CALL_EV_RING_TIMEOUT, CALL_ILLEGAL, CI, PN, 0},
    {CI, PN, 0, 0, 2, 0, 0, CALL_EV_CONNECT_TIMEOUT, CALL_APPLY, E, PN, CALL_R_FAILED},
    {CO, PN, 0, 0, 2, 0, 0, CALL_EV_CONNECT_TIMEOUT, CALL_ILLEGAL, CO, PN, 0},
    {R, PN, 0, 0, 1, 1, 0, CALL_EV_CONNECT_TIMEOUT, CALL_ILLEGAL, R, PN, 0},
    {CO, PC, 0, 0, 2, 0, 0, CALL_EV_GRACE_TIMEOUT, CALL_APPLY, E, PL, CALL_R_CONNECTION_LOST},
    {CI, PJ, 1, 0, 2, 0, 0, CALL_EV_GRACE_TIMEOUT, CALL_APPLY, E, PL, CALL_R_CONNECTION_LOST},
    {R, PJ, 1, 0, 1, 1, 0, CALL_EV_GRACE_TIMEOUT, CALL_APPLY, E, PL, CALL_R_CONNECTION_LOST},
    {R, PR, 0, 0, 1, 1, 0, CALL_EV_GRACE_TIMEOUT, CALL_ILLEGAL, R, PN, 0},
    {D, PN, 0, 0, 1, 1, 0, CALL_EV_BUSY, CALL_APPLY, E, PN, CALL_R_BUSY},
    {R, PN, 0, 0, 1, 1, 0, CALL_EV_BUSY, CALL_ILLEGAL, R, PN, 0},
    /* a participant who left can do nothing */
    {CO, PL, 0, 1, 2, 0, 1, CALL_EV_HANGUP, CALL_ILLEGAL, CO, PN, 0},
    {CO, CALL_P_DECLINED, 0, 0, 2, 0, 1, CALL_EV_ACCEPT, CALL_ILLEGAL, CO, PN, 0},
    {R, CALL_P_MISSED, 0, 0, 1, 1, 1, CALL_EV_RINGING, CALL_ILLEGAL, R, PN, 0},
};

/* Group call of 4: caller + 3 invitees. */
static const row GROUP[] = {
    /* one declines, others still ring: the call goes on */
    {R, PR, 0, 0, 1, 3, 1, CALL_EV_DECLINE, CALL_APPLY, R, CALL_P_DECLINED, 0},
    /* the last pending declines and nobody answered: declined */
    {R, PR, 0, 0, 1, 1, 1, CALL_EV_DECLINE, CALL_APPLY, E, CALL_P_DECLINED, CALL_R_DECLINED},
    /* someone answered; the last pending declines: the call goes on */
    {CO, PR, 0, 0, 2, 1, 1, CALL_EV_DECLINE, CALL_APPLY, CO, CALL_P_DECLINED, 0},
    /* late join while connected */
    {CO, PR, 0, 0, 2, 2, 1, CALL_EV_ACCEPT, CALL_APPLY, CO, PJ, 0},
    {CI, PI, 0, 0, 2, 2, 1, CALL_EV_ACCEPT, CALL_APPLY, CI, PJ, 0},
    /* three talking, one leaves: two remain */
    {CO, PC, 0, 1, 3, 0, 1, CALL_EV_HANGUP, CALL_APPLY, CO, PL, 0},
    /* two talking, one leaves: ended */
    {CO, PC, 0, 1, 2, 1, 1, CALL_EV_HANGUP, CALL_APPLY, E, PL, CALL_R_HANGUP},
    /* while ringing, the caller hangs up: ended */
    {R, PJ, 1, 1, 1, 3, 1, CALL_EV_HANGUP, CALL_APPLY, E, PL, CALL_R_HANGUP},
    /* three talking, one gone past grace: two remain */
    {CO, PC, 0, 0, 3, 0, 1, CALL_EV_GRACE_TIMEOUT, CALL_APPLY, CO, PL, 0},
    {CO, PC, 0, 0, 2, 0, 1, CALL_EV_GRACE_TIMEOUT, CALL_APPLY, E, PL, CALL_R_CONNECTION_LOST},
};

static void check_rows(const row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const row *r = &rows[i];
        call_fsm_in in = {.state = (call_state)r->state, .group = r->group,
                          .actor = (call_pstate)r->actor, .actor_is_caller = r->caller,
                          .same_session = r->same, .n_active = r->n_active,
                          .n_pending = r->n_pending, .ev = (call_event)r->ev};
        call_fsm_out o;
        call_fsm_step(&in, &o);
        if ((int)o.verdict != r->verdict || (int)o.state != r->next ||
            (r->verdict == CALL_APPLY && (int)o.actor != r->next_actor) ||
            (r->next == E && r->verdict == CALL_APPLY && (int)o.reason != r->reason)) {
            print_error("row %zu: %s in %s by %s: verdict %d state %s actor %s reason %s\n", i,
                        call_fsm_event_name(r->ev), call_fsm_state_name(r->state),
                        call_fsm_pstate_name(r->actor), o.verdict, call_fsm_state_name(o.state),
                        call_fsm_pstate_name(o.actor), call_fsm_reason_name(o.reason) ?: "-");
            fail();
        }
        if (o.verdict == CALL_ILLEGAL) {
            assert_string_equal(o.error, "conflict");
            assert_non_null(o.message);
        }
    }
}

static void test_one_to_one(void **st)
{
    (void)st;
    check_rows(ONE_TO_ONE, sizeof ONE_TO_ONE / sizeof ONE_TO_ONE[0]);
}

static void test_group(void **st)
{
    (void)st;
    check_rows(GROUP, sizeof GROUP / sizeof GROUP[0]);
}

/* Actions of the main transitions. */
static void test_actions(void **st)
{
    (void)st;
    call_fsm_out o;
    call_fsm_in accept = {.state = R, .actor = PR, .n_active = 1, .n_pending = 1, .ev = CALL_EV_ACCEPT};
    call_fsm_step(&accept, &o);
    assert_true(o.answered);
    assert_true(o.push_answer);
    assert_int_equal(o.due, CALL_DUE_CONNECT);
    call_fsm_in conn = {.state = CI, .actor = PJ, .n_active = 2, .ev = CALL_EV_CONNECTED};
    call_fsm_step(&conn, &o);
    assert_true(o.connected);
    assert_int_equal(o.due, CALL_DUE_NONE);
    call_fsm_in ring = {.state = R, .n_active = 1, .n_pending = 1, .ev = CALL_EV_RING_TIMEOUT};
    call_fsm_step(&ring, &o);
    assert_true(o.push_end);
    assert_int_equal(o.end_pending, CALL_P_MISSED);
    assert_int_equal(o.end_active, CALL_P_LEFT);
    call_fsm_in busy = {.state = D, .n_active = 1, .n_pending = 1, .ev = CALL_EV_BUSY};
    call_fsm_step(&busy, &o);
    assert_int_equal(o.end_pending, CALL_P_BUSY);
}

/* Over every state x actor state x event x role: ended calls refuse
 * everything; non-applied verdicts leave the state as it was; every end
 * has a reason and the end push; a verdict is always one of the four. */
static void test_exhaustive(void **st)
{
    (void)st;
    int applied = 0, illegal = 0;
    for (int s = 0; s < CALL_STATE_N; s++)
        for (int a = 0; a < CALL_PSTATE_N; a++)
            for (int e = 0; e < CALL_EVENT_N; e++)
                for (int c = 0; c < 2; c++)
                    for (int g = 0; g < 2; g++) {
                        call_fsm_in in = {.state = (call_state)s, .actor = (call_pstate)a,
                                          .actor_is_caller = c, .group = g, .n_active = 2,
                                          .n_pending = 1, .ev = (call_event)e};
                        call_fsm_out o;
                        call_fsm_step(&in, &o);
                        assert_true(o.verdict <= CALL_ELSEWHERE);
                        if (s == E) assert_int_equal(o.verdict, CALL_ILLEGAL);
                        if (o.verdict != CALL_APPLY) assert_int_equal(o.state, s);
                        if (o.verdict == CALL_APPLY && o.state == E) {
                            assert_true(o.reason != CALL_R_NONE);
                            assert_true(o.push_end);
                            assert_int_equal(o.due, CALL_DUE_NONE);
                        }
                        if (o.verdict == CALL_APPLY && o.state != E)
                            assert_true((int)o.state >= s); /* never backwards */
                        bool final_actor = a == CALL_P_DECLINED || a == CALL_P_MISSED ||
                                           a == CALL_P_BUSY || a == CALL_P_LEFT || a == PN;
                        bool actor_event = e <= CALL_EV_SIGNAL || e == CALL_EV_GRACE_TIMEOUT;
                        if (final_actor && actor_event) assert_int_equal(o.verdict, CALL_ILLEGAL);
                        applied += o.verdict == CALL_APPLY;
                        illegal += o.verdict == CALL_ILLEGAL;
                    }
    assert_true(applied > 0 && illegal > 0);
}

static void test_names(void **st)
{
    (void)st;
    for (int s = 0; s < CALL_STATE_N; s++)
        assert_int_equal(call_fsm_state_parse(call_fsm_state_name((call_state)s)), s);
    for (int p = 1; p < CALL_PSTATE_N; p++)
        assert_int_equal(call_fsm_pstate_parse(call_fsm_pstate_name((call_pstate)p)), p);
    assert_int_equal(call_fsm_event_parse("accept"), CALL_EV_ACCEPT);
    assert_int_equal(call_fsm_event_parse("signal"), CALL_EV_SIGNAL);
    assert_int_equal(call_fsm_event_parse("ring_timeout"), -1); /* server-only events */
    assert_int_equal(call_fsm_event_parse("busy"), -1);
    assert_int_equal(call_fsm_event_parse(NULL), -1);
    assert_int_equal(call_fsm_state_parse("ending"), -1);
    assert_string_equal(call_fsm_reason_name(CALL_R_ANSWERED_ELSEWHERE), "answered_elsewhere");
    assert_null(call_fsm_reason_name(CALL_R_NONE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_to_one), cmocka_unit_test(test_group),
        cmocka_unit_test(test_actions),    cmocka_unit_test(test_exhaustive),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
