/* password.c — Argon2id hashing on the thread pool (see password.h). */
#include "accounts/password.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "base/util.h"

#define SALT_LEN 16
#define HASH_LEN 32

static atomic_int g_pending;

/* ------------------------------------------------------------------------ */
/* Blocking primitives                                                       */
/* ------------------------------------------------------------------------ */

int password_hash(const char *pw, size_t len, int t_cost, int m_kib, char *out, size_t outlen)
{
    uint8_t salt[SALT_LEN];
    if (t_cost < 1 || m_kib < 8 || len > UINT32_MAX) return -1;
    if (argon2_encodedlen((uint32_t)t_cost, (uint32_t)m_kib, 1, SALT_LEN, HASH_LEN, Argon2_id) >
        outlen)
        return -1;
    if (util_random_bytes(salt, sizeof salt) != 0) return -1;
    int rc = argon2id_hash_encoded((uint32_t)t_cost, (uint32_t)m_kib, 1, pw, len, salt, SALT_LEN,
                                   HASH_LEN, out, outlen);
    return rc == ARGON2_OK ? 0 : -1;
}

int password_verify(const char *encoded, const char *pw, size_t len)
{
    if (!encoded || strncmp(encoded, "$argon2id$", 10) != 0) return -1;
    /* argon2id_verify recomputes the hash with the stored parameters and
     * compares in constant time. */
    int rc = argon2id_verify(encoded, pw, len);
    if (rc == ARGON2_OK) return 1;
    if (rc == ARGON2_VERIFY_MISMATCH) return 0;
    return -1;
}

bool password_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int password_pending(void)
{
    return atomic_load(&g_pending);
}

/* ------------------------------------------------------------------------ */
/* The dummy hash used for unknown accounts                                  */
/* ------------------------------------------------------------------------ */

static pthread_once_t g_dummy_once = PTHREAD_ONCE_INIT;
static char g_dummy[PASSWORD_ENCODED_MAX];

/* Builds, once, a hash of a random password with the configured cost. */
static void dummy_init(void)
{
    uint8_t pw[16];
    util_random_bytes(pw, sizeof pw);
    if (password_hash((const char *)pw, sizeof pw, g_config.argon2_t_cost, g_config.argon2_m_kib, g_dummy,
                      sizeof g_dummy) != 0)
        g_dummy[0] = 0;
}

/* ------------------------------------------------------------------------ */
/* Thread-pool jobs                                                          */
/* ------------------------------------------------------------------------ */

typedef struct pw_job {
    uv_work_t work;
    bool verify;
    bool dummy;    /* verify against the dummy hash; always a mismatch */
    char *encoded; /* verify: the stored hash (copy); hash: the result */
    char *pw;
    size_t len;
    int result;
    password_hash_cb hash_cb;
    password_verify_cb verify_cb;
    void *arg;
} pw_job;

/* Runs on a pool thread: the slow part. */
static void job_work(uv_work_t *w)
{
    pw_job *j = w->data;
    if (j->verify) {
        if (j->dummy) {
            pthread_once(&g_dummy_once, dummy_init);
            if (g_dummy[0]) password_verify(g_dummy, j->pw, j->len);
            j->result = 0;
        } else {
            j->result = password_verify(j->encoded, j->pw, j->len);
        }
    } else {
        char out[PASSWORD_ENCODED_MAX];
        if (password_hash(j->pw, j->len, g_config.argon2_t_cost, g_config.argon2_m_kib, out,
                          sizeof out) == 0)
            j->encoded = strdup(out);
    }
}

/* Runs on the loop's thread: hands the result over and frees the job. */
static void job_done(uv_work_t *w, int status)
{
    pw_job *j = w->data;
    atomic_fetch_sub(&g_pending, 1);
    OPENSSL_cleanse(j->pw, j->len);
    free(j->pw);
    if (j->verify) {
        free(j->encoded);
        j->verify_cb(status == 0 ? j->result : -1, j->arg);
    } else {
        if (status != 0) {
            free(j->encoded);
            j->encoded = NULL;
        }
        j->hash_cb(j->encoded, j->arg);
    }
    free(j);
}

/* Allocates a job holding a copy of the password, or NULL when refused. */
static pw_job *job_new(const char *pw, size_t len)
{
    if (atomic_fetch_add(&g_pending, 1) >= PASSWORD_MAX_PENDING) {
        atomic_fetch_sub(&g_pending, 1);
        return NULL;
    }
    pw_job *j = calloc(1, sizeof *j);
    if (j) j->pw = malloc(len + 1);
    if (!j || !j->pw) {
        free(j);
        atomic_fetch_sub(&g_pending, 1);
        return NULL;
    }
    memcpy(j->pw, pw, len);
    j->pw[len] = 0;
    j->len = len;
    j->work.data = j;
    return j;
}

/* Queues j on loop; on failure frees it and returns -1. */
static int job_queue(uv_loop_t *loop, pw_job *j)
{
    if (uv_queue_work(loop, &j->work, job_work, job_done) == 0) return 0;
    OPENSSL_cleanse(j->pw, j->len);
    free(j->pw);
    free(j->encoded);
    free(j);
    atomic_fetch_sub(&g_pending, 1);
    return -1;
}

int password_hash_async(uv_loop_t *loop, const char *pw, size_t len, password_hash_cb cb, void *arg)
{
    pw_job *j = job_new(pw, len);
    if (!j) return -1;
    j->hash_cb = cb;
    j->arg = arg;
    return job_queue(loop, j);
}

int password_verify_async(uv_loop_t *loop, const char *encoded, const char *pw, size_t len,
                          password_verify_cb cb, void *arg)
{
    pw_job *j = job_new(pw, len);
    if (!j) return -1;
    j->verify = true;
    j->verify_cb = cb;
    j->arg = arg;
    if (encoded) {
        j->encoded = strdup(encoded);
        if (!j->encoded) {
            j->encoded = NULL;
            OPENSSL_cleanse(j->pw, j->len);
            free(j->pw);
            free(j);
            atomic_fetch_sub(&g_pending, 1);
            return -1;
        }
    } else {
        j->dummy = true;
    }
    return job_queue(loop, j);
}
