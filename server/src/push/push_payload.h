/* push_payload.h — the FCM HTTP v1 request bodies push sends (docs/push.md,
 * "What a push carries"). Pure: no I/O. FCM data values are strings. */
#ifndef SB_PUSH_PAYLOAD_H
#define SB_PUSH_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FCM's limit on a message's payload; previews are cut to keep within it. */
#define PUSH_PAYLOAD_MAX 4096

/* A message push. preview NULL: none (ciphertext). muted: data-only (no
 * notification, no preview). alert false: the collapsed notification is
 * updated without sound (the per-conversation alert throttle). */
typedef struct push_payload_msg {
    const char *token;
    const char *conversation_id, *message_id, *sender_id, *sender_name;
    int64_t seq;
    const char *preview;
    bool muted, alert;
} push_payload_msg;

/* The body of a message push: a malloc'd NUL-terminated JSON text whose
 * payload (all but the token) is at most PUSH_PAYLOAD_MAX bytes, the
 * preview cut on a UTF-8 character boundary when needed; NULL when out of
 * memory. */
char *push_payload_message(const push_payload_msg *m);

/* The body of a call invitation: high-priority data {type:"call", call_id,
 * caller, caller_name, media}, TTL ttl_s. malloc'd JSON text or NULL. */
char *push_payload_call(const char *token, const char *call_id, const char *caller,
                        const char *caller_name, const char *media, int64_t ttl_s);

/* The body of a call cancel: high-priority data {type:"call_cancel",
 * call_id, reason}, TTL ttl_s. malloc'd JSON text or NULL. */
char *push_payload_cancel(const char *token, const char *call_id, const char *reason,
                          int64_t ttl_s);

/* The largest n <= max such that s[0..n) (of len bytes) does not end in
 * the middle of a UTF-8 character. */
size_t push_payload_utf8_cut(const char *s, size_t len, size_t max);

/* The preview text of a message of `kind` with `body` (a label for media
 * kinds without a caption; NULL for ciphertext). Borrowed or static. */
const char *push_payload_preview(const char *kind, const char *body);

#endif
