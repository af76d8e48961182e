/* chat_push.h — the push hook of chat (issue 14): every committed message
 * send's answer is handed to a push interface after the sender was
 * answered, so a phone whose app is closed can be woken. A slot the push
 * domain (through main.c) fills; NULL: a no-op. */
#ifndef SB_CHAT_PUSH_H
#define SB_CHAT_PUSH_H

/* The hook: the answer text of one committed send ({"message":{...},
 * "duplicate":bool}, borrowed). Runs on the reactor thread that committed
 * the send; must only copy and queue (never block, never slow the send). */
typedef void (*chat_push_fn)(const char *answer);

/* The slot (set once at start, before the reactors run). */
extern chat_push_fn g_chat_push_hook;

#endif
