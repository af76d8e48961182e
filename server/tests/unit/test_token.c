/* test_token.c — HMAC-SHA256 access tokens and base64url. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/token.h"
#include "base/b64url.h"

static const uint8_t SECRET[] = "secret";
#define SECRET_LEN (sizeof SECRET - 1)
#define NOW 1800000000LL

static int verify(const char *tok, int64_t now, token_claims *c)
{
    return token_verify(SECRET, SECRET_LEN, tok, strlen(tok), now, c);
}

/* Signs arbitrary claims text the way token.c must, independently of it
 * (python: b64url(claims) + "." + b64url(hmac_sha256(secret, b64url(claims)))). */
static char *sign_raw(const uint8_t *secret, size_t slen, const char *claims)
{
    char *body = b64url_encode(claims, strlen(claims));
    assert_non_null(body);
    uint8_t mac[32];
    unsigned int n = 0;
    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)slen, (const uint8_t *)body, strlen(body), mac, &n));
    assert_int_equal(n, 32);
    char *sig = b64url_encode(mac, 32);
    char *tok = malloc(strlen(body) + strlen(sig) + 2);
    sprintf(tok, "%s.%s", body, sig);
    free(body);
    free(sig);
    return tok;
}

static void test_known_answer(void **state)
{
    /* computed with Python's hmac/base64 */
    const char *want = "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ."
                       "pQWAYHJydu_3IdHXCgfveBi2Z-wqGTNEpE_qD92HJww";
    char *tok = token_mint(SECRET, SECRET_LEN, "u1", "s1", 2000000000);
    assert_non_null(tok);
    assert_string_equal(tok, want);
    free(tok);
    token_claims c;
    assert_int_equal(verify(want, NOW, &c), TOKEN_OK);
    assert_string_equal(c.user_id, "u1");
    assert_string_equal(c.session_id, "s1");
    assert_int_equal(c.exp, 2000000000);
}

static void test_round_trip(void **state)
{
    const char *uid = "01HZX3K9Q8-user_.:x";
    char sid[TOKEN_MAX_ID + 1];
    memset(sid, 'S', TOKEN_MAX_ID);
    sid[TOKEN_MAX_ID] = 0; /* exactly 64 chars is allowed */
    char *tok = token_mint(SECRET, SECRET_LEN, uid, sid, NOW + 900);
    assert_non_null(tok);
    token_claims c;
    memset(&c, 0, sizeof c);
    assert_int_equal(verify(tok, NOW, &c), TOKEN_OK);
    assert_string_equal(c.user_id, uid);
    assert_string_equal(c.session_id, sid);
    assert_int_equal(c.exp, NOW + 900);
    /* out may be NULL */
    assert_int_equal(verify(tok, NOW, NULL), TOKEN_OK);
    /* the token need not be NUL-terminated: only len bytes are read */
    size_t n = strlen(tok);
    char *copy = malloc(n + 5);
    memcpy(copy, tok, n);
    memcpy(copy + n, "XXXXX", 5);
    assert_int_equal(token_verify(SECRET, SECRET_LEN, copy, n, NOW, &c), TOKEN_OK);
    assert_int_equal(token_verify(SECRET, SECRET_LEN, copy, n + 1, NOW, &c), TOKEN_BAD);
    assert_int_equal(token_verify(SECRET, SECRET_LEN, copy, n - 1, NOW, &c), TOKEN_BAD);
    free(copy);
    free(tok);
}

static void test_expiry(void **state)
{
    char *tok = token_mint(SECRET, SECRET_LEN, "u1", "s1", NOW);
    token_claims c;
    assert_int_equal(verify(tok, NOW - 1, &c), TOKEN_OK);
    memset(&c, 0x5a, sizeof c);
    token_claims before = c;
    assert_int_equal(verify(tok, NOW, &c), TOKEN_EXPIRED); /* exp <= now */
    assert_int_equal(verify(tok, NOW + 1000, &c), TOKEN_EXPIRED);
    assert_memory_equal(&c, &before, sizeof c); /* untouched unless OK */
    free(tok);
    tok = token_mint(SECRET, SECRET_LEN, "u1", "s1", -5);
    assert_int_equal(verify(tok, 0, &c), TOKEN_EXPIRED);
    free(tok);
    /* an expired token with a bad signature is BAD, not EXPIRED */
    tok = token_mint((const uint8_t *)"other", 5, "u1", "s1", NOW - 10);
    assert_int_equal(verify(tok, NOW, &c), TOKEN_BAD);
    free(tok);
}

static void test_tampered_payload(void **state)
{
    char *tok = token_mint(SECRET, SECRET_LEN, "alice", "s1", NOW + 60);
    char *dot = strchr(tok, '.');
    /* swap the claims for another user's, keep alice's signature */
    char *evil = token_mint((const uint8_t *)"attacker", 8, "admin", "s1", NOW + 60);
    char *edot = strchr(evil, '.');
    size_t bl = (size_t)(edot - evil);
    char *forged = malloc(bl + strlen(dot) + 1);
    memcpy(forged, evil, bl);
    strcpy(forged + bl, dot);
    assert_int_equal(verify(forged, NOW, NULL), TOKEN_BAD);
    /* flip one character of the claims */
    char *t2 = strdup(tok);
    t2[3] = t2[3] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(t2, NOW, NULL), TOKEN_BAD);
    /* extend the expiry */
    char *later = token_mint(SECRET, SECRET_LEN, "alice", "s1", NOW + 999999);
    char *ldot = strchr(later, '.');
    memcpy(forged, later, (size_t)(ldot - later));
    strcpy(forged + (ldot - later), dot);
    assert_int_equal(verify(forged, NOW, NULL), TOKEN_BAD);
    free(later);
    free(t2);
    free(forged);
    free(evil);
    free(tok);
}

static void test_tampered_signature(void **state)
{
    char *tok = token_mint(SECRET, SECRET_LEN, "u1", "s1", NOW + 60);
    size_t n = strlen(tok);
    char *dot = strchr(tok, '.');
    size_t sig_at = (size_t)(dot - tok) + 1;
    /* every single-character change in the signature is refused */
    for (size_t i = sig_at; i < n; i++) {
        char saved = tok[i];
        tok[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(verify(tok, NOW, NULL), TOKEN_BAD);
        tok[i] = saved;
    }
    assert_int_equal(verify(tok, NOW, NULL), TOKEN_OK);
    /* truncated or extended signature */
    tok[n - 1] = 0;
    assert_int_equal(verify(tok, NOW, NULL), TOKEN_BAD);
    tok[n - 1] = 'A';
    char *longer = malloc(n + 2);
    memcpy(longer, tok, n);
    memcpy(longer + n, "A", 2);
    assert_int_equal(verify(longer, NOW, NULL), TOKEN_BAD);
    free(longer);
    /* non-canonical last character (same bytes, non-zero padding bits) */
    free(tok);
    tok = token_mint(SECRET, SECRET_LEN, "u1", "s1", NOW + 60);
    char last = tok[n - 1];
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int idx = (int)(strchr(alpha, last) - alpha);
    tok[n - 1] = alpha[idx | 1]; /* 43 chars: last holds 4 data bits + 2 zero bits */
    if (tok[n - 1] != last) assert_int_equal(verify(tok, NOW, NULL), TOKEN_BAD);
    free(tok);
}

static void test_wrong_secret(void **state)
{
    char *tok = token_mint(SECRET, SECRET_LEN, "u1", "s1", NOW + 60);
    assert_int_equal(token_verify((const uint8_t *)"secreT", 6, tok, strlen(tok), NOW, NULL),
                     TOKEN_BAD);
    assert_int_equal(token_verify((const uint8_t *)"secre", 5, tok, strlen(tok), NOW, NULL),
                     TOKEN_BAD);
    /* an empty secret is refused outright */
    assert_int_equal(token_verify((const uint8_t *)"", 0, tok, strlen(tok), NOW, NULL), TOKEN_BAD);
    assert_null(token_mint((const uint8_t *)"", 0, "u1", "s1", NOW));
    free(tok);
}

static void test_garbage(void **state)
{
    const char *bad[] = {
        "",
        ".",
        "..",
        "abc",
        "abc.",
        ".abc",
        "a.b",
        "a.b.c",
        "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ", /* no signature */
        "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ.",
        "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ.."
        "pQWAYHJydu_3IdHXCgfveBi2Z-wqGTNEpE_qD92HJww",
        /* standard base64 alphabet / padding / whitespace are not base64url */
        "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ."
        "pQWAYHJydu/3IdHXCgfveBi2Z+wqGTNEpE/qD92HJww",
        "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ."
        "pQWAYHJydu_3IdHXCgfveBi2Z-wqGTNEpE_qD92HJww=",
        "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ==."
        "pQWAYHJydu_3IdHXCgfveBi2Z-wqGTNEpE_qD92HJww",
        " eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ."
        "pQWAYHJydu_3IdHXCgfveBi2Z-wqGTNEpE_qD92HJww",
        "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ."
        "pQWAYHJydu_3IdHXCgfveBi2Z-wqGTNEpE_qD92HJww\n",
        "Bearer eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ."
        "pQWAYHJydu_3IdHXCgfveBi2Z-wqGTNEpE_qD92HJww",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (verify(bad[i], NOW, NULL) != TOKEN_BAD) fail_msg("accepted: '%s'", bad[i]);
    assert_int_equal(token_verify(SECRET, SECRET_LEN, NULL, 0, NOW, NULL), TOKEN_BAD);
    /* embedded NUL */
    const char nul[] = "eyJzdWIiOiJ1MSIsInNpZCI6InMxIiwiZXhwIjoyMDAwMDAwMDAwfQ."
                       "pQWAYHJydu_3IdHXCgfveBi2Z-wqGTNEpE_qD92HJww\0";
    assert_int_equal(token_verify(SECRET, SECRET_LEN, nul, sizeof nul, NOW, NULL), TOKEN_BAD);
    assert_int_equal(token_verify(SECRET, SECRET_LEN, nul, sizeof nul - 1, NOW, NULL), TOKEN_BAD);
    assert_int_equal(token_verify(SECRET, SECRET_LEN, nul, sizeof nul - 2, NOW, NULL), TOKEN_OK);
}

/* Correctly signed tokens whose claims are wrong must still be refused. */
static void test_bad_claims(void **state)
{
    const char *bad[] = {
        "not json",
        "",
        "[]",
        "\"u1\"",
        "{}",
        "{\"sid\":\"s1\",\"exp\":2000000000}",              /* no sub */
        "{\"sub\":\"u1\",\"exp\":2000000000}",              /* no sid */
        "{\"sub\":\"u1\",\"sid\":\"s1\"}",                  /* no exp */
        "{\"sub\":1,\"sid\":\"s1\",\"exp\":2000000000}",    /* sub not a string */
        "{\"sub\":\"u1\",\"sid\":null,\"exp\":2000000000}", /* sid null */
        "{\"sub\":\"u1\",\"sid\":\"s1\",\"exp\":\"2000000000\"}",
        "{\"sub\":\"u1\",\"sid\":\"s1\",\"exp\":2000000000.0}",
        "{\"sub\":\"u1\",\"sid\":\"s1\",\"exp\":true}",
        "{\"sub\":\"\",\"sid\":\"s1\",\"exp\":2000000000}", /* empty id */
        "{\"sub\":\"u 1\",\"sid\":\"s1\",\"exp\":2000000000}",
        "{\"sub\":\"u1\",\"sid\":\"s/1\",\"exp\":2000000000}",
        "{\"sub\":\"u\\u00e9\",\"sid\":\"s1\",\"exp\":2000000000}",
        "{\"sub\":\"u\\u0000x\",\"sid\":\"s1\",\"exp\":2000000000}",
        "{\"sub\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"sid\":"
        "\"s1\",\"exp\":2000000000}",                                           /* 65 chars */
        "{\"sub\":\"u1\",\"sub\":\"admin\",\"sid\":\"s1\",\"exp\":2000000000}", /* duplicate */
        "{\"sub\":\"u1\",\"sid\":\"s1\",\"exp\":2000000000} x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *tok = sign_raw(SECRET, SECRET_LEN, bad[i]);
        if (verify(tok, NOW, NULL) != TOKEN_BAD) fail_msg("accepted claims: %s", bad[i]);
        free(tok);
    }
    /* extra claims and other key orders are fine */
    char *tok = sign_raw(SECRET, SECRET_LEN,
                         "{\"exp\":2000000000,\"iat\":1,\"sid\":\"s1\",\"sub\":\"u1\"}");
    token_claims c;
    assert_int_equal(verify(tok, NOW, &c), TOKEN_OK);
    assert_string_equal(c.user_id, "u1");
    free(tok);
}

static void test_overlong(void **state)
{
    /* pad claims so the token is exactly 1024 bytes (accepted), then longer */
    char claims[1200];
    const char *head = "{\"sub\":\"u1\",\"sid\":\"s1\",\"exp\":2000000000,\"pad\":\"";
    /* 1024 = ceil(4n/3) + 1 + 43  ->  n = 735 bytes of claims */
    size_t pad = 735 - strlen(head) - 2;
    snprintf(claims, sizeof claims, "%s%0*d\"}", head, (int)pad, 0);
    assert_int_equal(strlen(claims), 735);
    char *tok = sign_raw(SECRET, SECRET_LEN, claims);
    assert_int_equal(strlen(tok), 1024);
    assert_int_equal(verify(tok, NOW, NULL), TOKEN_OK);
    free(tok);
    snprintf(claims, sizeof claims, "%s%0*d\"}", head, (int)pad + 1, 0);
    tok = sign_raw(SECRET, SECRET_LEN, claims);
    assert_true(strlen(tok) > 1024);
    assert_int_equal(verify(tok, NOW, NULL), TOKEN_BAD);
    free(tok);
    /* plain long garbage */
    char *big = malloc(100001);
    memset(big, 'A', 100000);
    big[100000] = 0;
    big[50000] = '.';
    assert_int_equal(verify(big, NOW, NULL), TOKEN_BAD);
    free(big);
}

static void test_mint_rejects_ids(void **state)
{
    char id65[66];
    memset(id65, 'a', 65);
    id65[65] = 0;
    const char *bad[] = {"", "a b", "a\"b", "a/b", "a\\b", "a+b", "caf\xc3\xa9", "a\nb", id65};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(token_mint(SECRET, SECRET_LEN, bad[i], "s1", NOW));
        assert_null(token_mint(SECRET, SECRET_LEN, "u1", bad[i], NOW));
    }
    assert_null(token_mint(SECRET, SECRET_LEN, NULL, "s1", NOW));
    assert_null(token_mint(SECRET, SECRET_LEN, "u1", NULL, NOW));
    char *tok = token_mint(SECRET, SECRET_LEN, "A-Z_a.z:0-9", "x", INT64_MAX);
    assert_non_null(tok);
    token_claims c;
    assert_int_equal(verify(tok, NOW, &c), TOKEN_OK);
    assert_int_equal(c.exp, INT64_MAX);
    free(tok);
}

static void test_b64url(void **state)
{
    /* RFC 4648 vectors, unpadded */
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = b64url_encode(plain[i], strlen(plain[i]));
        assert_string_equal(e, enc[i]);
        free(e);
        uint8_t out[16];
        size_t n = sizeof out;
        assert_int_equal(b64url_decode(enc[i], strlen(enc[i]), out, &n), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
    }
    /* URL-safe alphabet */
    char *e = b64url_encode("\xfb\xff\xbf", 3);
    assert_string_equal(e, "-_-_");
    free(e);
    uint8_t out[8];
    size_t n = sizeof out;
    assert_int_equal(b64url_decode("-_-_", 4, out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
    /* all byte values round trip */
    uint8_t all[256], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t len = 0; len <= 256; len += 37) {
        e = b64url_encode(all, len);
        size_t bn = sizeof back;
        assert_int_equal(b64url_decode(e, strlen(e), back, &bn), 0);
        assert_int_equal(bn, len);
        assert_memory_equal(back, all, len);
        free(e);
    }
    /* invalid input */
    const char *bad[] = {"Z", "Zg=", "Zg==", "Zm9v+", "Zm/v", "Zm 9v", "Zh", "Zm9", "Zm9vYmFyZ"};
    /* "Zh" and "Zm9" carry non-zero padding bits */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        n = sizeof out;
        if (b64url_decode(bad[i], strlen(bad[i]), out, &n) != -1) fail_msg("accepted %s", bad[i]);
    }
    /* output capacity is respected */
    n = 5;
    assert_int_equal(b64url_decode("Zm9vYmFy", 8, out, &n), -1);
    n = 6;
    assert_int_equal(b64url_decode("Zm9vYmFy", 8, out, &n), 0);
    assert_int_equal(n, 6);
    n = 0;
    assert_int_equal(b64url_decode("", 0, NULL, &n), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_tampered_signature),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bad_claims),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_mint_rejects_ids),
        cmocka_unit_test(test_b64url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
