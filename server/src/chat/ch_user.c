/* ch_user.c — the user:<id> channel: joinable only by user <id>. */
#include <string.h>
#include "phoenix/channels.h"
#include "chat/chat.h"
#include "phoenix/phx_socket.h"
#include "presence/presence.h"
#include "sync/sync_join.h"
#include "base/util.h"

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
    format_rfc3339_ms(now_unix_ms(), now, sizeof now);
    json_t *ok = json_pack("{s:{s:s},s:s}", "user", "id", id, "server_time", now);
    int rc = sync_join(ch, payload, ok, reply); /* cursor and catch-up: sync_join.c */
    if (rc == PHX_OK) *reply = ok;
    else json_decref(ok);
    return rc;
}

/* Online state (presence.c) counts the user: channels joined. */
static void user_after_join(phx_channel *ch) { presence_user_up(ch); }

static void user_terminate(phx_channel *ch)
{
    presence_user_down(ch);
    sync_terminate(ch);
}

static const channel_handler user_handler = {
    .prefix = "user:",
    .join = user_join,
    .handle_out = sync_handle_out, /* held / deduplicated around catch-up */
    .after_join = user_after_join, /* online state: presence.c */
    .terminate = user_terminate,   /* presence_user_down, then sync_terminate */
    .handle_in = chat_user_handle_in, /* chat client events (chat_ops.c) */
};

void ch_user_register(void) { channel_register(&user_handler); }
