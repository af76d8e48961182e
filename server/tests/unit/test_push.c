/* test_push.c — the pure pieces of push (push/): FCM answers, Retry-After,
 * the service-account key file and token answers (push_parse.c); message,
 * call and cancel bodies (push_payload.c); the RS256 assertion (push_jwt.c),
 * checked against the public half of a key generated here; the coalescing
 * of message pushes per conversation and device (push_coalesce.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64url.h"
#include "push/push_coalesce.h"
#include "push/push_jwt.h"
#include "push/push_parse.h"
#include "push/push_payload.h"

/* ---------- FCM answers ---------- */

static push_parse_outcome fcm(long status, const char *body, char *code, size_t cap)
{
    return push_parse_fcm_answer(status, body, body ? strlen(body) : 0, code, cap);
}

static void test_fcm_answers(void **st)
{
    (void)st;
    char code[64];
    assert_int_equal(fcm(200, "{\"name\":\"projects/p/messages/1\"}", code, sizeof code), PUSH_OK);
    assert_string_equal(code, "");
    /* a 200 that is not an FCM answer is a counted failure */
    assert_int_equal(fcm(200, "{}", code, sizeof code), PUSH_MALFORMED);
    assert_string_equal(code, "malformed_answer");
    assert_int_equal(fcm(200, "not json", code, sizeof code), PUSH_MALFORMED);
    assert_int_equal(fcm(200, "{\"name\":\"\"}", code, sizeof code), PUSH_MALFORMED);
    assert_int_equal(fcm(200, "[\"name\"]", code, sizeof code), PUSH_MALFORMED);
    assert_int_equal(fcm(200, NULL, code, sizeof code), PUSH_MALFORMED);

    /* 404 / UNREGISTERED: the device goes */
    assert_int_equal(
        fcm(404,
            "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\",\"details\":[{\"@type\":"
            "\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"UNREGISTERED\"}]}}",
            code, sizeof code),
        PUSH_DEAD_TOKEN);
    assert_string_equal(code, "UNREGISTERED");
    assert_int_equal(fcm(404, "", code, sizeof code), PUSH_DEAD_TOKEN);
    assert_string_equal(code, "http_404");
    assert_int_equal(
        fcm(400, "{\"error\":{\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"errorCode\":\"UNREGISTERED\"}]}}",
            code, sizeof code),
        PUSH_DEAD_TOKEN);

    /* 400 INVALID_ARGUMENT naming the token (message or field violation) */
    assert_int_equal(fcm(400,
                         "{\"error\":{\"code\":400,\"message\":\"The registration token is not a "
                         "valid FCM registration token\",\"status\":\"INVALID_ARGUMENT\"}}",
                         code, sizeof code),
                     PUSH_DEAD_TOKEN);
    assert_string_equal(code, "INVALID_ARGUMENT");
    assert_int_equal(fcm(400,
                         "{\"error\":{\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\",\"details\":"
                         "[{\"errorCode\":\"INVALID_ARGUMENT\"},{\"fieldViolations\":[{\"field\":"
                         "\"message.token\"}]}]}}",
                         code, sizeof code),
                     PUSH_DEAD_TOKEN);
    /* any other 400: dropped, the device kept */
    assert_int_equal(fcm(400,
                         "{\"error\":{\"message\":\"Invalid value at 'message.data[0].value'\","
                         "\"status\":\"INVALID_ARGUMENT\"}}",
                         code, sizeof code),
                     PUSH_BAD_REQUEST);
    assert_string_equal(code, "INVALID_ARGUMENT");
    assert_int_equal(fcm(400, "garbage", code, sizeof code), PUSH_BAD_REQUEST);
    assert_string_equal(code, "http_400");
    /* the token named under another status is not a dead token */
    assert_int_equal(fcm(400, "{\"error\":{\"message\":\"registration token\",\"status\":\"FAILED_PRECONDITION\"}}",
                         code, sizeof code),
                     PUSH_BAD_REQUEST);

    assert_int_equal(fcm(401, "{\"error\":{\"status\":\"UNAUTHENTICATED\"}}", code, sizeof code), PUSH_AUTH);
    assert_string_equal(code, "UNAUTHENTICATED");
    assert_int_equal(fcm(403,
                         "{\"error\":{\"status\":\"PERMISSION_DENIED\",\"details\":[{\"errorCode\":"
                         "\"SENDER_ID_MISMATCH\"}]}}",
                         code, sizeof code),
                     PUSH_FORBIDDEN);
    assert_string_equal(code, "SENDER_ID_MISMATCH");
    assert_int_equal(fcm(403, "{\"error\":{\"status\":\"PERMISSION_DENIED\"}}", code, sizeof code), PUSH_FORBIDDEN);
    assert_string_equal(code, "PERMISSION_DENIED");
    assert_int_equal(fcm(429, "{\"error\":{\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"errorCode\":"
                              "\"QUOTA_EXCEEDED\"}]}}",
                         code, sizeof code),
                     PUSH_RETRY);
    assert_string_equal(code, "QUOTA_EXCEEDED");
    assert_int_equal(fcm(503, "Service Unavailable", code, sizeof code), PUSH_RETRY);
    assert_string_equal(code, "http_503");
    assert_int_equal(fcm(500, NULL, code, sizeof code), PUSH_RETRY);
    assert_int_equal(fcm(599, NULL, code, sizeof code), PUSH_RETRY);
    assert_int_equal(fcm(302, NULL, code, sizeof code), PUSH_OTHER);
    assert_int_equal(fcm(418, "{\"error\":7}", code, sizeof code), PUSH_OTHER);
    assert_string_equal(code, "http_418");
    /* wrong types inside error are ignored, never a crash */
    assert_int_equal(fcm(400, "{\"error\":{\"status\":5,\"details\":{\"errorCode\":1},\"message\":[]}}", code,
                         sizeof code),
                     PUSH_BAD_REQUEST);
    /* a long code is cut to the buffer */
    char small[4];
    assert_int_equal(fcm(404, "{\"error\":{\"details\":[{\"errorCode\":\"UNREGISTERED\"}]}}", small, sizeof small),
                     PUSH_DEAD_TOKEN);
    assert_string_equal(small, "UNR");
}

/* ---------- Retry-After ---------- */

static int64_t ra(const char *v, int64_t now_ms)
{
    return push_parse_retry_after(v, strlen(v), now_ms);
}

static void test_retry_after(void **st)
{
    (void)st;
    assert_int_equal(ra("0", 0), 0);
    assert_int_equal(ra("1", 0), 1000);
    assert_int_equal(ra("120", 0), 120000);
    assert_int_equal(ra(" 7 \r\n", 0), 7000);
    assert_int_equal(ra("86400", 0), 86400000);
    assert_int_equal(ra("86401", 0), 86400000); /* capped at a day */
    assert_int_equal(ra("99999999999999999999999999", 0), 86400000);
    /* HTTP dates: 1994-11-06 08:49:37 UTC = 784111777 */
    const int64_t t = 784111777LL * 1000;
    assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37 GMT", t - 5000), 5000);
    assert_int_equal(ra("Sunday, 06-Nov-94 08:49:37 GMT", t - 30000), 30000);
    assert_int_equal(ra("Sun Nov  6 08:49:37 1994", t - 1000), 1000);
    assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37 GMT", t + 60000), 0); /* in the past */
    assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37 GMT", t - 3LL * 86400000), 86400000);
    /* malformed */
    assert_int_equal(ra("", 0), -1);
    assert_int_equal(ra("   ", 0), -1);
    assert_int_equal(ra("-1", 0), -1);
    assert_int_equal(ra("1.5", 0), -1);
    assert_int_equal(ra("12abc", 0), -1);
    assert_int_equal(ra("soon", 0), -1);
    assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37 GMT extra", t), -1);
    assert_int_equal(ra("Sun, 06 Nov 1994 08:49:37", t), -1);
    assert_int_equal(ra("Sun, 32 Nov 1994 08:49:37 GMT", t), -1);
    char longv[80];
    memset(longv, '1', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(ra(longv, 0), -1);
    /* not NUL-terminated: only len bytes are read */
    assert_int_equal(push_parse_retry_after("42xyz", 2, 0), 42000);
}

/* ---------- token endpoint answers ---------- */

static void test_token_answer(void **st)
{
    (void)st;
    char tok[64];
    int64_t exp = 0;
    const char *ok = "{\"access_token\":\"ya29.abc\",\"expires_in\":3599,\"token_type\":\"Bearer\"}";
    assert_int_equal(push_parse_token_answer(ok, strlen(ok), tok, sizeof tok, &exp), 0);
    assert_string_equal(tok, "ya29.abc");
    assert_int_equal(exp, 3599);
    const char *bad[] = {
        "", "null", "[]", "{}", "{\"access_token\":\"a\"}", "{\"expires_in\":10}",
        "{\"access_token\":\"\",\"expires_in\":10}", "{\"access_token\":5,\"expires_in\":10}",
        "{\"access_token\":\"a\",\"expires_in\":\"10\"}", "{\"access_token\":\"a\",\"expires_in\":0}",
        "{\"access_token\":\"a\",\"expires_in\":86401}", "{\"access_token\":\"a b\",\"expires_in\":10}",
        "{\"access_token\":\"a\\r\\nX: y\",\"expires_in\":10}",
        "{\"access_token\":\"0123456789012345678901234567890123456789012345678901234567890123456789\","
        "\"expires_in\":10}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(tok, "unchanged");
        exp = 77;
        assert_int_equal(push_parse_token_answer(bad[i], strlen(bad[i]), tok, sizeof tok, &exp), -1);
        assert_string_equal(tok, "unchanged");
        assert_int_equal(exp, 77);
    }
}

/* ---------- key files ---------- */

static EVP_PKEY *g_key;   /* RSA 2048, generated once */
static char *g_key_pem;   /* its private half, PKCS#8 PEM */

static char *pem_of(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static int setup_key(void **st)
{
    (void)st;
    g_key = EVP_RSA_gen(2048);
    if (!g_key) return -1;
    g_key_pem = pem_of(g_key);
    return g_key_pem ? 0 : -1;
}

static int teardown_key(void **st)
{
    (void)st;
    EVP_PKEY_free(g_key);
    free(g_key_pem);
    return 0;
}

/* A key file's text from a valid one with `field` set to v (a JSON value;
 * NULL removes it). */
static char *key_file(const char *field, json_t *v)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "service_account", "project_id",
                          "demo-proj", "private_key_id", "kid123", "private_key", g_key_pem,
                          "client_email", "sb@demo-proj.iam.gserviceaccount.com", "token_uri",
                          "https://oauth2.googleapis.com/token");
    assert_non_null(o);
    if (field) {
        if (v)
            json_object_set_new(o, field, v);
        else
            json_object_del(o, field);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void expect_key_error(const char *text, const char *needle)
{
    push_parse_key_t k;
    char err[256] = "";
    assert_int_equal(push_parse_key(text, strlen(text), &k, err, sizeof err), -1);
    assert_null(k.pkey);
    if (!strstr(err, needle)) fail_msg("error \"%s\" does not name \"%s\"", err, needle);
}

static void expect_field_error(const char *field, json_t *v, const char *needle)
{
    char *s = key_file(field, v);
    expect_key_error(s, needle);
    free(s);
}

static void test_key_file(void **st)
{
    (void)st;
    char *s = key_file(NULL, NULL);
    push_parse_key_t k;
    char err[256] = "";
    assert_int_equal(push_parse_key(s, strlen(s), &k, err, sizeof err), 0);
    assert_string_equal(k.project_id, "demo-proj");
    assert_string_equal(k.client_email, "sb@demo-proj.iam.gserviceaccount.com");
    assert_string_equal(k.private_key_id, "kid123");
    assert_string_equal(k.token_uri, "https://oauth2.googleapis.com/token");
    assert_non_null(k.pkey);
    assert_int_equal(EVP_PKEY_eq(k.pkey, g_key), 1);
    push_parse_key_free(&k);
    assert_null(k.pkey);
    push_parse_key_free(&k); /* twice is harmless */
    free(s);

    /* optional: private_key_id, type; http:// token_uri (tests' fakes) */
    s = key_file("private_key_id", NULL);
    assert_int_equal(push_parse_key(s, strlen(s), &k, err, sizeof err), 0);
    assert_string_equal(k.private_key_id, "");
    push_parse_key_free(&k);
    free(s);
    s = key_file("token_uri", json_string("http://127.0.0.1:9/token"));
    assert_int_equal(push_parse_key(s, strlen(s), &k, err, sizeof err), 0);
    push_parse_key_free(&k);
    free(s);

    expect_key_error("", "not JSON");
    expect_key_error("{\"project_id\":", "not JSON");
    expect_key_error("[1,2]", "not a JSON object");
    expect_key_error("{\"a\":1,\"a\":2}", "not JSON"); /* duplicate keys */
    expect_field_error("type", json_string("authorized_user"), "\"type\"");
    expect_field_error("type", json_integer(1), "\"type\"");
    expect_field_error("project_id", NULL, "\"project_id\" is missing");
    expect_field_error("project_id", json_string(""), "\"project_id\"");
    expect_field_error("project_id", json_integer(3), "\"project_id\"");
    expect_field_error("project_id", json_string("a/../b"), "\"project_id\" has a character");
    expect_field_error("client_email", NULL, "\"client_email\" is missing");
    expect_field_error("token_uri", NULL, "\"token_uri\" is missing");
    expect_field_error("token_uri", json_string("ftp://x/token"), "not an http(s) URL");
    expect_field_error("token_uri", json_string("https://x/to ken"), "space or control");
    expect_field_error("private_key", NULL, "\"private_key\" is missing");
    expect_field_error("private_key", json_true(), "\"private_key\" is missing");
    expect_field_error("private_key", json_string("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
                       "not a PEM private key");
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_field_error("client_email", json_string(big), "longer than");

    /* a key that cannot sign RS256: EC, and RSA under 2048 bits */
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    char *ecpem = pem_of(ec);
    expect_field_error("private_key", json_string(ecpem), "RSA key of at least 2048");
    free(ecpem);
    EVP_PKEY_free(ec);
    EVP_PKEY *small = EVP_RSA_gen(1024);
    assert_non_null(small);
    char *smallpem = pem_of(small);
    expect_field_error("private_key", json_string(smallpem), "RSA key of at least 2048");
    free(smallpem);
    EVP_PKEY_free(small);
}

/* ---------- the JWT ---------- */

/* Decodes base64url part [p, p+n) into a malloc'd NUL-terminated buffer. */
static unsigned char *unb64(const char *p, size_t n, size_t *outlen)
{
    size_t cap = n;
    unsigned char *b = malloc(cap + 1);
    assert_non_null(b);
    assert_int_equal(b64url_decode(p, n, b, &cap), 0);
    b[cap] = '\0';
    *outlen = cap;
    return b;
}

static void test_jwt(void **st)
{
    (void)st;
    char *s = key_file(NULL, NULL);
    push_parse_key_t k;
    char err[256];
    assert_int_equal(push_parse_key(s, strlen(s), &k, err, sizeof err), 0);
    free(s);
    const int64_t now = 1800000000;
    char *jwt = push_jwt_make(&k, now);
    assert_non_null(jwt);
    char *d1 = strchr(jwt, '.');
    assert_non_null(d1);
    char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));

    size_t n;
    unsigned char *h = unb64(jwt, (size_t)(d1 - jwt), &n);
    json_t *hj = json_loads((char *)h, 0, NULL);
    assert_non_null(hj);
    assert_string_equal(json_string_value(json_object_get(hj, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(hj, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(hj, "kid")), "kid123");
    json_decref(hj);
    free(h);

    unsigned char *c = unb64(d1 + 1, (size_t)(d2 - d1 - 1), &n);
    json_t *cj = json_loads((char *)c, 0, NULL);
    assert_non_null(cj);
    assert_string_equal(json_string_value(json_object_get(cj, "iss")), "sb@demo-proj.iam.gserviceaccount.com");
    assert_string_equal(json_string_value(json_object_get(cj, "scope")),
                        "https://www.googleapis.com/auth/firebase.messaging");
    assert_string_equal(json_string_value(json_object_get(cj, "aud")), "https://oauth2.googleapis.com/token");
    json_int_t iat = json_integer_value(json_object_get(cj, "iat"));
    json_int_t exp = json_integer_value(json_object_get(cj, "exp"));
    assert_int_equal(iat, now);
    assert_true(exp > iat && exp <= iat + 3600);
    json_decref(cj);
    free(c);

    /* the signature verifies with the public half (RS256 = RSASSA-PKCS1-v1_5 SHA-256) */
    unsigned char *sig = unb64(d2 + 1, strlen(d2 + 1), &n);
    assert_int_equal(n, 256);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, g_key), 1);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(pub);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub), 1);
    size_t signed_len = (size_t)(d2 - jwt);
    assert_int_equal(EVP_DigestVerify(ctx, sig, n, (unsigned char *)jwt, signed_len), 1);
    /* a changed claim does not verify */
    jwt[d1 - jwt + 3] ^= 1;
    EVP_MD_CTX_reset(ctx);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub), 1);
    assert_int_not_equal(EVP_DigestVerify(ctx, sig, n, (unsigned char *)jwt, signed_len), 1);
    /* another key's public half does not verify either */
    jwt[d1 - jwt + 3] ^= 1;
    EVP_PKEY *other = EVP_RSA_gen(2048);
    EVP_MD_CTX_reset(ctx);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, other), 1);
    assert_int_not_equal(EVP_DigestVerify(ctx, sig, n, (unsigned char *)jwt, signed_len), 1);
    EVP_PKEY_free(other);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pub);
    free(sig);
    free(jwt);

    /* without a kid the header carries none */
    k.private_key_id[0] = '\0';
    jwt = push_jwt_make(&k, now);
    assert_non_null(jwt);
    h = unb64(jwt, (size_t)(strchr(jwt, '.') - jwt), &n);
    hj = json_loads((char *)h, 0, NULL);
    assert_null(json_object_get(hj, "kid"));
    json_decref(hj);
    free(h);
    free(jwt);
    push_parse_key_free(&k);
}

/* ---------- payloads ---------- */

static bool utf8_valid(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!l || i + l > n) return false;
        for (size_t j = 1; j < l; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return false;
        i += l;
    }
    return true;
}

static void test_utf8_cut(void **st)
{
    (void)st;
    const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"; /* a é € 😀: 1+2+3+4 bytes */
    size_t len = strlen(s);
    assert_int_equal(push_payload_utf8_cut(s, len, 100), len);
    assert_int_equal(push_payload_utf8_cut(s, len, len), len);
    const size_t expect[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6};
    for (size_t m = 0; m < len; m++) {
        size_t n = push_payload_utf8_cut(s, len, m);
        assert_int_equal(n, expect[m]);
        assert_true(utf8_valid(s, n));
    }
}

static void test_preview_labels(void **st)
{
    (void)st;
    assert_null(push_payload_preview("ciphertext", "xyz"));
    assert_string_equal(push_payload_preview("text", "hello"), "hello");
    assert_string_equal(push_payload_preview("image", "caption"), "caption");
    assert_string_equal(push_payload_preview("image", NULL), "Photo");
    assert_string_equal(push_payload_preview("image", ""), "Photo");
    assert_string_equal(push_payload_preview("voice", NULL), "Voice message");
    assert_string_equal(push_payload_preview("unknown", NULL), "New message");
    assert_string_equal(push_payload_preview(NULL, NULL), "New message");
}

static json_t *msg_json(const push_payload_msg *m, size_t *bytes)
{
    char *s = push_payload_message(m);
    assert_non_null(s);
    if (bytes) *bytes = strlen(s);
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    free(s);
    assert_non_null(json_object_get(j, "message"));
    return j;
}

static const char *path_str(json_t *root, const char *a, const char *b, const char *c)
{
    json_t *o = json_object_get(json_object_get(root, "message"), a);
    if (b) o = json_object_get(o, b);
    if (c) o = json_object_get(o, c);
    return json_string_value(o);
}

static void test_message_payload(void **st)
{
    (void)st;
    push_payload_msg m = {.token = "tok-1", .conversation_id = "c-9", .message_id = "m-1",
                          .sender_id = "u-2", .sender_name = "Alice", .seq = 42,
                          .preview = "hi there", .muted = false, .alert = true};
    json_t *j = msg_json(&m, NULL);
    assert_string_equal(path_str(j, "token", NULL, NULL), "tok-1");
    assert_string_equal(path_str(j, "notification", "title", NULL), "Alice");
    assert_string_equal(path_str(j, "notification", "body", NULL), "hi there");
    assert_string_equal(path_str(j, "data", "type", NULL), "message");
    assert_string_equal(path_str(j, "data", "conversation_id", NULL), "c-9");
    assert_string_equal(path_str(j, "data", "message_id", NULL), "m-1");
    assert_string_equal(path_str(j, "data", "seq", NULL), "42");
    assert_string_equal(path_str(j, "data", "alert", NULL), "1");
    assert_string_equal(path_str(j, "android", "collapse_key", NULL), "conversation:c-9");
    assert_string_equal(path_str(j, "android", "priority", NULL), "high");
    assert_string_equal(path_str(j, "apns", "headers", "apns-collapse-id"), "conversation:c-9");
    assert_string_equal(path_str(j, "apns", "headers", "apns-priority"), "10");
    assert_string_equal(path_str(j, "apns", "headers", "apns-push-type"), "alert");
    json_decref(j);

    /* throttled: the same collapsed notification, no sound */
    m.alert = false;
    j = msg_json(&m, NULL);
    assert_string_equal(path_str(j, "data", "alert", NULL), "0");
    assert_string_equal(path_str(j, "android", "collapse_key", NULL), "conversation:c-9");
    assert_string_equal(path_str(j, "android", "notification", "notification_priority"), "PRIORITY_LOW");
    assert_string_equal(path_str(j, "apns", "headers", "apns-priority"), "5");
    assert_null(json_object_get(json_object_get(json_object_get(json_object_get(j, "message"), "apns"), "payload"),
                                "sound"));
    json_decref(j);

    /* ciphertext: an alert without a preview */
    m.alert = true;
    m.preview = NULL;
    j = msg_json(&m, NULL);
    assert_string_equal(path_str(j, "notification", "title", NULL), "Alice");
    assert_null(path_str(j, "notification", "body", NULL));
    assert_string_equal(path_str(j, "data", "alert", NULL), "1");
    json_decref(j);

    /* muted: data only, no alert, no preview, still collapsed */
    m.preview = "secret text";
    m.muted = true;
    size_t bytes;
    j = msg_json(&m, &bytes);
    assert_null(json_object_get(json_object_get(j, "message"), "notification"));
    assert_string_equal(path_str(j, "data", "muted", NULL), "1");
    assert_string_equal(path_str(j, "data", "alert", NULL), "0");
    assert_string_equal(path_str(j, "android", "collapse_key", NULL), "conversation:c-9");
    assert_string_equal(path_str(j, "android", "priority", NULL), "normal");
    assert_string_equal(path_str(j, "apns", "headers", "apns-push-type"), "background");
    char *text = json_dumps(j, JSON_COMPACT);
    assert_null(strstr(text, "secret text"));
    free(text);
    json_decref(j);
}

static void test_message_cut(void **st)
{
    (void)st;
    /* 3000 euro signs (9000 bytes) and a long token: the payload without the
     * token stays within 4 KB, the preview cut on a character boundary */
    size_t n = 3000;
    char *big = malloc(n * 3 + 1);
    for (size_t i = 0; i < n; i++) memcpy(big + 3 * i, "\xE2\x82\xAC", 3);
    big[n * 3] = '\0';
    char tok[301];
    memset(tok, 't', 300);
    tok[300] = '\0';
    push_payload_msg m = {.token = tok, .conversation_id = "c", .message_id = "m", .sender_id = "s",
                          .sender_name = "Bob", .seq = 1, .preview = big, .alert = true};
    size_t bytes;
    json_t *j = msg_json(&m, &bytes);
    assert_true(bytes <= strlen(tok) + PUSH_PAYLOAD_MAX);
    const char *body = path_str(j, "notification", "body", NULL);
    assert_non_null(body);
    size_t bl = strlen(body);
    assert_true(bl > 3000);          /* cut, not dropped */
    assert_int_equal(bl % 3, 0);      /* whole characters only */
    assert_true(utf8_valid(body, bl));
    assert_memory_equal(body, big, bl);
    json_decref(j);

    /* characters JSON escapes (quotes, control bytes) take more room: still within */
    char *esc = malloc(6001);
    for (size_t i = 0; i < 6000; i++) esc[i] = (i % 2) ? '"' : '\x01';
    esc[6000] = '\0';
    m.preview = esc;
    j = msg_json(&m, &bytes);
    assert_true(bytes <= strlen(tok) + PUSH_PAYLOAD_MAX);
    body = path_str(j, "notification", "body", NULL);
    assert_non_null(body);
    assert_true(strlen(body) > 0);
    assert_memory_equal(body, esc, strlen(body));
    json_decref(j);

    /* a short preview is untouched */
    m.preview = "\xF0\x9F\x98\x80 ok";
    j = msg_json(&m, NULL);
    assert_string_equal(path_str(j, "notification", "body", NULL), "\xF0\x9F\x98\x80 ok");
    json_decref(j);
    free(esc);
    free(big);
}

static void test_call_payloads(void **st)
{
    (void)st;
    char *s = push_payload_call("tok", "call-1", "u-1", "Carol", "video", 45);
    assert_non_null(s);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(j);
    assert_null(json_object_get(json_object_get(j, "message"), "notification"));
    assert_string_equal(path_str(j, "token", NULL, NULL), "tok");
    assert_string_equal(path_str(j, "data", "type", NULL), "call");
    assert_string_equal(path_str(j, "data", "call_id", NULL), "call-1");
    assert_string_equal(path_str(j, "data", "caller", NULL), "u-1");
    assert_string_equal(path_str(j, "data", "caller_name", NULL), "Carol");
    assert_string_equal(path_str(j, "data", "media", NULL), "video");
    assert_string_equal(path_str(j, "android", "priority", NULL), "high");
    assert_string_equal(path_str(j, "android", "ttl", NULL), "45s");
    assert_string_equal(path_str(j, "apns", "headers", "apns-priority"), "10");
    json_decref(j);

    s = push_payload_call("tok", "call-1", NULL, NULL, NULL, 30);
    j = json_loads(s, 0, NULL);
    free(s);
    assert_string_equal(path_str(j, "data", "media", NULL), "audio");
    assert_string_equal(path_str(j, "data", "caller", NULL), "");
    json_decref(j);

    s = push_payload_cancel("tok", "call-1", "answered_elsewhere", 45);
    j = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(j);
    assert_string_equal(path_str(j, "data", "type", NULL), "call_cancel");
    assert_string_equal(path_str(j, "data", "call_id", NULL), "call-1");
    assert_string_equal(path_str(j, "data", "reason", NULL), "answered_elsewhere");
    assert_string_equal(path_str(j, "android", "priority", NULL), "high");
    assert_string_equal(path_str(j, "android", "ttl", NULL), "45s");
    json_decref(j);
    s = push_payload_cancel("tok", "call-1", NULL, 45);
    j = json_loads(s, 0, NULL);
    free(s);
    assert_string_equal(path_str(j, "data", "reason", NULL), "ended");
    json_decref(j);
}

/* ---------- coalescing (push_coalesce.c) ---------- */

static void test_coalesce_window(void **state)
{
    (void)state;
    int a = 1, b = 2, c = 3;
    push_coalesce *co = push_coalesce_new(5000, 100);
    assert_non_null(co);
    assert_int_equal(push_coalesce_next_ms(co), UINT64_MAX);
    /* quiet: goes at once, opens a window until 6000 */
    assert_int_equal(push_coalesce_offer(co, "7/1", 1000), 0);
    assert_int_equal(push_coalesce_next_ms(co), 6000);
    /* inside it: held, the newest replacing the one before */
    assert_int_equal(push_coalesce_offer(co, "7/1", 1200), 1);
    assert_null(push_coalesce_hold(co, "7/1", &a));
    assert_int_equal(push_coalesce_offer(co, "7/1", 5999), 1);
    assert_ptr_equal(push_coalesce_hold(co, "7/1", &b), &a);
    assert_int_equal(push_coalesce_held(co), 1);
    /* another device of the same conversation is its own key */
    assert_int_equal(push_coalesce_offer(co, "7/2", 2000), 0);
    assert_int_equal(push_coalesce_keys(co), 2);
    assert_null(push_coalesce_due(co, 5999));
    /* the window ends: the newest held goes, and a new window opens */
    assert_ptr_equal(push_coalesce_due(co, 6000), &b);
    assert_null(push_coalesce_due(co, 6000));
    assert_int_equal(push_coalesce_held(co), 0);
    assert_int_equal(push_coalesce_next_ms(co), 7000); /* "7/2" ends first now */
    assert_int_equal(push_coalesce_offer(co, "7/1", 6500), 1);
    assert_null(push_coalesce_hold(co, "7/1", &c));
    /* "7/2" ends with nothing held: forgotten */
    assert_null(push_coalesce_due(co, 7000));
    assert_int_equal(push_coalesce_keys(co), 1);
    assert_ptr_equal(push_coalesce_due(co, 11000), &c);
    /* the window opened at 11000 ends empty: nothing left */
    assert_null(push_coalesce_due(co, 16000));
    assert_int_equal(push_coalesce_keys(co), 0);
    assert_int_equal(push_coalesce_next_ms(co), UINT64_MAX);
    /* quiet again: at once */
    assert_int_equal(push_coalesce_offer(co, "7/1", 20000), 0);
    /* a window that ended but was not collected yet: a new one, at once */
    assert_int_equal(push_coalesce_offer(co, "7/1", 30000), 0);
    assert_int_equal(push_coalesce_next_ms(co), 35000);
    assert_int_equal(push_coalesce_keys(co), 1);
    push_coalesce_free(co, NULL);
}

static int dropped_items;
static void count_drop(void *item)
{
    (void)item;
    dropped_items++;
}

static void test_coalesce_bounds(void **state)
{
    (void)state;
    int x = 0, y = 0;
    /* interval 0: nothing is ever held */
    push_coalesce *co = push_coalesce_new(0, 10);
    for (int i = 0; i < 3; i++) assert_int_equal(push_coalesce_offer(co, "1/1", (uint64_t)i), 0);
    assert_int_equal(push_coalesce_keys(co), 0);
    push_coalesce_free(co, NULL);
    /* at most max_keys windows: others go at once, untracked */
    co = push_coalesce_new(1000, 2);
    assert_int_equal(push_coalesce_offer(co, "a", 0), 0);
    assert_int_equal(push_coalesce_offer(co, "b", 0), 0);
    assert_int_equal(push_coalesce_offer(co, "c", 0), 0);
    assert_int_equal(push_coalesce_offer(co, "c", 1), 0);
    assert_int_equal(push_coalesce_keys(co), 2);
    /* hold without an open window: not kept */
    assert_ptr_equal(push_coalesce_hold(co, "c", &x), &x);
    /* a long key is cut, consistently */
    push_coalesce_free(co, NULL);
    co = push_coalesce_new(1000, 10);
    char lk[200];
    memset(lk, 'k', sizeof lk - 1);
    lk[sizeof lk - 1] = '\0';
    assert_int_equal(push_coalesce_offer(co, lk, 0), 0);
    assert_int_equal(push_coalesce_offer(co, lk, 1), 1);
    assert_null(push_coalesce_hold(co, lk, &y));
    /* free hands back what is still held */
    dropped_items = 0;
    push_coalesce_free(co, count_drop);
    assert_int_equal(dropped_items, 1);
}

static void test_coalesce_many(void **state)
{
    (void)state;
    enum { N = 5000 };
    static int items[N];
    push_coalesce *co = push_coalesce_new(100, N);
    char k[32];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "%d/%d", i / 10, i % 10);
        assert_int_equal(push_coalesce_offer(co, k, (uint64_t)i / 100), 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "%d/%d", i / 10, i % 10);
        assert_int_equal(push_coalesce_offer(co, k, 60), 1);
        assert_null(push_coalesce_hold(co, k, &items[i]));
    }
    assert_int_equal(push_coalesce_keys(co), N);
    assert_int_equal(push_coalesce_held(co), N);
    /* released in the order their windows opened, each once */
    int n = 0;
    void *it;
    while ((it = push_coalesce_due(co, 1000)) != NULL) {
        assert_ptr_equal(it, &items[n]);
        n++;
    }
    assert_int_equal(n, N);
    assert_null(push_coalesce_due(co, 2000));
    assert_int_equal(push_coalesce_keys(co), 0);
    push_coalesce_free(co, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fcm_answers),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_token_answer),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_jwt),
        cmocka_unit_test(test_utf8_cut),
        cmocka_unit_test(test_preview_labels),
        cmocka_unit_test(test_message_payload),
        cmocka_unit_test(test_message_cut),
        cmocka_unit_test(test_call_payloads),
        cmocka_unit_test(test_coalesce_window),
        cmocka_unit_test(test_coalesce_bounds),
        cmocka_unit_test(test_coalesce_many),
    };
    return cmocka_run_group_tests(tests, setup_key, teardown_key);
}
