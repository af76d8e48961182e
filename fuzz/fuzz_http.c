/* fuzz_http.c — libFuzzer target: bytes a client sends to the public (or
 * admin) listener, through conn.c's read path into llhttp, our header/body
 * limits, pipelining, routing, REST handlers (no database: they answer 503),
 * static files, long-poll and the WebSocket upgrade.
 * Input: byte 0 = bit 0 admin listener, bits 1..7 chunk size (0: one write);
 * the rest is what the client writes. */
#include <stdint.h>
#include "fuzz_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    if (size < 1) return 0;
    fz_open(data[0] & 1);
    fz_send_chunked(data + 1, size - 1, data[0] >> 1);
    fz_close();
    return 0;
}
