/* fuzz_tls.c — libFuzzer target: bytes a client sends to the public listener
 * with TLS on (a self-signed certificate made at start-up): the handshake
 * driven through tls.c's memory BIOs, failure alerts, close after flush,
 * and whatever plaintext gets through. Seeds are real ClientHellos
 * (TLS 1.2 / 1.3 / 1.1) and plain HTTP.
 * Input: byte 0 = chunk size (0: one write); the rest is what the client
 * writes. */
#include "fuzz_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    fz_init();
    if (!ready) {
        fz_tls_cert();
        ready = true;
    }
    if (size < 1) return 0;
    fz_open(false);
    fz_send_chunked(data + 1, size - 1, data[0]);
    fz_close();
    return 0;
}
