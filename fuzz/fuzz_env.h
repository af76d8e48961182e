/* fuzz_env.h — a one-reactor server driven by hand for the libFuzzer
 * harnesses: the real connection, HTTP, WebSocket, Phoenix and channel code,
 * fed through a socketpair instead of a listener, on the fuzzer's thread. */
#ifndef SB_FUZZ_ENV_H
#define SB_FUZZ_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FZ_SECRET "fuzz-secret-fuzz-secret-fuzz-secret-0123456789"

/* Loads the configuration (test channels on, cheap Argon2, quiet logs),
 * registers the routes and channels and sets up the reactor. Idempotent. */
void fz_init(void);
/* Opens a connection as if accepted on the public (or admin) listener. At
 * most one connection is open at a time. */
void fz_open(bool admin);
/* Writes bytes from the client side and lets the server run until it has
 * read and handled them (bounded). Bytes the server does not read (it paused
 * reading, or closed) stay unread, as over TCP. */
void fz_send(const void *data, size_t len);
/* True while the server side of the connection is open and in WebSocket mode. */
bool fz_is_ws(void);
/* True while the server side of the connection is open. */
bool fz_is_open(void);
/* Closes the client side, then the server side, and runs the loop until
 * every callback and queued task has finished (bounded); ends long-poll
 * sessions so that nothing outlives one input. */
void fz_close(void);
/* Splits data into chunks and sends them one by one: the chunk size is
 * derived from `seed` (1..256 bytes, or everything at once). */
void fz_send_chunked(const uint8_t *data, size_t len, uint8_t seed);
/* Hands what the server writes to fn as well (NULL: only dropped). */
void fz_tap(void (*fn)(const char *data, size_t len));
/* Turns TLS on for the public listener: a fresh self-signed P-256
 * certificate in temp files loaded by tls_init. Once per process. */
void fz_tls_cert(void);
/* An access token for user `user` valid for years, signed with FZ_SECRET
 * (static storage). */
const char *fz_token(const char *user);

#endif
