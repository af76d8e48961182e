/* tls.h — TLS (HTTPS / WSS) on the public listener with OpenSSL, TLS 1.2+.
 *
 * A layer between a connection's TCP stream and the protocol running on it:
 * ciphertext read from the socket is fed to the SSL object through a BIO of
 * our own that reads the received bytes in place (no buffer of its own), the
 * plaintext that comes out is handed to the connection's on_data handler
 * (conn.h), and plaintext written by conn.c's flush is encrypted into a
 * per-thread staging buffer and written to the stream at once, or with its
 * own uv_write requests when the socket does not take it all. The handshake is
 * non-blocking, driven by received bytes, and must finish within
 * g_config.tls_handshake_ms of the accept. Ciphertext waiting for the socket is
 * bounded (TLS_PENDING_MAX): past it the connection's flush waits, so its
 * plaintext stays in its bounded outbound queue (SB_OUTBOUND_MAX, then 1013).
 * Enabled when SB_TLS_CERT and SB_TLS_KEY are set; the admin listener always
 * stays plain HTTP.
 *
 * Production details (issue 18): TLS 1.2+ with SB_TLS_CIPHERS /
 * SB_TLS_CIPHERSUITES, ALPN http/1.1, SSL_MODE_RELEASE_BUFFERS (and the
 * bufferless BIO) so an idle connection holds no record buffers; after a
 * TLS 1.3 handshake the SSL object itself is freed and net/tls13.c seals
 * and opens the records (SB_TLS13_OWN_RECORDS; ~250 B a connection instead
 * of ~13 KB). The certificate and key are reloaded (tls_reload) on SIGHUP and
 * when the files change (SB_TLS_RELOAD_CHECK_S): a new SSL_CTX is built and
 * swapped into each reactor on its own thread; new handshakes use it, live
 * connections keep theirs; a pair that does not load is refused with a log
 * line and the one in use stays. Resumption is stateless: session tickets
 * encrypted with keys shared by every reactor (random per process and
 * rotated every SB_TLS_TICKET_ROTATE_S, or read from SB_TLS_TICKET_KEY_FILE
 * so that every node behind a balancer resumes every client's session). */
#ifndef SB_TLS_H
#define SB_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct sb_conn;

#define TLS_PENDING_MAX (256 * 1024) /* ciphertext queued to the socket per connection */

/* Loads g_config.tls_cert (PEM chain) and g_config.tls_key (PEM key) into the
 * process's TLS context. Returns 0 (also when neither is set: TLS off), or
 * -1 with a message on stderr (only one set, unreadable, key not matching). */
int tls_init(void);
/* Rebuilds the TLS context from the configured files (certificate, key,
 * ticket key file) and hands it to every reactor; `reason` goes to the log
 * line ("sighup", "files_changed"). Main thread. Returns 0 (also when TLS
 * is off), or -1: the new files did not load, the context in use stays
 * (logged as tls_reload_failed). */
int tls_reload(const char *reason);
/* Starts, on `loop` (the main thread's), the once-a-second timer that
 * checks the files every SB_TLS_RELOAD_CHECK_S and rotates the random ticket
 * key; tls_watch_stop closes it (at shutdown). No-op when TLS is off. */
void tls_watch_start(uv_loop_t *loop);
void tls_watch_stop(void);
/* Handshakes finished since start: full ones and resumed ones (tickets). */
void tls_stats(uint64_t *full, uint64_t *resumed);
/* True when the public listener speaks TLS. */
bool tls_enabled(void);
/* Gives connection c its TLS state (server side, handshake pending).
 * Returns 0 or -1 (out of memory). */
int tls_conn_start(struct sb_conn *c);
/* Ciphertext received on c: advances the handshake, then hands the
 * plaintext to the connection's protocol (c->h->on_data). A failed handshake
 * (plain HTTP on the TLS port, TLS < 1.2, garbage) sends its alert and
 * closes the connection. */
void tls_on_read(struct sb_conn *c, const char *data, size_t len);
/* conn.c's flush writing plaintext through TLS: encrypts the buffers and
 * queues the ciphertext on the stream. Returns the plaintext bytes taken
 * (the buffers' bytes in order; possibly fewer than given), UV_EAGAIN when
 * nothing can be taken now (handshake not finished or ciphertext backlog
 * full: the connection is marked dirty again when that changes), or another
 * negative uv error. */
int tls_try_write(struct sb_conn *c, const uv_buf_t *bufs, unsigned nbufs);
/* Queues a close_notify alert (before conn.c half-closes the stream). */
void tls_close_notify(struct sb_conn *c);
/* Housekeeping once a second: closes c if its handshake has not finished
 * within g_config.tls_handshake_ms. Returns true when it closed c. */
bool tls_sweep(struct sb_conn *c, uint64_t now);
/* The connection is closing: frees its TLS state (pending writes free their
 * own buffers). */
void tls_conn_gone(struct sb_conn *c);

#endif
