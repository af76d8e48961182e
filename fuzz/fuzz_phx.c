/* fuzz_phx.c — libFuzzer target: the Phoenix message decoders (V1 JSON
 * object, V2 JSON array, V2 binary push) and, for what decodes, the encoders
 * on the decoded fields. Invariant: a message that decodes re-encodes (text:
 * always; binary: when its fields fit) to a message that decodes again to the
 * same topic and event.
 * Input: byte 0 = bit 0 V2 (else V1), bit 1 binary frame; the rest is the
 * WebSocket message payload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        check_same(&m, "phx_reply", vsn, false, b);
        sb_buf_unref(b);
    }
    phx_msg_clear(&m);
    return 0;
}
