/* ch_conversation.c — the conversation:<id> channel (api.md §1): joinable
 * by current members only (anyone else gets the same refusal as for a
 * conversation that does not exist); `typing` relayed to the other members
 * (rate limited, never stored, never echoed to the typist's sockets); who is
 * viewing through Phoenix Presence (presence.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "chat/chat.h"
#include "base/config.h"
#include "store/db.h"
#include "base/log.h"
#include "phoenix/channel.h"
#include "phoenix/phx_socket.h"
#include "presence/ch_presence.h"
#include "bus/pubsub.h"
#include "base/ratelimit.h"
#include "net/reactor.h"
#include "base/util.h"
#include "base/id.h"

#define PREFIX "conversation:"

typedef struct conv_state {
    char ref[PRESENCE_REF_MAX]; /* this channel's presence, "" if none */
    bool removed;               /* the user left the conversation: deaf and mute */
} conv_state;

static ratelimit_table *g_typing_rl;
static ratelimit_limit g_typing_lim;

static json_t *not_found(void)
{
    return json_pack("{s:s,s:s}", "reason", "not_found", "message", "no such conversation");
}

/* A membership check in flight. The pool may answer before db_query
 * returns (database down): then the join is decided synchronously. */
typedef struct join_ctx {
    phx_channel *ch;
    bool in_join; /* still inside conv_join */
    bool answered;
    bool ok;
    json_t *reply;
} join_ctx;

/* Membership answer: complete the join (or record it for conv_join). */
static void member_checked(const PGresult *res, const char *err, void *arg)
{
    join_ctx *j = arg;
    json_t *reply;
    bool ok = false;
    if (!res || err) {
        reply = json_pack("{s:s,s:s}", "reason", "unavailable", "message",
                          "the database is unavailable");
    } else if (PQntuples(res) != 1) {
        reply = not_found();
    } else if (PQgetvalue(res, 0, 0)[0] == 't') {
        /* the other user of this direct chat blocks the caller: no typing,
         * no viewers (migrations/081_blocks_enforce.sql) */
        reply = json_pack("{s:s,s:s}", "reason", "forbidden", "message",
                          "this user has blocked you");
    } else {
        ok = true;
        reply = json_object();
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

/* Decides a join: the conversation must exist and the caller be a member. */
static int conv_join(phx_channel *ch, json_t *payload, json_t **reply)
{
    const char *id = ch->topic + strlen(PREFIX);
    const char *uid = ch->sock->claims.user_id;
    db_pool *db = ch->sock->r ? db_of(ch->sock->r) : NULL;
    if (!id_parse(id) || strlen(id) > 20 || !id_parse(uid)) {
        *reply = not_found();
        return PHX_ERROR;
    }
    join_ctx *j = db ? calloc(1, sizeof *j) : NULL;
    if (!j) {
        *reply = json_pack("{s:s}", "reason", "unavailable");
        return PHX_ERROR;
    }
    j->ch = ch;
    j->in_join = true;
    const char *p[2] = {id, uid};
    db_query(db,
             "SELECT sb_direct_blocked($1::int8, $2::int8) FROM members"
             " WHERE conversation_id = $1::int8 AND user_id = $2::int8",
             2,
             p, member_checked, j);
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

/* After the ok reply: track the viewer (diff, then presence_state). */
static void conv_after_join(phx_channel *ch)
{
    conv_state *st = calloc(1, sizeof *st);
    if (!st) return;
    ch->state = st;
    if (ch_presence_track(ch, ch->sock->claims.user_id, st->ref) != 0) st->ref[0] = 0;
}

/* `typing` {"state":"start"|"stop"} -> broadcast {"user_id","state"}. */
static int conv_handle_in(phx_channel *ch, phx_msg *m, json_t **reply)
{
    if (strcmp(m->event, "typing") != 0) {
        *reply = json_pack("{s:s,s:s}", "reason", "bad_request", "message", "unknown event");
        return PHX_ERROR;
    }
    const char *state = json_string_value(json_object_get(m->payload, "state"));
    if (!state || (strcmp(state, "start") && strcmp(state, "stop"))) {
        *reply = json_pack("{s:s,s:s,s:{s:s}}", "reason", "validation_failed", "message",
                           "state must be start or stop", "details", "state",
                           "must be start or stop");
        return PHX_ERROR;
    }
    const char *uid = ch->sock->claims.user_id;
    conv_state *cs = ch->state;
    if (cs && cs->removed) {
        *reply = not_found();
        return PHX_ERROR;
    }
    if (g_typing_rl) {
        char key[160];
        snprintf(key, sizeof key, "%s|%s", uid, ch->topic);
        if (ratelimit_table_take(g_typing_rl, key, &g_typing_lim, util_now_unix_ms(), 1) > 0) {
            *reply = json_pack("{s:s,s:s}", "reason", "rate_limited", "message",
                               "too many typing events");
            return PHX_ERROR;
        }
    }
    /* user_id first: handle_out recognises the typist by this prefix */
    json_t *b = json_object();
    json_object_set_new(b, "user_id", json_string(uid));
    json_object_set_new(b, "state", json_string(state));
    pubsub_broadcast(ch->topic, "typing", b, NULL);
    json_decref(b);
    return PHX_OK;
}

/* True if payload text starts with {"user_id":"<uid>" (how typing and the
 * removal event are built). */
static bool from_user(const char *payload, const char *uid)
{
    static const char pre[] = "{\"user_id\":\"";
    size_t ul = strlen(uid);
    return payload && strncmp(payload, pre, sizeof pre - 1) == 0 &&
           strncmp(payload + sizeof pre - 1, uid, ul) == 0 && payload[sizeof pre - 1 + ul] == '"';
}

/* Drops the presence of a channel whose user was removed (posted, so the
 * broadcast it makes does not run inside another delivery). */
static void untrack_removed(void *arg)
{
    phx_channel *ch = arg;
    conv_state *st = ch->state;
    if (st && st->ref[0]) {
        presence_untrack(ch->topic, st->ref);
        st->ref[0] = 0;
    }
    phx_channel_unref(ch);
}

/* Typing never reaches the typist's own sockets; nothing reaches a removed
 * member, whose channel is closed on the removal event. */
static bool conv_handle_out(phx_channel *ch, const pubsub_msg *m)
{
    conv_state *st = ch->state;
    const char *uid = ch->sock->claims.user_id;
    if (!strcmp(m->event, CHAT_KICK_EVENT)) {
        if (st && !st->removed && from_user(m->payload_json, uid)) {
            st->removed = true;
            phx_push(ch, "phx_close", NULL);
            phx_channel_ref(ch);
            if (reactor_post(ch->sock->r, untrack_removed, ch) != 0) phx_channel_unref(ch);
        }
        return false;
    }
    if (st && st->removed) return false;
    if (strcmp(m->event, "typing") != 0) return true;
    return !from_user(m->payload_json, uid);
}

static void conv_terminate(phx_channel *ch)
{
    conv_state *st = ch->state;
    if (!st) return;
    if (st->ref[0]) presence_untrack(ch->topic, st->ref);
    free(st);
    ch->state = NULL;
}

static const channel_handler conversation_handler = {
    .prefix = PREFIX,
    .join = conv_join,
    .after_join = conv_after_join,
    .handle_in = conv_handle_in,
    .terminate = conv_terminate,
    .handle_out = conv_handle_out,
};

void ch_conversation_register(void)
{
    if (ratelimit_limit_parse(g_config.ratelimit_typing, &g_typing_lim) != 0) {
        log_msg(LOG_WARN, "bad SB_RATELIMIT_TYPING (want N/seconds); using 10/10", NULL);
        ratelimit_limit_parse("10/10", &g_typing_lim);
    }
    if (!g_typing_rl) g_typing_rl = ratelimit_table_new(RL_TABLE_MAX);
    channel_register(&conversation_handler);
}
