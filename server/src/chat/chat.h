/* chat.h — the chat core: conversations, messages, reactions, receipts
 * (api.md §1 `user:` client events, §2 Conversations and Messages).
 *
 * Every write is one statement calling an sb_* function of
 * migrations/004_chat.sql, which takes the stream lock, writes, and appends
 * the durable event; live delivery of those events is the tailer's (see
 * docs/sync.md). The same operation serves the REST endpoint and the
 * channel event: a chat_sink says where the answer goes. */
#ifndef SB_CHAT_H
#define SB_CHAT_H

#include <jansson.h>
#include "http/http.h"
#include "phoenix/phx_socket.h"
#include <libpq-fe.h>

/* Registers the chat REST routes and the conversation:<id> channel, and
 * installs the online-state hook of GET /users/:id (call once, before the
 * reactors start); reads the chat rate limits from g_cfg. */
void chat_routes(void);

/* handle_in for the chat events of user:<id> (message:send, message:edit,
 * message:delete, message:react, receipt). Returns PHX_ASYNC (answered
 * later), or PHX_ERROR with *reply for an unknown event. */
int chat_user_handle_in(phx_channel *ch, phx_msg *m, json_t **reply);

/* Registers the conversation:<id> channel (ch_conversation.c). */
void ch_conversation_register(void);

/* Sets up the send rate limit from g_cfg (chat_routes calls it). */
void chat_ops_init(void);

/* ---- the operations, shared by REST and channel (chat_ops.c) ---- */

/* Where an operation's answer goes: a REST request or a channel reply. */
typedef struct chat_sink chat_sink;

/* A sink answering req (REST status codes, error shape of api.md). Returns
 * NULL after answering 500 when out of memory. */
chat_sink *chat_sink_rest(sb_req *req);
/* A sink answering message m on channel ch with a phx_reply ({"reason",
 * "message", "details"} on error). NULL when out of memory. */
chat_sink *chat_sink_channel(phx_channel *ch, const phx_msg *m);
/* Answers an error and frees the sink. */
void chat_fail(chat_sink *s, int status, const char *code, const char *message, json_t *details);

/* Each operation validates its input, answers through s exactly once (now
 * or after its database round trip) and frees s. `user_id` is the caller;
 * ids named in the path (REST) are passed as strings, NULL to read them from
 * `body` (channel). body is borrowed. */
void chat_op_send(chat_sink *s, const char *user_id, const char *conv_id, json_t *body);
void chat_op_edit(chat_sink *s, const char *user_id, const char *msg_id, json_t *body);
/* for_: "me" or "everyone" (NULL: read "for" from body). */
void chat_op_delete(chat_sink *s, const char *user_id, const char *msg_id, const char *for_,
                    json_t *body);
/* emoji/op NULL: read from body. */
void chat_op_react(chat_sink *s, const char *user_id, const char *msg_id, const char *emoji,
                   const char *op, json_t *body);
/* kind NULL: read from body ("delivered" | "read"). */
void chat_op_receipt(chat_sink *s, const char *user_id, const char *conv_id, const char *kind,
                     json_t *body);

/* Runs `SELECT sb_fn(...)`-style SQL whose one jsonb column is the result
 * or {"error","message","details"}, and answers s with it (ok_status on
 * success). The variant `op` post-processes results (see chat_ops.c). */
enum { CHAT_PLAIN = 0, CHAT_CREATED, CHAT_SENT, CHAT_EMPTY, CHAT_ACK, CHAT_CHATS, CHAT_HISTORY,
       CHAT_MEMBERS };
/* After a successful CHAT_EMPTY result holding "kick": true, broadcast
 * CHAT_KICK_EVENT {"user_id"} on conversation:<conv_id>: the channels of
 * user_id there close (ch_conversation.c). */
#define CHAT_KICK_EVENT "chat:member_removed"
void chat_sink_set_kick(chat_sink *s, const char *conv_id, const char *user_id);
/* History paging direction: 'b' (before / latest) or 'a' (after). */
void chat_sink_set_mode(chat_sink *s, char mode);
void chat_run(chat_sink *s, int op, int limit, const char *sql, int n, const char *const *params);

/* For the send batcher (chat_send_batch.c): answers a send's sink with one
 * sb_message_send result (jsonb text; does not kick the tailer), or with
 * the failure of its query (as chat_run would); both free s. */
void chat_sink_answer_text(chat_sink *s, const char *text);
void chat_sink_fail_db(chat_sink *s, const PGresult *res, const char *err);
/* The database pool of the sink's reactor (NULL: none). */
struct db_pool *chat_sink_db(const chat_sink *s);

/* Parses an id given as a decimal string or a positive JSON integer into
 * out (>= 24 bytes). Returns 1 when present and valid, 0 when absent or
 * null, -1 when malformed. */
int chat_json_id(json_t *v, char out[24]);

#endif
