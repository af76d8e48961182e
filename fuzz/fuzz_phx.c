/* fuzz_phx.c — libFuzzer target: the Phoenix message decoders (V1 JSON
 * object, V2 JSON array, V2 binary push) and, for what decodes, the encoders
 * on the decoded fields. Invariants: a message that decodes re-encodes (text:
 * always; binary: when its fields fit) to a message that decodes again to the
 * same topic and event; its text reply {"response": payload, "status": "ok"}
 * is JSON that a client reads back to the same topic, event and payload.
 *
 * The reply nests one level deeper than the payload, so a payload at the
 * depth limit gives a reply past it: PHX_MAX_DEPTH guards the server against
 * what it parses (client input), not what it writes. A client (phoenix.js:
 * JSON.parse) applies no such limit, so the reply is checked with jansson,
 * and with phx_decode only while it is within the limit
 * (corpus/phx/finding-reply-depth).
 * Input: byte 0 = bit 0 V2 (else V1), bit 1 binary frame; the rest is the
 * WebSocket message payload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/json_depth.h"
#include "phoenix/phx_serial.h"

static void check_same(const phx_msg *a, const char *event, phx_vsn vsn, bool binary,
                       const sb_buf *b)
{
    phx_msg m2;
    if (phx_decode(vsn, binary, sb_buf_text(b), sb_buf_text_len(b), &m2) != 0) {
        fprintf(stderr, "fuzz_phx: re-encoded message does not decode: %.*s\n",
                (int)sb_buf_text_len(b), sb_buf_text(b));
        abort();
    }
    if (strcmp(a->topic, m2.topic) != 0 || strcmp(event, m2.event) != 0) abort();
    phx_msg_clear(&m2);
}

/* The reply as a client reads it: the envelope's topic and event, and a
 * payload {"response": the request's payload, "status": "ok"}. */
static void check_reply(const phx_msg *a, phx_vsn vsn, const sb_buf *b)
{
    const char *text = sb_buf_text(b);
    size_t len = sb_buf_text_len(b);
    if (json_depth_ok(text, len, PHX_MAX_DEPTH)) check_same(a, "phx_reply", vsn, false, b);
    json_error_t e;
    json_t *r = json_loadb(text, len, JSON_ALLOW_NUL, &e);
    if (!r) {
        fprintf(stderr, "fuzz_phx: reply is not JSON (%s): %.*s\n", e.text, (int)len, text);
        abort();
    }
    json_t *topic, *event, *payload;
    if (vsn == PHX_V2) {
        if (!json_is_array(r) || json_array_size(r) != 5) abort();
        topic = json_array_get(r, 2);
        event = json_array_get(r, 3);
        payload = json_array_get(r, 4);
    } else {
        topic = json_object_get(r, "topic");
        event = json_object_get(r, "event");
        payload = json_object_get(r, "payload");
    }
    if (!json_is_string(topic) || strcmp(json_string_value(topic), a->topic) != 0 ||
        !json_is_string(event) || strcmp(json_string_value(event), "phx_reply") != 0)
        abort();
    json_t *status = json_object_get(payload, "status");
    if (!json_is_string(status) || strcmp(json_string_value(status), "ok") != 0) abort();
    if (!json_equal(json_object_get(payload, "response"), a->payload)) {
        fprintf(stderr, "fuzz_phx: reply does not carry the payload: %.*s\n", (int)len, text);
        abort();
    }
    json_decref(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    phx_vsn vsn = (data[0] & 1) ? PHX_V2 : PHX_V1;
    bool binary = (data[0] & 2) != 0;
    phx_msg m;
    if (phx_decode(vsn, binary, (const char *)data + 1, size - 1, &m) != 0) {
        /* on failure nothing is left to free */
        if (m.topic || m.event || m.payload || m.bin || m.ref || m.join_ref) abort();
        return 0;
    }
    if (m.binary) {
        sb_buf *b = phx_encode_reply_binary(m.join_ref, m.ref, m.topic, "ok", m.bin, m.bin_len);
        sb_buf_unref(b);
        b = phx_encode_push_binary(m.join_ref, m.topic, m.event, m.bin, m.bin_len);
        sb_buf_unref(b);
        b = phx_encode_broadcast_binary(m.topic, m.event, m.bin, m.bin_len);
        sb_buf_unref(b);
    } else {
        sb_buf *b = phx_encode(vsn, m.join_ref, m.ref, m.topic, m.event, m.payload);
        if (!b) {
            fprintf(stderr, "fuzz_phx: a decoded message did not re-encode\n");
            abort();
        }
        check_same(&m, m.event, vsn, false, b);
        sb_buf_unref(b);
        b = phx_encode_reply(vsn, m.join_ref, m.ref, m.topic, "ok", m.payload);
        if (!b) abort();
        check_reply(&m, vsn, b);
        sb_buf_unref(b);
    }
    phx_msg_clear(&m);
    return 0;
}
