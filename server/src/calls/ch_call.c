/* ch_call.c — the call:<call_id> channel (api.md §1): joinable by the
 * call's participants only (anyone else: not_found, as for a call that does
 * not exist), while the call is not ended, from the device that is in the
 * call once the participant joined it. Client pushes ringing, accept,
 * decline, connected, hangup (transitions: call_store_event) and signal
 * (relayed to the named participant only, with `from`, never echoed, data
 * at most 64 KiB and never logged). A join and a leave count the user's
 * channels on this node (call_store_presence): the grace timer of a
 * participant whose channels are all gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "calls/calls.h"
#include "calls/call_store.h"
#include "base/id.h"
#include "base/log.h"
#include "store/db.h"
#include "bus/pubsub.h"
#include "net/reactor.h"
#include "phoenix/channel.h"
#include "phoenix/phx_socket.h"

#define SIGNAL_DATA_MAX 65536

typedef struct call_ch {
    char call_id[24];
    char users[CALL_MAX_PARTICIPANTS][24]; /* the participants */
    int nusers;
    bool counted;   /* presence +1 sent */
    bool active;    /* this user is joined/connected (may signal) */
    bool ended;
    bool elsewhere; /* answered on another device of this user: deaf and mute */
    json_t *known;  /* the newest Call object seen (highest "version"): the
                     * snapshot call_store_event decides on first */
} call_ch;

static json_t *err(const char *reason, const char *message)
{
    return json_pack("{s:s,s:s}", "reason", reason, "message", message);
}

static db_pool *ch_db(phx_channel *ch) { return ch->sock->r ? db_of(ch->sock->r) : NULL; }

/* Reads the participants and this user's state from a Call object, unless
 * it is older than what the channel already knows (broadcasts from two
 * nodes may cross). */
static void learn(call_ch *st, json_t *call, const char *uid)
{
    if (!json_is_object(call)) return;
    json_t *v = json_object_get(call, "version");
    json_t *kv = json_object_get(st->known, "version");
    if (json_is_integer(v) && json_is_integer(kv) && json_integer_value(v) < json_integer_value(kv))
        return;
    json_decref(st->known);
    st->known = json_is_integer(v) ? json_incref(call) : NULL;
    json_t *ps = json_object_get(call, "participants");
    size_t i;
    json_t *p;
    st->nusers = 0;
    json_array_foreach(ps, i, p) {
        const char *u = json_string_value(json_object_get(p, "user_id"));
        const char *s = json_string_value(json_object_get(p, "state"));
        if (!u) continue;
        if (st->nusers < CALL_MAX_PARTICIPANTS)
            snprintf(st->users[st->nusers++], sizeof st->users[0], "%s", u);
        if (!strcmp(u, uid))
            st->active = s && (!strcmp(s, "joined") || !strcmp(s, "connected"));
    }
    const char *cs = json_string_value(json_object_get(call, "state"));
    st->ended = cs && !strcmp(cs, "ended");
}

/* ---- join ---------------------------------------------------------------- */

typedef struct join_ctx {
    phx_channel *ch;
    bool in_join, answered, ok;
    json_t *reply;
    call_ch *st;
} join_ctx;

static void join_finish(join_ctx *j, bool ok, json_t *reply)
{
    if (ok) {
        j->ch->state = j->st;
        j->st->counted = true;
        call_store_presence(ch_db(j->ch), j->st->call_id, j->ch->sock->claims.user_id, 1);
    } else {
        json_decref(j->st->known);
        free(j->st);
    }
    if (j->in_join) {
        j->answered = true;
        j->ok = ok;
        j->reply = reply;
        return;
    }
    phx_join_done(j->ch, ok, reply);
    phx_channel_unref(j->ch);
    free(j);
}

static void join_loaded(void *arg, json_t *body, const char *code, const char *message,
                        int created)
{
    (void)created;
    join_ctx *j = arg;
    if (!body) {
        join_finish(j, false, err(code, message));
        return;
    }
    const char *uid = j->ch->sock->claims.user_id;
    const char *sid = j->ch->sock->claims.session_id;
    json_t *call = json_object_get(body, "call");
    json_t *actor = json_object_get(body, "actor");
    learn(j->st, call, uid);
    json_t *reply;
    if (j->st->ended) {
        reply = json_pack("{s:s,s:s,s:O}", "reason", "conflict", "message", "the call has ended",
                          "call", call);
        json_decref(body);
        join_finish(j, false, reply);
        return;
    }
    const char *psess = json_string_value(json_object_get(actor, "session_id"));
    if (j->st->active && psess && sid && strcmp(psess, sid) != 0) {
        reply = json_pack("{s:s,s:s}", "reason", "conflict", "message",
                          "the call is on another device of yours (answered_elsewhere)");
        json_decref(body);
        join_finish(j, false, reply);
        return;
    }
    reply = json_pack("{s:O}", "call", call);
    json_decref(body);
    join_finish(j, true, reply);
}

static int call_join(phx_channel *ch, json_t *payload, json_t **reply)
{
    (void)payload;
    const char *id = ch->topic + strlen(CALL_TOPIC_PREFIX);
    const char *uid = ch->sock->claims.user_id;
    if (!id_parse(id) || strlen(id) > 20 || !id_parse(uid)) {
        *reply = err("not_found", "no such call");
        return PHX_ERROR;
    }
    db_pool *db = ch_db(ch);
    join_ctx *j = db ? calloc(1, sizeof *j) : NULL;
    call_ch *st = j ? calloc(1, sizeof *st) : NULL;
    if (!st) {
        free(j);
        *reply = err("unavailable", "the database is unavailable");
        return PHX_ERROR;
    }
    snprintf(st->call_id, sizeof st->call_id, "%s", id);
    j->ch = ch;
    j->st = st;
    j->in_join = true;
    call_store_load(db, id, uid, join_loaded, j);
    j->in_join = false;
    if (j->answered) {
        bool ok = j->ok;
        *reply = j->reply;
        free(j);
        return ok ? PHX_OK : PHX_ERROR;
    }
    phx_channel_ref(ch);
    return PHX_ASYNC;
}

/* ---- after the join: the gap between the snapshot and the subscription --- */

/* The join answered the call as loaded, and the channel subscribed to
 * call:<id> only after that: a transition committed in between (the
 * callee's accept while the caller was joining) was broadcast to nobody
 * here. So while the call is still being set up (dialing, ringing,
 * connecting), it is read once more after the subscription, and if it
 * moved past what the channel saw, this channel gets that `state` now;
 * anything later comes by broadcast. */
static void recheck_loaded(void *arg, json_t *body, const char *code, const char *message,
                           int created)
{
    (void)code;
    (void)message;
    (void)created;
    phx_channel *ch = arg;
    call_ch *st = ch->state;
    json_t *call = body ? json_object_get(body, "call") : NULL;
    json_t *v = json_object_get(call, "version");
    json_t *kv = st ? json_object_get(st->known, "version") : NULL;
    if (st && ch->status == CH_JOINED && !st->elsewhere && json_is_integer(v) &&
        (!json_is_integer(kv) || json_integer_value(v) > json_integer_value(kv))) {
        learn(st, call, ch->sock->claims.user_id);
        json_t *b = json_pack("{s:O}", "call", call);
        phx_push(ch, "state", b);
        json_decref(b);
    }
    json_decref(body);
    phx_channel_unref(ch);
}

static void call_after_join(phx_channel *ch)
{
    call_ch *st = ch->state;
    db_pool *db = ch_db(ch);
    const char *cs = st ? json_string_value(json_object_get(st->known, "state")) : NULL;
    if (!db || !cs || !(!strcmp(cs, "dialing") || !strcmp(cs, "ringing") || !strcmp(cs, "connecting")))
        return;
    phx_channel_ref(ch);
    call_store_load(db, st->call_id, ch->sock->claims.user_id, recheck_loaded, ch);
}

/* ---- client events ------------------------------------------------------- */

typedef struct event_ctx {
    phx_deferred *d; /* holds a reference to ch */
    phx_channel *ch;
} event_ctx;

static void event_done(void *arg, json_t *body, const char *code, const char *message,
                       int created)
{
    (void)created;
    event_ctx *e = arg;
    phx_deferred *d = e->d;
    call_ch *st = e->ch->state;
    if (body && st && phx_deferred_alive(d))
        learn(st, json_object_get(body, "call"), e->ch->sock->claims.user_id);
    free(e);
    if (body) phx_deferred_reply(d, "ok", body);
    else phx_deferred_reply(d, "error", err(code, message));
}

/* `signal` {to, type, data}: checked, then relayed as `signal` {to, from,
 * type, data} to `to`'s channels only (handle_out). */
static int handle_signal(phx_channel *ch, call_ch *st, json_t *pl, json_t **reply)
{
    const char *uid = ch->sock->claims.user_id;
    if (!json_is_object(pl)) {
        *reply = err("bad_request", "the payload must be an object {to, type, data}");
        return PHX_ERROR;
    }
    json_t *tov = json_object_get(pl, "to");
    const char *type = json_string_value(json_object_get(pl, "type"));
    json_t *data = json_object_get(pl, "data");
    char to[24];
    json_t *details = json_object();
    int tr = tov ? (json_is_string(tov) && json_string_length(tov) < 21 &&
                    id_parse(json_string_value(tov)) ? 1 : -1) : 0;
    if (tr == 1) snprintf(to, sizeof to, "%s", json_string_value(tov));
    if (tr == 0) json_object_set_new(details, "to", json_string("is required"));
    else if (tr < 0) json_object_set_new(details, "to", json_string("must be a user id"));
    if (!type) json_object_set_new(details, "type", json_string("is required"));
    else if (strcmp(type, "offer") && strcmp(type, "answer") && strcmp(type, "ice") &&
             strcmp(type, "restart"))
        json_object_set_new(details, "type", json_string("must be offer, answer, ice or restart"));
    if (!data || json_is_null(data)) json_object_set_new(details, "data", json_string("is required"));
    if (json_object_size(details)) {
        *reply = json_pack("{s:s,s:s,s:o}", "reason", "validation_failed", "message",
                           "the signal has invalid fields", "details", details);
        return PHX_ERROR;
    }
    json_decref(details);
    char *dtxt = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!dtxt) {
        *reply = err("bad_request", "data cannot be encoded");
        return PHX_ERROR;
    }
    if (strlen(dtxt) > SIGNAL_DATA_MAX) {
        free(dtxt);
        *reply = err("payload_too_large", "signal data is limited to 64 KiB");
        return PHX_ERROR;
    }
    bool known = false;
    for (int i = 0; i < st->nusers; i++)
        if (!strcmp(st->users[i], to)) known = true;
    if (!known || !strcmp(to, uid)) {
        free(dtxt);
        *reply = err("not_found", !strcmp(to, uid) ? "cannot signal yourself"
                                                   : "no such participant in this call");
        return PHX_ERROR;
    }
    if (st->ended) {
        free(dtxt);
        *reply = err("conflict", "the call has ended");
        return PHX_ERROR;
    }
    if (!st->active) {
        free(dtxt);
        *reply = err("conflict", "accept the call first");
        return PHX_ERROR;
    }
    /* "to" first: handle_out recognises the addressee by this prefix */
    json_t *b = json_object();
    json_object_set_new(b, "to", json_string(to));
    json_object_set_new(b, "from", json_string(uid));
    json_object_set_new(b, "type", json_string(type));
    json_object_set(b, "data", data);
    pubsub_broadcast(ch->topic, "signal", b, NULL);
    json_decref(b);
    if (!strcmp(type, "offer") || !strcmp(type, "answer"))
        call_store_offer(ch_db(ch), st->call_id, uid, to, type, dtxt);
    free(dtxt);
    return PHX_OK;
}

static int call_handle_in(phx_channel *ch, phx_msg *m, json_t **reply)
{
    call_ch *st = ch->state;
    if (!st) {
        *reply = err("unavailable", "the channel is not ready");
        return PHX_ERROR;
    }
    if (st->elsewhere) {
        *reply = err("conflict", "the call was answered on another device");
        return PHX_ERROR;
    }
    int ev = call_fsm_event_parse(m->event);
    if (ev < 0) {
        *reply = err("bad_request", "unknown event");
        return PHX_ERROR;
    }
    if (ev == CALL_EV_SIGNAL) return handle_signal(ch, st, m->payload, reply);
    if (m->payload && !json_is_object(m->payload)) {
        *reply = err("bad_request", "the payload must be an object");
        return PHX_ERROR;
    }
    event_ctx *e = calloc(1, sizeof *e);
    phx_deferred *d = e ? phx_defer(ch, m) : NULL;
    if (!d) {
        free(e);
        *reply = err("internal", "out of memory");
        return PHX_ERROR;
    }
    e->d = d;
    e->ch = ch;
    call_store_event(ch_db(ch), st->call_id, ch->sock->claims.user_id, ch->sock->claims.session_id,
                     (call_event)ev, st->known, event_done, e);
    return PHX_ASYNC;
}

/* ---- outbound ------------------------------------------------------------ */

/* True if payload starts with {"<key>":"<val>" (how signal and the
 * elsewhere event are built). */
static bool starts_with(const char *payload, const char *key, const char *val)
{
    char pre[64];
    int n = snprintf(pre, sizeof pre, "{\"%s\":\"%s\"", key, val);
    return payload && n > 0 && (size_t)n < sizeof pre && !strncmp(payload, pre, (size_t)n);
}

static bool call_handle_out(phx_channel *ch, const pubsub_msg *m)
{
    call_ch *st = ch->state;
    const char *uid = ch->sock->claims.user_id;
    if (!st || st->elsewhere) return false;
    if (!strcmp(m->event, "signal")) return starts_with(m->payload_json, "to", uid);
    if (!strcmp(m->event, CALL_ELSEWHERE_EVENT)) {
        if (!starts_with(m->payload_json, "user_id", uid)) return false;
        json_t *p = json_loads(m->payload_json, 0, NULL);
        const char *sess = json_string_value(json_object_get(p, "session_id"));
        const char *mine = ch->sock->claims.session_id;
        if (sess && mine && strcmp(sess, mine) != 0) {
            st->elsewhere = true;
            json_t *b = json_pack("{s:O}", "call", json_object_get(p, "call"));
            phx_push(ch, "state", b);
            json_decref(b);
        }
        json_decref(p);
        return false;
    }
    if (!strcmp(m->event, "state") && m->payload_json) {
        json_t *p = json_loads(m->payload_json, 0, NULL);
        if (p) learn(st, json_object_get(p, "call"), uid);
        json_decref(p);
    }
    return true;
}

static void call_terminate(phx_channel *ch)
{
    call_ch *st = ch->state;
    if (!st) return;
    if (st->counted) call_store_presence(ch_db(ch), st->call_id, ch->sock->claims.user_id, -1);
    json_decref(st->known);
    free(st);
    ch->state = NULL;
}

static const channel_handler call_handler = {
    .prefix = CALL_TOPIC_PREFIX,
    .join = call_join,
    .after_join = call_after_join,
    .handle_in = call_handle_in,
    .terminate = call_terminate,
    .handle_out = call_handle_out,
};

void ch_call_register(void) { channel_register(&call_handler); }
