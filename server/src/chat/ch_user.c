/* ch_user.c — the user:<id> channel: joinable only by user <id>. */
#include <string.h>
#include "phoenix/channel.h"
#include "phoenix/channels.h"
#include "chat/chat.h"
#include "phoenix/phx_socket.h"
#include "presence/presence.h"
#include "store/db.h"
#include "sync/ch_user_sync.h"
#include "base/util.h"
#include "net/reactor.h"

/* ------------------------------------------------------------------------ */
/* The channel sink: chat answers as replies (phx_reply) to a client event   */
/* ------------------------------------------------------------------------ */

static void channel_sink_ok(void *to, chat_reply kind, json_t *body)
{
    if (kind == CHAT_REPLY_NONE || kind == CHAT_REPLY_ACK) { /* {} as api.md lists */
        json_decref(body);
        body = json_object();
    }
    phx_deferred_reply(to, "ok", body);
}

/* {"reason", "message", "details"?}; the retry hint has no place here. */
static void channel_sink_fail(void *to, const char *code, const char *message, json_t *details,
                              int retry_after_s)
{
    json_t *r = json_pack("{s:s,s:s}", "reason", code, "message", message);
    if (details && json_object_size(details)) json_object_set(r, "details", details);
    json_decref(details);
    phx_deferred_reply(to, "error", r);
}

static const chat_sink_ops CHANNEL_SINK = {.ok = channel_sink_ok, .fail = channel_sink_fail};

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set)) return true;
    return false;
}

/* handle_in for the chat events of user:<id> (message:send, message:edit,
 * message:delete, message:react, receipt): PHX_ASYNC (answered later by the
 * operation of chat_ops.c), or PHX_ERROR with *reply for an unknown event. */
static int user_handle_in(phx_channel *ch, phx_msg *m, json_t **reply)
{
    static const char *const events[] = {"message:send", "message:edit", "message:delete",
                                          "message:react", "receipt", NULL};
    if (!one_of(m->event, events)) {
        *reply = json_pack("{s:s,s:s}", "reason", "bad_request", "message", "unknown event");
        return PHX_ERROR;
    }
    if (!m->payload || !json_is_object(m->payload)) {
        *reply = json_pack("{s:s,s:s}", "reason", "bad_request", "message",
                           "the payload must be a JSON object");
        return PHX_ERROR;
    }
    phx_deferred *d = phx_defer(ch, m);
    if (!d) {
        *reply = json_pack("{s:s}", "reason", "internal");
        return PHX_ERROR;
    }
    chat_sink *s = chat_sink_new(&CHANNEL_SINK, d, ch->sock->r ? db_of(ch->sock->r) : NULL);
    if (!s) {
        phx_deferred_reply(d, "error", json_pack("{s:s}", "reason", "internal"));
        return PHX_ASYNC;
    }
    const char *uid = ch->sock->claims.user_id;
    json_t *b = m->payload;
    if (!strcmp(m->event, "message:send")) chat_op_send(s, uid, NULL, b);
    else if (!strcmp(m->event, "message:edit")) chat_op_edit(s, uid, NULL, b);
    else if (!strcmp(m->event, "message:delete")) chat_op_delete(s, uid, NULL, NULL, b);
    else if (!strcmp(m->event, "message:react")) chat_op_react(s, uid, NULL, NULL, NULL, b);
    else chat_op_receipt(s, uid, NULL, NULL, b);
    return PHX_ASYNC;
}

/* ------------------------------------------------------------------------ */
/* The channel                                                               */
/* ------------------------------------------------------------------------ */

/* Refuses anyone but the topic's own user. */
static int user_join(phx_channel *ch, json_t *payload, json_t **reply)
{
    const char *id = ch->topic + strlen("user:");
    if (strcmp(id, ch->sock->claims.user_id) != 0) {
        *reply = json_pack("{s:s,s:s}", "reason", "forbidden", "message",
                           "a user topic can only be joined by its own user");
        return PHX_ERROR;
    }
    char now[32];
    util_format_rfc3339_ms(util_now_unix_ms(), now, sizeof now);
    json_t *ok = json_pack("{s:{s:s},s:s}", "user", "id", id, "server_time", now);
    int rc = ch_user_sync_join(ch, payload, ok, reply); /* cursor and catch-up */
    if (rc == PHX_OK) *reply = ok;
    else json_decref(ok);
    return rc;
}

/* Online state (presence.c) counts the user: channels joined. */
static void user_after_join(phx_channel *ch) { presence_user_up(ch->sock->claims.user_id, ch); }

static void user_terminate(phx_channel *ch)
{
    presence_user_down(ch->sock->claims.user_id, ch);
    ch_user_sync_terminate(ch);
}

static const channel_handler user_handler = {
    .prefix = "user:",
    .join = user_join,
    .handle_out = ch_user_sync_handle_out, /* held / deduplicated around catch-up */
    .after_join = user_after_join, /* online state: presence.c */
    .terminate = user_terminate,   /* presence_user_down, then ch_user_sync_terminate */
    .handle_in = user_handle_in, /* chat client events (chat_ops.c) */
};

void ch_user_register(void) { channel_register(&user_handler); }
