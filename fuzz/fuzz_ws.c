/* fuzz_ws.c — libFuzzer target: WebSocket frames after a real upgrade (a
 * valid token), through ws.c and wslay (masking, fragments, control frames,
 * size limits, UTF-8), the Phoenix decoders and the socket/channel layer
 * (echo:* test channel, user:<id>).
 * Input: byte 0 = bit 0 Phoenix V2 (else V1), bits 1..7 chunk size (0: one
 * write); the rest is what the client writes after the 101. A frame masked
 * with key 00000000 carries its payload in clear, which keeps seeds readable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    if (size < 1) return 0;
    char req[1536];
    int n = snprintf(req, sizeof req,
                     "GET /socket/websocket?vsn=%s&token=%s HTTP/1.1\r\nHost: fuzz\r\n"
                     "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                     (data[0] & 1) ? "2.0.0" : "1.0.0", fz_token("u1"));
    fz_open(false);
    fz_send(req, (size_t)n);
    if (!fz_is_ws()) {
        fprintf(stderr, "fuzz_ws: the upgrade was refused\n");
        abort();
    }
    fz_send_chunked(data + 1, size - 1, data[0] >> 1);
    fz_close();
    return 0;
}
