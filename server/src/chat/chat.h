/* chat.h — the chat core: conversations, messages, reactions, receipts
 * (api.md §1 `user:` client events, §2 Conversations and Messages).
 *
 * Every write is one statement calling an sb_* function of
 * migrations/004_chat.sql, which takes the stream lock, writes, and appends
 * the durable event; live delivery of those events is the tailer's (see
 * docs/sync.md). The same operation serves the REST endpoint and the
 * channel event: a chat_sink says where the answer goes. This is the core:
 * it knows neither HTTP nor Phoenix; the edges (chat_rest.c, ch_user.c)
 * implement the sink's function table and map its answers to HTTP statuses
 * or Phoenix replies. */
#ifndef SB_CHAT_H
#define SB_CHAT_H

#include <jansson.h>
#include <libpq-fe.h>
#include "base/verr.h"

struct db_pool;

/* Registers the chat REST routes and the conversation:<id> channel, and
 * installs the online-state hook of GET /users/:id (call once, before the
 * reactors start); reads the chat rate limits from g_config. */
void chat_routes(void);

/* Registers the user:<id> channel (ch_user.c): its join, online state,
 * catch-up, and the chat client events. */
void ch_user_register(void);

/* Registers the conversation:<id> channel (ch_conversation.c). */
void ch_conversation_register(void);

/* Sets up the send rate limit from g_config (chat_routes calls it). */
void chat_ops_init(void);

/* ---- the operations, shared by REST and channel (chat_ops.c) ---- */

/* Where an operation's answer goes: a REST request or a channel reply. */
typedef struct chat_sink chat_sink;

/* What a successful answer is; each edge maps it (REST status, phx_reply). */
typedef enum chat_reply {
    CHAT_REPLY_OK,      /* the body (REST 200, channel "ok" with it) */
    CHAT_REPLY_CREATED, /* the body, a record created (REST 201) */
    CHAT_REPLY_NONE,    /* nothing (REST 204 without body, channel {}) */
    CHAT_REPLY_ACK,     /* an acknowledgment: REST 200 with the body, channel {} */
} chat_reply;

/* The edge's half of a sink; `to` is what the edge gave chat_sink_new.
 * Exactly one of the two is called, once, then the core frees the sink. */
typedef struct chat_sink_ops {
    /* Success; body is stolen (never NULL). */
    void (*ok)(void *to, chat_reply kind, json_t *body);
    /* Failure: code is an api.md error code (bad_request, unauthorized,
     * forbidden, not_found, conflict, payload_too_large, validation_failed,
     * rate_limited, unavailable, internal, or one an sb_* function gave),
     * message a sentence, details {field: message} or NULL (stolen);
     * retry_after_s > 0: the client may retry after so many seconds. */
    void (*fail)(void *to, const char *code, const char *message, json_t *details,
                 int retry_after_s);
} chat_sink_ops;

/* A sink answering through ops (static, outlives the sink) to `to`; db is
 * the database pool of the caller's reactor (NULL: none, answered
 * unavailable). One allocation; NULL when out of memory (nothing called). */
chat_sink *chat_sink_new(const chat_sink_ops *ops, void *to, struct db_pool *db);
/* Answers an error (no retry hint) and frees the sink; details stolen. */
void chat_fail(chat_sink *s, const char *code, const char *message, json_t *details);
/* Answers validation_failed with the field errors v collected (consumed). */
void chat_fail_verr(chat_sink *s, verr *v);

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
       CHAT_MEMBERS, CHAT_CONV };
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
