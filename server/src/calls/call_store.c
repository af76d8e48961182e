/* call_store.c — calls in Postgres, driven by the state machine
 * (call_store.h). Each event: sb_call_load (state, version, the actor's
 * state, counts), call_fsm_step, then sb_call_apply, whose one conditional
 * UPDATE (WHERE id AND version) decides a race; the loser reloads and the
 * machine decides again on what won (a second accept becomes
 * answered_elsewhere, a timer on an ended call nothing). */
#include "calls/call_store.h"
#include "calls/call_push.h"
#include "sync/tailer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "base/log.h"
#include "base/token.h"
#include "bus/pubsub.h"
#include "net/reactor.h"
#include "store/db.h"
#include "base/metrics.h"
#include "base/util.h"
#include <time.h>

#define MAX_TRIES 16

/* ------------------------------------------------------------------------ */
/* Results                                                                   */
/* ------------------------------------------------------------------------ */

/* Maps a failed query to an answer: unavailable for connection trouble
 * (also serialization failures and deadlocks: nothing was done), else
 * internal (logged). */
static void fail_db(call_done_fn done, void *arg, const PGresult *res, const char *err)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (st && strncmp(st, "08", 2) && strncmp(st, "53", 2) && strncmp(st, "57", 2) &&
        strcmp(st, "40001") && strcmp(st, "40P01")) {
        log_msg(LOG_ERROR, "call db error", "sqlstate", json_string(st), "error",
                json_string(err ? err : ""), NULL);
        done(arg, NULL, "internal", "internal error", 0);
        return;
    }
    done(arg, NULL, "unavailable", "the database is unavailable; nothing was done", 0);
}

/* The one jsonb column of a result as an object, or NULL (SQL NULL). */
static json_t *result_json(const PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) return NULL;
    json_t *j = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The `details` of the sb_* error being answered, for the duration of the
 * done callback (NULL otherwise). */
static _Thread_local json_t *g_err_details;

json_t *call_store_err_details(void) { return g_err_details; }

/* Answers an sb_* {"error","message","details"} result; returns true when it
 * was one (and r was consumed). The details are readable in the callback
 * through call_store_err_details(). */
static bool answer_error(json_t *r, call_done_fn done, void *arg)
{
    const char *code = json_string_value(json_object_get(r, "error"));
    if (!code) return false;
    const char *msg = json_string_value(json_object_get(r, "message"));
    char c[32], m[256];
    snprintf(c, sizeof c, "%s", code);
    snprintf(m, sizeof m, "%s", msg ? msg : code);
    json_t *d = json_object_get(r, "details");
    g_err_details = json_is_object(d) && json_object_size(d) ? d : NULL;
    done(arg, NULL, c, m, 0);
    g_err_details = NULL;
    json_decref(r);
    return true;
}

/* ------------------------------------------------------------------------ */
/* After a transition                                                        */
/* ------------------------------------------------------------------------ */

static void topic_of(const json_t *call, char *out, size_t n)
{
    const char *id = json_string_value(json_object_get(call, "id"));
    snprintf(out, n, CALL_TOPIC_PREFIX "%s", id ? id : "0");
}

/* Broadcasts `state {call}` on call:<id>. */
static void broadcast_state(json_t *call)
{
    char topic[48];
    topic_of(call, topic, sizeof topic);
    json_t *b = json_pack("{s:O}", "call", call);
    pubsub_broadcast(topic, "state", b, NULL);
    json_decref(b);
}

/* The accepting user's other devices joined to call:<id> get the call as
 * ended for them (ch_call.c turns this into their `state`). */
static void broadcast_elsewhere(json_t *call, const char *user, const char *session)
{
    char topic[48];
    topic_of(call, topic, sizeof topic);
    json_t *view = json_deep_copy(call);
    json_object_set_new(view, "state", json_string("ended"));
    json_object_set_new(view, "end_reason", json_string("answered_elsewhere"));
    json_t *b = json_pack("{s:s,s:s,s:o}", "user_id", user, "session_id", session ? session : "",
                          "call", view);
    pubsub_broadcast(topic, CALL_ELSEWHERE_EVENT, b, NULL);
    json_decref(b);
}

/* ------------------------------------------------------------------------ */
/* One event                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct ev_op {
    struct db_pool *db;
    char call_id[24];
    char user[24];                     /* "" for a timer */
    char session[TOKEN_MAX_ID + 1];
    call_event ev;
    int tries;
    call_fsm_out out;
    call_state from; /* the call's state the transition was decided on */
    call_done_fn done;
    void *arg;
} ev_op;

/* metrics: calls ended by reason, and setup time (created -> connected) */
#define NREASONS (CALL_R_ANSWERED_ELSEWHERE + 1)
static metrics_id m_ended[NREASONS];
static metrics_hist m_setup;
static const int64_t k_setup_bounds[] = {250, 500, 1000, 2000, 3000, 5000, 10000, 20000, 30000, 60000};
__attribute__((constructor)) static void call_store_metrics(void)
{
    for (int r = 1; r < NREASONS; r++) {
        char l[64];
        snprintf(l, sizeof l, "reason=\"%s\"", call_fsm_reason_name((call_reason)r));
        m_ended[r] = metrics_counter("sb_calls_ended_total", "Calls ended, by end reason.", l);
    }
    metrics_histogram(&m_setup, "sb_call_setup_seconds", "Time from a call's creation to its first connected state.",
                      NULL, k_setup_bounds, (int)(sizeof k_setup_bounds / sizeof k_setup_bounds[0]), 1e3);
}

/* ms since the epoch of an sb_ts text (YYYY-MM-DDTHH:MM:SS.mmmZ), or -1. */
static int64_t ts_ms(const char *t)
{
    struct tm tm = {0};
    int ms = 0;
    if (!t || sscanf(t, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                     &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void load(ev_op *o);
static void decide_on(ev_op *o, const json_t *call, bool fresh);

static void op_finish(ev_op *o, json_t *body, const char *code, const char *message)
{
    call_done_fn done = o->done;
    void *arg = o->arg;
    free(o);
    done(arg, body, code, message, 0);
}

static void applied(const PGresult *res, const char *err, void *arg)
{
    ev_op *o = arg;
    if (!res || err) {
        const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (st && (!strcmp(st, "40P01") || !strcmp(st, "40001")) && ++o->tries < MAX_TRIES) {
            load(o); /* a deadlock with a timer tick: decide again */
            return;
        }
        call_done_fn done = o->done;
        void *a = o->arg;
        free(o);
        fail_db(done, a, res, err);
        return;
    }
    json_t *r = result_json(res);
    if (!r) {
        op_finish(o, NULL, "not_found", "no such call");
        return;
    }
    if (json_is_true(json_object_get(r, "stale"))) {
        /* another writer won this version (or the snapshot was behind):
         * decide again on the call as the write found it */
        if (++o->tries < MAX_TRIES) {
            decide_on(o, json_object_get(r, "call"), true);
            json_decref(r);
            return;
        }
        json_decref(r);
        op_finish(o, NULL, "unavailable", "the call is changing too fast; try again");
        return;
    }
    if (json_object_get(r, "error")) {
        call_done_fn done = o->done;
        void *a = o->arg;
        free(o);
        answer_error(r, done, a);
        return;
    }
    json_t *call = json_object_get(r, "call");
    if (o->out.state == CALL_ENDED && o->from != CALL_ENDED && o->out.reason > 0 && o->out.reason < NREASONS)
        metrics_inc(m_ended[o->out.reason]);
    if (o->out.connected) {
        int64_t c0 = ts_ms(json_string_value(json_object_get(call, "created_at")));
        if (c0 > 0) metrics_observe(&m_setup, util_now_unix_ms() - c0);
    }
    tailer_kick(); /* the participants' call:updated events committed */
    broadcast_state(call);
    if (o->out.push_answer && o->user[0]) {
        broadcast_elsewhere(call, o->user, o->session);
        call_push_notify(CALL_PUSH_ANSWER, call, o->user);
    }
    if (o->out.push_end) call_push_notify(CALL_PUSH_END, call, NULL);
    log_msg(LOG_DEBUG, "call_transition", "call_id", json_string(o->call_id), "event",
            json_string(call_fsm_event_name(o->ev)), "state",
            json_string(call_fsm_state_name(o->out.state)), NULL);
    json_t *body = json_pack("{s:O}", "call", call);
    json_decref(r);
    op_finish(o, body, NULL, NULL);
}

static const char *due_name(call_due d)
{
    return d == CALL_DUE_NONE ? "none" : d == CALL_DUE_CONNECT ? "connect" : "keep";
}

/* The machine's input from a Call object (api.md) for `user`: state, kind,
 * the actor's state and role, the active and pending counts. False when it
 * is not a Call or user is not one of its participants. */
static bool in_from_call(const json_t *call, const char *user, call_fsm_in *in)
{
    memset(in, 0, sizeof *in);
    int st = call_fsm_state_parse(json_string_value(json_object_get(call, "state")));
    json_t *ps = json_object_get(call, "participants");
    if (st < 0 || !json_is_array(ps) || !user[0]) return false;
    in->state = (call_state)st;
    in->group = !strcmp(json_string_value(json_object_get(call, "kind")) ?: "", "group");
    in->actor = CALL_P_NONE;
    const char *caller = json_string_value(json_object_get(call, "caller_id"));
    in->actor_is_caller = caller && !strcmp(caller, user);
    bool found = false;
    size_t i;
    json_t *p;
    json_array_foreach(ps, i, p) {
        int pst = call_fsm_pstate_parse(json_string_value(json_object_get(p, "state")));
        if (pst < 0) return false;
        if (pst == CALL_P_JOINED || pst == CALL_P_CONNECTED) in->n_active++;
        if (pst == CALL_P_INVITED || pst == CALL_P_RINGING) in->n_pending++;
        const char *u = json_string_value(json_object_get(p, "user_id"));
        if (u && !strcmp(u, user)) {
            in->actor = (call_pstate)pst;
            found = true;
        }
    }
    return found;
}

/* Sends the conditional write of the transition decided in o->out, on
 * version_n. */
static void apply(ev_op *o, long long version_n)
{
    const call_fsm_out *out = &o->out;
    char version[24], connect_ms[24];
    snprintf(version, sizeof version, "%lld", version_n);
    snprintf(connect_ms, sizeof connect_ms, "%llu", (unsigned long long)g_config.call_connect_ms);
    const char *p[14] = {
        o->call_id,
        version,
        o->user[0] ? o->user : NULL,
        o->session[0] ? o->session : NULL,
        call_fsm_state_name(out->state),
        out->actor != CALL_P_NONE ? call_fsm_pstate_name(out->actor) : NULL,
        out->state == CALL_ENDED ? call_fsm_reason_name(out->reason) : NULL,
        due_name(out->due),
        connect_ms,
        out->answered ? "t" : "f",
        out->connected ? "t" : "f",
        out->pending_missed ? "t" : "f",
        out->end_pending != CALL_P_NONE ? call_fsm_pstate_name(out->end_pending) : "missed",
        out->end_active != CALL_P_NONE ? call_fsm_pstate_name(out->end_active) : "left",
    };
    db_query(o->db,
             "SELECT sb_call_apply($1::int8, $2::int8, $3::int8, $4, $5, $6, $7, $8, $9::int, "
             "$10::bool, $11::bool, $12::bool, $13, $14)::text",
             14, p, applied, o);
}


static void loaded(const PGresult *res, const char *err, void *arg)
{
    ev_op *o = arg;
    if (!res || err) {
        call_done_fn done = o->done;
        void *a = o->arg;
        free(o);
        fail_db(done, a, res, err);
        return;
    }
    json_t *r = result_json(res);
    if (!r) {
        op_finish(o, NULL, "not_found", "no such call");
        return;
    }
    json_t *actor = json_object_get(r, "actor");
    if (o->user[0] && !json_is_object(actor)) {
        json_decref(r);
        op_finish(o, NULL, "not_found", "no such call");
        return;
    }
    call_fsm_in in = {0};
    int st = call_fsm_state_parse(json_string_value(json_object_get(r, "state")));
    in.state = st < 0 ? CALL_ENDED : (call_state)st;
    in.group = !strcmp(json_string_value(json_object_get(r, "kind")) ?: "", "group");
    in.actor = CALL_P_NONE;
    if (json_is_object(actor)) {
        int ps = call_fsm_pstate_parse(json_string_value(json_object_get(actor, "state")));
        in.actor = ps < 0 ? CALL_P_NONE : (call_pstate)ps;
        in.actor_is_caller = json_is_true(json_object_get(actor, "is_caller"));
        const char *sess = json_string_value(json_object_get(actor, "session_id"));
        in.same_session = sess && o->session[0] && !strcmp(sess, o->session);
    }
    in.n_active = (int)json_integer_value(json_object_get(r, "n_active"));
    in.n_pending = (int)json_integer_value(json_object_get(r, "n_pending"));
    in.ev = o->ev;
    o->from = in.state;
    call_fsm_step(&in, &o->out);
    const call_fsm_out *out = &o->out;
    if (out->verdict == CALL_NOOP) {
        json_t *body = json_pack("{s:O}", "call", json_object_get(r, "call"));
        json_decref(r);
        op_finish(o, body, NULL, NULL);
        return;
    }
    if (out->verdict != CALL_APPLY) {
        json_decref(r);
        op_finish(o, NULL, out->error ? out->error : "conflict",
                  out->message ? out->message : "not allowed now");
        return;
    }
    long long version = (long long)json_integer_value(json_object_get(r, "version"));
    json_decref(r);
    apply(o, version);
}

static void load(ev_op *o)
{
    const char *p[2] = {o->call_id, o->user[0] ? o->user : NULL};
    db_query(o->db, "SELECT sb_call_load($1::int8, $2::int8)::text", 2, p, loaded, o);
}

/* Decides o on a Call snapshot (with its "version"): a transition is
 * written on that version at once. fresh: the snapshot was read after the
 * last commit (a lost race's answer), so a refusal decided on it is the
 * answer; otherwise (the node's own snapshot may be behind) and for the
 * verdicts that need the device (no-op, answered elsewhere), or without a
 * usable snapshot, the event is decided on a load. */
static void decide_on(ev_op *o, const json_t *call, bool fresh)
{
    json_t *kv = json_object_get(call, "version");
    call_fsm_in in;
    if (o->user[0] && json_is_integer(kv) && in_from_call(call, o->user, &in)) {
        in.ev = o->ev;
        call_fsm_step(&in, &o->out);
        if (o->out.verdict == CALL_APPLY) {
            apply(o, (long long)json_integer_value(kv));
            return;
        }
        if (fresh && o->out.verdict == CALL_ILLEGAL) {
            op_finish(o, NULL, o->out.error ? o->out.error : "conflict",
                      o->out.message ? o->out.message : "not allowed now");
            return;
        }
    }
    load(o);
}

void call_store_event(struct db_pool *db, const char *call_id, const char *user,
                      const char *session, call_event ev, const json_t *known, call_done_fn done,
                      void *arg)
{
    if (!db) {
        done(arg, NULL, "unavailable", "no database is configured", 0);
        return;
    }
    ev_op *o = calloc(1, sizeof *o);
    if (!o) {
        done(arg, NULL, "internal", "out of memory", 0);
        return;
    }
    o->db = db;
    snprintf(o->call_id, sizeof o->call_id, "%s", call_id);
    snprintf(o->user, sizeof o->user, "%s", user ? user : "");
    snprintf(o->session, sizeof o->session, "%s", session ? session : "");
    o->ev = ev;
    o->done = done;
    o->arg = arg;
    /* a transition decided on the caller's snapshot is written on its
     * version at once: the condition lets it win only if nothing changed
     * since (then the snapshot was the stored state); anything else (no
     * snapshot, a refusal, a no-op, a lost version) is decided on a load */
    decide_on(o, known, false);
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct create_op {
    struct db_pool *db;
    char user[24];
    char session[TOKEN_MAX_ID + 1];
    call_done_fn done;
    void *arg;
} create_op;

/* Glare: the accept of the earlier call answers this POST (201). */
static void glare_done(void *arg, json_t *body, const char *code, const char *message,
                       int created)
{
    (void)created;
    create_op *c = arg;
    call_done_fn done = c->done;
    void *a = c->arg;
    free(c);
    done(a, body, code, message, body ? 1 : 0);
}

static void created_cb(const PGresult *res, const char *err, void *arg)
{
    create_op *c = arg;
    call_done_fn done = c->done;
    void *a = c->arg;
    if (!res || err) {
        free(c);
        fail_db(done, a, res, err);
        return;
    }
    json_t *r = result_json(res);
    if (!r) {
        free(c);
        done(a, NULL, "internal", "bad result", 0);
        return;
    }
    if (json_object_get(r, "error")) {
        free(c);
        answer_error(r, done, a);
        return;
    }
    const char *glare = json_string_value(json_object_get(r, "glare"));
    if (glare) {
        char id[24];
        snprintf(id, sizeof id, "%s", glare);
        json_decref(r);
        call_store_event(c->db, id, c->user, c->session, CALL_EV_ACCEPT, NULL, glare_done, c);
        return;
    }
    free(c);
    bool created = json_is_true(json_object_get(r, "created"));
    json_t *call = json_object_get(r, "call");
    if (created) {
        tailer_kick();
        if (!json_is_true(json_object_get(r, "busy"))) call_push_notify(CALL_PUSH_INVITE, call, NULL);
    }
    json_t *body = json_pack("{s:O}", "call", call);
    json_decref(r);
    done(a, body, NULL, NULL, created ? 1 : 0);
}

void call_store_create(struct db_pool *db, const char *user, const char *session,
                       const char *other, const char *conv, const char *media, call_done_fn done,
                       void *arg)
{
    create_op *c = db ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        done(arg, NULL, "unavailable", "no database is configured", 0);
        return;
    }
    c->db = db;
    snprintf(c->user, sizeof c->user, "%s", user);
    snprintf(c->session, sizeof c->session, "%s", session ? session : "");
    c->done = done;
    c->arg = arg;
    char ring[24], max[8];
    snprintf(ring, sizeof ring, "%llu", (unsigned long long)g_config.call_ring_ms);
    snprintf(max, sizeof max, "%d", CALL_MAX_PARTICIPANTS);
    const char *p[7] = {user, c->session, other, conv, media, ring, max};
    db_query(db, "SELECT sb_call_create($1::int8, $2, $3::int8, $4::int8, $5, $6::int, $7::int)::text",
             7, p, created_cb, c);
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct read_op {
    call_done_fn done;
    void *arg;
} read_op;

static void read_cb(const PGresult *res, const char *err, void *arg)
{
    read_op *q = arg;
    call_done_fn done = q->done;
    void *a = q->arg;
    free(q);
    if (!res || err) {
        fail_db(done, a, res, err);
        return;
    }
    json_t *r = result_json(res);
    if (!r) {
        done(a, NULL, "not_found", "no such call", 0);
        return;
    }
    done(a, r, NULL, NULL, 0);
}

static void read_query(struct db_pool *db, const char *sql, int n, const char *const *p,
                       call_done_fn done, void *arg)
{
    read_op *q = db ? calloc(1, sizeof *q) : NULL;
    if (!q) {
        done(arg, NULL, "unavailable", "no database is configured", 0);
        return;
    }
    q->done = done;
    q->arg = arg;
    db_query(db, sql, n, p, read_cb, q);
}

void call_store_load(struct db_pool *db, const char *call_id, const char *user,
                     call_done_fn done, void *arg)
{
    const char *p[2] = {call_id, user};
    read_query(db, "SELECT sb_call_load($1::int8, $2::int8)::text", 2, p, done, arg);
}

void call_store_active(struct db_pool *db, const char *user, call_done_fn done, void *arg)
{
    const char *p[1] = {user};
    read_query(db, "SELECT sb_call_active($1::int8)::text", 1, p, done, arg);
}

void call_store_history(struct db_pool *db, const char *user, const char *before, int limit,
                        call_done_fn done, void *arg)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[3] = {user, before, lim};
    read_query(db, "SELECT sb_call_history($1::int8, $2::int8, $3::int)::text", 3, p, done, arg);
}

/* ------------------------------------------------------------------------ */
/* Fire-and-forget writes                                                    */
/* ------------------------------------------------------------------------ */

static void ignore_cb(const PGresult *res, const char *err, void *arg)
{
    (void)res;
    if (err) log_msg(LOG_WARN, "call write failed", "what", json_string(arg), "error",
                     json_string(err), NULL);
}

void call_store_presence(struct db_pool *db, const char *call_id, const char *user, int delta)
{
    if (!db) return;
    const char *p[4] = {call_id, user, g_config.node_id, delta > 0 ? "1" : "-1"};
    db_query(db, "SELECT sb_call_presence($1::int8, $2::int8, $3, $4::int)", 4, p, ignore_cb,
             (void *)"presence");
}

void call_store_offer(struct db_pool *db, const char *call_id, const char *from, const char *to,
                      const char *type, const char *data_json)
{
    if (!db) return;
    const char *p[5] = {call_id, from, to, type, data_json};
    db_query(db, "SELECT sb_call_offer($1::int8, $2::int8, $3::int8, $4, $5::jsonb)", 5, p,
             ignore_cb, (void *)"offer");
}

/* ------------------------------------------------------------------------ */
/* Timers: owned by no node                                                  */
/* ------------------------------------------------------------------------ */

static uv_timer_t g_tick_timer;
static bool g_tick_busy;

static void timer_done(void *arg, json_t *body, const char *code, const char *message,
                       int created)
{
    (void)arg;
    (void)created;
    if (body) {
        json_t *c = json_object_get(body, "call");
        log_msg(LOG_INFO, "call_timer_ended", "call_id", json_incref(json_object_get(c, "id")),
                "state", json_incref(json_object_get(c, "state")), "end_reason",
                json_incref(json_object_get(c, "end_reason")), NULL);
        json_decref(body);
    } else if (code && strcmp(code, "conflict") != 0) {
        /* conflict: another node or the participants got there first */
        log_msg(LOG_WARN, "call_timer_failed", "code", json_string(code), "message",
                json_string(message ? message : ""), NULL);
    }
}

static void tick_cb(const PGresult *res, const char *err, void *arg)
{
    (void)arg;
    g_tick_busy = false;
    if (!res || err) return; /* next tick retries */
    json_t *items = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    size_t i;
    json_t *it;
    db_pool *db = db_of(&reactor_all[0]);
    json_array_foreach(items, i, it) {
        const char *id = json_string_value(json_object_get(it, "call_id"));
        const char *ev = json_string_value(json_object_get(it, "event"));
        const char *uid = json_string_value(json_object_get(it, "user_id"));
        if (!id || !ev) continue;
        call_event e = !strcmp(ev, "connect_timeout") ? CALL_EV_CONNECT_TIMEOUT
                       : !strcmp(ev, "grace_timeout") ? CALL_EV_GRACE_TIMEOUT
                                                      : CALL_EV_RING_TIMEOUT;
        call_store_event(db, id, uid, NULL, e, NULL, timer_done, NULL);
    }
    json_decref(items);
}

static void on_tick(uv_timer_t *h)
{
    (void)h;
    db_pool *db = db_of(&reactor_all[0]);
    if (!db || g_tick_busy) return;
    g_tick_busy = true;
    char grace[24], stale[24];
    uint64_t st = g_config.call_tick_ms * 4;
    if (st < 2000) st = 2000;
    snprintf(grace, sizeof grace, "%llu", (unsigned long long)g_config.call_grace_ms);
    snprintf(stale, sizeof stale, "%llu", (unsigned long long)st);
    const char *p[3] = {g_config.node_id, grace, stale};
    db_query(db, "SELECT sb_call_tick($1, $2::int, $3::int)::text", 3, p, tick_cb, NULL);
}

static void timers_start_here(void *arg)
{
    (void)arg;
    reactor *r = reactor_self();
    if (!r) return;
    uint64_t ms = g_config.call_tick_ms ? g_config.call_tick_ms : 250;
    uv_timer_init(&r->loop, &g_tick_timer);
    uv_timer_start(&g_tick_timer, on_tick, ms, ms);
}

void call_store_timers_start(void)
{
    if (!g_config.database_url[0] || reactor_count < 1) return;
    reactor_post(&reactor_all[0], timers_start_here, NULL);
}
