/* password.h — Argon2id password hashing, always off the reactor thread.
 *
 * Hashing is slow on purpose (tens of milliseconds and megabytes of memory),
 * so the asynchronous functions run it on libuv's thread pool
 * (uv_queue_work) and call back on the loop that queued it. The number of
 * jobs queued or running at once, process-wide, is capped: past the cap the
 * asynchronous functions refuse at once (the caller answers 503), so a login
 * flood cannot queue unbounded work. Encoded hashes are the standard
 * "$argon2id$v=19$m=...,t=...,p=...$salt$hash" strings, so the parameters can
 * change later without invalidating stored hashes. */
#ifndef SB_PASSWORD_H
#define SB_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define PASSWORD_MAX_PENDING 256 /* async jobs queued or running, process-wide */
#define PASSWORD_ENCODED_MAX 256 /* room for any encoded hash we produce */

/* Hash callback, on the loop's thread: encoded is the malloc'd encoded hash
 * (the callee owns it and must free it) or NULL on failure. */
typedef void (*password_hash_cb)(char *encoded, void *arg);
/* Verify callback, on the loop's thread: result is 1 (match), 0 (mismatch)
 * or -1 (the stored hash is malformed or hashing failed). */
typedef void (*password_verify_cb)(int result, void *arg);

/* Hashes pw[0..len) with Argon2id (t_cost passes, m_kib KiB, 1 lane, 16-byte
 * random salt) into out (outlen >= PASSWORD_ENCODED_MAX). Blocking. Returns 0
 * or -1. */
int password_hash(const char *pw, size_t len, int t_cost, int m_kib, char *out, size_t outlen);
/* Checks pw[0..len) against an encoded Argon2id hash, comparing in constant
 * time. Blocking. Returns 1 (match), 0 (mismatch) or -1 (malformed hash). */
int password_verify(const char *encoded, const char *pw, size_t len);

/* Queues password_hash(pw, len, g_config.argon2_t_cost, g_config.argon2_m_kib) on
 * the thread pool; cb runs later on `loop`'s thread. pw is copied (and wiped
 * after use). Returns 0 if queued, -1 if refused (too many jobs pending, or
 * out of memory): cb is then never called. */
int password_hash_async(uv_loop_t *loop, const char *pw, size_t len, password_hash_cb cb,
                        void *arg);
/* Queues password_verify on the thread pool; cb runs later on `loop`'s
 * thread. encoded == NULL verifies against a fixed dummy hash with the
 * configured cost (and reports a mismatch), so an unknown account takes as
 * long to refuse as a wrong password. Returns 0 if queued, -1 if refused (cb
 * is then never called). */
int password_verify_async(uv_loop_t *loop, const char *encoded, const char *pw, size_t len,
                          password_verify_cb cb, void *arg);
/* Jobs currently queued or running (for metrics). */
int password_pending(void);

/* Constant-time equality of a[0..n) and b[0..n): the time taken depends only
 * on n, never on where the first difference is. */
bool password_ct_equal(const void *a, const void *b, size_t n);

#endif
