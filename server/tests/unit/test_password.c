/* test_password.c — Argon2id hashing and verification, blocking and on the
 * thread pool, and constant-time comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <argon2.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "base/config.h"
#include "accounts/password.h"

static int setup(void **state)
{
    memset(&g_config, 0, sizeof g_config);
    g_config.argon2_t_cost = 1;
    g_config.argon2_m_kib = 64; /* cheap for tests; the default is 19456 */
    return 0;
}

static void test_round_trip(void **state)
{
    char h[PASSWORD_ENCODED_MAX], h2[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash("correct horse", 13, 1, 64, h, sizeof h), 0);
    assert_memory_equal(h, "$argon2id$v=19$m=64,t=1,p=1$", 28);
    assert_int_equal(password_verify(h, "correct horse", 13), 1);
    assert_int_equal(password_verify(h, "correct horsE", 13), 0);
    assert_int_equal(password_verify(h, "correct hors", 12), 0);
    assert_int_equal(password_verify(h, "", 0), 0);
    /* a random salt each time */
    assert_int_equal(password_hash("correct horse", 13, 1, 64, h2, sizeof h2), 0);
    assert_string_not_equal(h, h2);
    assert_int_equal(password_verify(h2, "correct horse", 13), 1);
    /* bytes after a NUL count: the length is what is hashed */
    assert_int_equal(password_hash("a\0b", 3, 1, 64, h, sizeof h), 0);
    assert_int_equal(password_verify(h, "a\0b", 3), 1);
    assert_int_equal(password_verify(h, "a", 1), 0);
}

static void test_bad_input(void **state)
{
    char h[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_verify(NULL, "x", 1), -1);
    assert_int_equal(password_verify("", "x", 1), -1);
    assert_int_equal(password_verify("$argon2id$garbage", "x", 1), -1);
    /* another Argon2 variant is not accepted as an Argon2id hash */
    char ih[256];
    uint8_t salt[16] = {1, 2, 3};
    assert_int_equal(argon2i_hash_encoded(1, 64, 1, "pw", 2, salt, 16, 32, ih, sizeof ih),
                     ARGON2_OK);
    assert_int_equal(password_verify(ih, "pw", 2), -1);
    /* bad parameters and a too small output buffer are refused */
    assert_int_equal(password_hash("pw", 2, 0, 64, h, sizeof h), -1);
    assert_int_equal(password_hash("pw", 2, 1, 4, h, sizeof h), -1);
    assert_int_equal(password_hash("pw", 2, 1, 64, h, 20), -1);
}

static void test_ct_equal(void **state)
{
    assert_true(password_ct_equal("abcdef", "abcdef", 6));
    assert_false(password_ct_equal("abcdef", "abcdeF", 6));
    assert_false(password_ct_equal("Xbcdef", "abcdef", 6));
    assert_true(password_ct_equal("", "", 0));
}

/* ---- asynchronous ---- */

typedef struct chain {
    uv_loop_t *loop;
    char *hash;
    int good, bad, dummy;
    int done;
} chain;

static void on_dummy(int result, void *arg)
{
    chain *c = arg;
    c->dummy = result;
    c->done++;
}
static void on_bad(int result, void *arg)
{
    chain *c = arg;
    c->bad = result;
    c->done++;
}
static void on_good(int result, void *arg)
{
    chain *c = arg;
    c->good = result;
    c->done++;
}
static void on_hashed(char *encoded, void *arg)
{
    chain *c = arg;
    assert_non_null(encoded);
    c->hash = encoded;
    assert_int_equal(password_verify_async(c->loop, encoded, "s3cret pass", 11, on_good, c), 0);
    assert_int_equal(password_verify_async(c->loop, encoded, "s3cret pasS", 11, on_bad, c), 0);
    assert_int_equal(password_verify_async(c->loop, NULL, "s3cret pass", 11, on_dummy, c), 0);
}

static void test_async_chain(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    chain c = {.loop = &loop, .good = -9, .bad = -9, .dummy = -9};
    assert_int_equal(password_hash_async(&loop, "s3cret pass", 11, on_hashed, &c), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.done, 3);
    assert_int_equal(c.good, 1);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.dummy, 0); /* unknown account: always a mismatch */
    assert_int_equal(password_pending(), 0);
    free(c.hash);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int g_hashed;
static void count_hash(char *encoded, void *arg)
{
    assert_non_null(encoded);
    free(encoded);
    g_hashed++;
}

/* Past PASSWORD_MAX_PENDING jobs, further ones are refused at once. */
static void test_async_cap(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    g_config.argon2_m_kib = 8;
    int queued = 0, refused = 0;
    for (int i = 0; i < PASSWORD_MAX_PENDING + 20; i++) {
        if (password_hash_async(&loop, "pw", 2, count_hash, NULL) == 0)
            queued++;
        else
            refused++;
    }
    /* jobs finish on the pool but are only counted done on the loop, so none
     * has been released yet */
    assert_int_equal(queued, PASSWORD_MAX_PENDING);
    assert_int_equal(refused, 20);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(g_hashed, PASSWORD_MAX_PENDING);
    assert_int_equal(password_pending(), 0);
    assert_int_equal(password_hash_async(&loop, "pw", 2, count_hash, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_round_trip, setup),
        cmocka_unit_test_setup(test_bad_input, setup),
        cmocka_unit_test_setup(test_ct_equal, setup),
        cmocka_unit_test_setup(test_async_chain, setup),
        cmocka_unit_test_setup(test_async_cap, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
