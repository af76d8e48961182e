/* phx_serial.h — Phoenix Channels message serializers (V1 JSON object, V2 JSON
 * array, V2 binary), byte-compatible with Phoenix 1.7's
 * Phoenix.Socket.V1.JSONSerializer and V2.JSONSerializer.
 *
 * Refs (join_ref, ref) are kept as JSON values (string, number or NULL for
 * JSON null) because Phoenix echoes them exactly as the client sent them.
 * Every encoder returns a new sb_buf already framed for WebSocket (text frame
 * for JSON, binary frame for binary) whose text() is the bare message, or
 * NULL when out of memory. Encoders never steal references. */
#ifndef SB_PHX_SERIAL_H
#define SB_PHX_SERIAL_H

#include <jansson.h>
#include <stdbool.h>
#include "base/sb_buf.h"

typedef enum { PHX_V1 = 1, PHX_V2 = 2 } phx_vsn;

typedef struct phx_msg {
    json_t *join_ref; /* NULL when absent or JSON null; else a string or integer */
    json_t *ref;      /* likewise */
    char *topic;      /* owned, NUL-terminated */
    char *event;      /* owned, NUL-terminated */
    json_t *payload;  /* JSON payload (text frames); NULL for binary */
    uint8_t *bin;     /* binary payload (binary frames), owned; NULL for text */
    size_t bin_len;
    bool binary;
} phx_msg;

/* Decodes one client message. `binary` says whether it came in a binary
 * WebSocket frame (V2 only). Text: V2 must be a 5-element array
 * [join_ref, ref, topic, event, payload] with string topic and event, refs
 * string/number/null, payload any JSON value; V1 must be an object with string
 * "topic" and "event", "payload" and "ref", optional "join_ref". Binary: the
 * push layout <<0, jr_size, ref_size, topic_size, event_size, jr, ref, topic,
 * event, data>>. JSON nesting deeper than PHX_MAX_DEPTH is refused.
 * Returns 0 and fills *out, or -1 (message malformed: the socket closes with
 * 1011); on -1 *out holds nothing to free. */
#define PHX_MAX_DEPTH 32
int phx_decode(phx_vsn vsn, bool binary, const char *data, size_t len, phx_msg *out);
/* Frees what phx_decode filled in; leaves *m zeroed. */
void phx_msg_clear(phx_msg *m);

/* Generic encoder: V2 [join_ref, ref, topic, event, payload];
 * V1 {"event":..,"payload":..,"ref":..,"topic":..} (V1 carries no join_ref).
 * payload NULL encodes {}. */
sb_buf *phx_encode(phx_vsn vsn, json_t *join_ref, json_t *ref, const char *topic,
                   const char *event, json_t *payload);
/* Like phx_encode, but the payload is JSON text already serialized (trusted:
 * produced by json_dumps of a valid value). */
sb_buf *phx_encode_raw(phx_vsn vsn, json_t *join_ref, json_t *ref, const char *topic,
                       const char *event, const char *payload_json, size_t payload_len);
/* One push of the same payload to many channels of one topic, encoded
 * once: the shared part. V1 (no join_ref): the whole framed message, the
 * same for every channel. V2: `payload]` as an unframed cont piece that
 * follows each channel's head (phx_encode_push_head). payload_json is
 * trusted JSON text. NULL when out of memory. */
sb_buf *phx_encode_push_shared(phx_vsn vsn, const char *topic, const char *event,
                               const char *payload_json, size_t payload_len);
/* V2 only: one channel's head of a shared push, `[join_ref,null,topic,event,`
 * framed for the whole message (head + shared). NULL when out of memory. */
sb_buf *phx_encode_push_head(json_t *join_ref, const char *topic, const char *event,
                             const sb_buf *shared);
/* phx_reply with payload {"response":response,"status":status}; response NULL
 * encodes {}. */
sb_buf *phx_encode_reply(phx_vsn vsn, json_t *join_ref, json_t *ref, const char *topic,
                         const char *status, json_t *response);
/* Binary reply (kind 1): <<1, jr_size, ref_size, topic_size, status_size, jr,
 * ref, topic, status, data>>; numeric refs are written as decimal text. */
sb_buf *phx_encode_reply_binary(json_t *join_ref, json_t *ref, const char *topic,
                                const char *status, const void *data, size_t len);
/* Binary server push (kind 0, no ref): <<0, jr_size, topic_size, event_size,
 * jr, topic, event, data>>. */
sb_buf *phx_encode_push_binary(json_t *join_ref, const char *topic, const char *event,
                               const void *data, size_t len);
/* Binary broadcast (kind 2): <<2, topic_size, event_size, topic, event, data>>. */
sb_buf *phx_encode_broadcast_binary(const char *topic, const char *event, const void *data,
                                    size_t len);

#endif
