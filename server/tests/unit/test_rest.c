/* test_rest.c — REST helpers: JSON body limits, validation errors, bearer
 * authentication, pagination, revoked sessions, ids and times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/config.h"
#include "http/http.h"
#include "http/rest.h"
#include "base/token.h"
#include "base/id.h"
#include "base/page.h"
#include "base/verr.h"
#include "base/util.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"

/* A heap request shaped like the ones http.c makes (the http_respond*
 * functions free it with everything it owns). */
static sb_req *mkreq(const char *body, const char *query, const char *auth)
{
    sb_req *r = calloc(1, sizeof *r);
    r->target = strdup("/x");
    r->path = strdup("/x");
    r->query = query ? (char *)query : "";
    r->body = strdup(body ? body : "");
    r->body_len = strlen(r->body);
    if (auth) {
        r->headers = calloc(1, sizeof *r->headers);
        r->headers[0].name = strdup("authorization");
        r->headers[0].value = strdup(auth);
        r->nheaders = 1;
    }
    strcpy(r->client_ip, "127.0.0.1");
    return r;
}

/* Frees a request that no helper answered. */
static void freereq(sb_req *r)
{
    http_respond(r, 200, NULL, NULL, 0, NULL); /* no connection: just frees */
}

static int setup(void **state)
{
    memset(&g_config, 0, sizeof g_config);
    strcpy(g_config.secret, SECRET);
    g_config.secret_len = strlen(SECRET);
    g_config.http_max_body = 1 << 20;
    g_config.access_ttl_s = 900;
    return 0;
}

/* ---- JSON bodies (the depth pre-scan: test_json_depth.c) ---- */

static void test_body_ok(void **state)
{
    sb_req *r = mkreq(" {\"a\": 1, \"b\": [true]} ", NULL, NULL);
    json_t *j = rest_body(r, true);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
    json_decref(j);
    freereq(r);

    r = mkreq("", NULL, NULL);
    j = rest_body(r, false); /* optional body: empty is {} */
    assert_non_null(j);
    assert_true(json_is_object(j) && json_object_size(j) == 0);
    json_decref(j);
    freereq(r);
}

static void test_body_refused(void **state)
{
    const char *bad[] = {
        "",                    /* required */
        "   \n",               /* only whitespace */
        "{",                   /* truncated */
        "{\"a\":1,}",          /* trailing comma */
        "[1,2]",               /* not an object */
        "\"str\"",             /* not an object */
        "{\"a\":1,\"a\":2}",   /* duplicate key */
        "{\"a\":1} {}",        /* trailing data */
        "{\"a\":\"\\u0000\"}", /* NUL in a string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sb_req *r = mkreq(bad[i], NULL, NULL);
        assert_null(rest_body(r, true)); /* answered and freed */
    }
    /* nesting past REST_MAX_DEPTH */
    char deep[2 * 40 + 8];
    size_t o = 0;
    deep[o++] = '{';
    deep[o++] = '"';
    deep[o++] = 'a';
    deep[o++] = '"';
    deep[o++] = ':';
    for (int i = 0; i < 35; i++)
        deep[o++] = '[';
    for (int i = 0; i < 35; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    deep[o] = 0;
    sb_req *r = mkreq(deep, NULL, NULL);
    assert_null(rest_body(r, true));
    /* over the size limit */
    g_config.http_max_body = 8;
    r = mkreq("{\"abc\":12345}", NULL, NULL);
    assert_null(rest_body(r, true));
    g_config.http_max_body = 1 << 20;
}

/* ---- validation ---- */

static void test_get_string(void **state)
{
    json_t *o = json_pack("{s:s,s:n,s:i,s:s,s:s,s:s}", "name", "héllo", "nul", "num", 5, "empty",
                          "", "ctrl", "a\tb", "long", "ééééé");
    verr v = {0};
    const char *s;
    assert_int_equal(verr_get_string(o, "name", VERR_REQUIRED, 1, 5, &v, &s), 1);
    assert_string_equal(s, "héllo"); /* 5 code points, 6 bytes */
    assert_int_equal(verr_get_string(o, "missing", 0, 1, 5, &v, &s), 0);
    assert_null(s);
    assert_false(verr_any(&v));

    assert_int_equal(verr_get_string(o, "nul", VERR_NULLABLE, 1, 5, &v, &s), 1);
    assert_null(s);
    assert_false(verr_any(&v));

    assert_int_equal(verr_get_string(o, "missing2", VERR_REQUIRED, 1, 5, &v, &s), -1);
    assert_int_equal(verr_get_string(o, "num", 0, 1, 5, &v, &s), -1);
    assert_int_equal(verr_get_string(o, "empty", 0, 1, 5, &v, &s), -1);
    assert_int_equal(verr_get_string(o, "ctrl", VERR_NO_CTRL, 1, 5, &v, &s), -1);
    assert_int_equal(verr_get_string(o, "long", 0, 1, 4, &v, &s), -1);
    assert_int_equal(verr_get_string(o, "nul", 0, 1, 4, &v, &s), -1);
    assert_true(verr_any(&v));
    assert_string_equal(json_string_value(json_object_get(v.details, "missing2")), "is required");
    assert_string_equal(json_string_value(json_object_get(v.details, "num")), "must be a string");
    assert_string_equal(json_string_value(json_object_get(v.details, "empty")),
                        "must not be empty");
    assert_string_equal(json_string_value(json_object_get(v.details, "ctrl")),
                        "must not contain control characters");
    assert_string_equal(json_string_value(json_object_get(v.details, "long")),
                        "must be at most 4 characters");
    /* the first message for a field wins */
    verr_add(&v, "num", "other");
    assert_string_equal(json_string_value(json_object_get(v.details, "num")), "must be a string");
    verr_clear(&v);
    assert_false(verr_any(&v));

    /* answering consumes the details */
    verr_add(&v, "x", "bad");
    rest_verr_respond(mkreq("", NULL, NULL), &v);
    assert_null(v.details);
    json_decref(o);
}

static void test_utf8_len(void **state)
{
    assert_int_equal(verr_utf8_len(""), 0);
    assert_int_equal(verr_utf8_len("abc"), 3);
    assert_int_equal(verr_utf8_len("é😀x"), 3);
}

/* ---- auth ---- */

static char *mint(const char *user, const char *sid, int64_t exp)
{
    return token_mint((const uint8_t *)SECRET, strlen(SECRET), user, sid, exp);
}

static void test_auth(void **state)
{
    int64_t now = time(NULL);
    char *t = mint("42", "7", now + 60);
    char h[512];

    snprintf(h, sizeof h, "Bearer %s", t);
    sb_req *r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), TOKEN_OK);
    assert_true(r->authed);
    assert_string_equal(r->auth.user_id, "42");
    assert_string_equal(r->auth.session_id, "7");
    freereq(r);

    snprintf(h, sizeof h, "  bearer   %s  ", t); /* scheme is case-insensitive */
    r = mkreq("", NULL, h);
    assert_true(rest_auth(r)); /* not answered: still ours */
    freereq(r);

    r = mkreq("", NULL, NULL);
    assert_int_equal(rest_auth_check(r), REST_AUTH_MISSING);
    assert_false(r->authed);
    freereq(r);
    r = mkreq("", NULL, "Bearer ");
    assert_int_equal(rest_auth_check(r), REST_AUTH_MISSING);
    freereq(r);

    snprintf(h, sizeof h, "Basic %s", t);
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), TOKEN_BAD);
    freereq(r);

    snprintf(h, sizeof h, "Bearer %sx", t); /* tampered signature */
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), TOKEN_BAD);
    freereq(r);

    char *other = token_mint((const uint8_t *)"another-secret-another-secret-xx", 32, "42", "7",
                             now + 60); /* forged with another key */
    snprintf(h, sizeof h, "Bearer %s", other);
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), TOKEN_BAD);
    freereq(r);
    free(other);

    char *old = mint("42", "7", now - 5);
    snprintf(h, sizeof h, "Bearer %s", old);
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), TOKEN_EXPIRED);
    freereq(r);
    r = mkreq("", NULL, h);
    assert_false(rest_auth(r)); /* answered 401 and freed */
    free(old);

    /* a revoked session's tokens are refused */
    char *t8 = mint("42", "8", now + 60);
    rest_revoke_session("8", now + 60);
    snprintf(h, sizeof h, "Bearer %s", t8);
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), REST_AUTH_REVOKED);
    freereq(r);
    snprintf(h, sizeof h, "Bearer %s", t); /* session 7 still fine */
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), TOKEN_OK);
    freereq(r);
    free(t8);
    free(t);
}

/* The per-thread cache of verified tokens answers exactly as verifying:
 * the same token again, a session revoked after it was cached, a token
 * that expires while cached, a one-character change. */
static void test_auth_cache(void **state)
{
    (void)state;
    int64_t now = time(NULL);
    char h[600];
    char *t = mint("43", "9", now + 2);
    snprintf(h, sizeof h, "Bearer %s", t);
    for (int i = 0; i < 3; i++) {
        sb_req *r = mkreq("", NULL, h);
        assert_int_equal(rest_auth_check(r), TOKEN_OK);
        assert_string_equal(r->auth.user_id, "43");
        assert_string_equal(r->auth.session_id, "9");
        freereq(r);
    }
    char *bad = strdup(h);
    bad[20] = bad[20] == 'A' ? 'B' : 'A'; /* inside the claims */
    sb_req *r = mkreq("", NULL, bad);
    assert_int_equal(rest_auth_check(r), TOKEN_BAD);
    freereq(r);
    free(bad);
    rest_revoke_session("9", now + 60);
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), REST_AUTH_REVOKED);
    freereq(r);
    /* cached, then past its expiry */
    char *t2 = mint("43", "10", now + 2);
    snprintf(h, sizeof h, "Bearer %s", t2);
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), TOKEN_OK);
    freereq(r);
    for (int i = 0; i < 40 && time(NULL) < now + 2; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    r = mkreq("", NULL, h);
    assert_int_equal(rest_auth_check(r), TOKEN_EXPIRED);
    freereq(r);
    free(t);
    free(t2);
}

static void test_revoked_list(void **state)
{
    int64_t now = time(NULL);
    assert_false(rest_session_revoked("s-none"));
    rest_revoke_session("s-a", now + 100);
    rest_revoke_session("s-past", now - 1); /* already over: never reported */
    assert_true(rest_session_revoked("s-a"));
    assert_false(rest_session_revoked("s-past"));
    assert_false(rest_session_revoked("s-b"));
    /* bounded: filling past the cap forgets the oldest */
    char sid[32];
    for (int i = 0; i < REST_REVOKED_MAX + 10; i++) {
        snprintf(sid, sizeof sid, "bulk-%d", i);
        rest_revoke_session(sid, now + 100);
    }
    assert_false(rest_session_revoked("s-a"));
    assert_false(rest_session_revoked("bulk-0"));
    snprintf(sid, sizeof sid, "bulk-%d", REST_REVOKED_MAX + 9);
    assert_true(rest_session_revoked(sid));
}

/* ---- pagination ---- */

static void test_cursor(void **state)
{
    char *c = page_cursor_encode("u:alice");
    assert_non_null(c);
    char *d = page_cursor_decode(c);
    assert_string_equal(d, "u:alice");
    free(d);
    free(c);
    assert_null(page_cursor_decode(""));
    assert_null(page_cursor_decode("!!!"));
    assert_null(page_cursor_decode("AA")); /* decodes to a NUL byte: not printable */
    char *ctl = page_cursor_encode("a\nb");
    assert_null(page_cursor_decode(ctl));
    free(ctl);
    char big[PAGE_CURSOR_MAX * 2];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_null(page_cursor_decode(big));
}

static void test_page_parse(void **state)
{
    verr v = {0};
    rest_page pg;
    sb_req *r = mkreq("", "", NULL);
    assert_int_equal(rest_page_parse(r, &pg, &v), 0);
    assert_int_equal(pg.limit, REST_PAGE_DEFAULT);
    assert_null(pg.cursor);
    freereq(r);

    char *c = page_cursor_encode("u:bob");
    char q[128];
    snprintf(q, sizeof q, "limit=7&cursor=%s&limit=200", c); /* last occurrence wins */
    r = mkreq("", q, NULL);
    assert_int_equal(rest_page_parse(r, &pg, &v), 0);
    assert_int_equal(pg.limit, 200);
    assert_string_equal(pg.cursor, "u:bob");
    rest_page_free(&pg);
    freereq(r);
    free(c);
    assert_false(verr_any(&v));

    const char *bad[] = {"limit=0", "limit=201",         "limit=abc",  "limit=-1", "limit=1.5",
                         "limit=",  "limit=99999999999", "cursor=%%%", "cursor=AA"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = mkreq("", bad[i], NULL);
        int rc = rest_page_parse(r, &pg, &v);
        rest_page_free(&pg);
        freereq(r);
        if (strcmp(bad[i], "cursor=%%%") == 0) { /* undecodable escape: treated as absent */
            assert_int_equal(rc, 0);
            continue;
        }
        assert_int_equal(rc, -1);
        assert_true(verr_any(&v));
        verr_clear(&v);
    }

    json_t *body = page_body(json_array(), NULL);
    assert_true(json_is_null(json_object_get(body, "next_cursor")));
    assert_true(json_is_array(json_object_get(body, "items")));
    json_decref(body);
    body = page_body(json_array(), "u:zed");
    char *dec = page_cursor_decode(json_string_value(json_object_get(body, "next_cursor")));
    assert_string_equal(dec, "u:zed");
    free(dec);
    json_decref(body);
}

/* ---- values ---- */

static void test_parse_id(void **state)
{
    assert_int_equal(id_parse("1"), 1);
    assert_int_equal(id_parse("1234567890"), 1234567890);
    assert_true(id_parse("9223372036854775807") == INT64_MAX);
    assert_int_equal(id_parse("9223372036854775808"), 0);
    assert_int_equal(id_parse("0"), 0);
    assert_int_equal(id_parse("01"), 0);
    assert_int_equal(id_parse("-1"), 0);
    assert_int_equal(id_parse("+1"), 0);
    assert_int_equal(id_parse(""), 0);
    assert_int_equal(id_parse("12a"), 0);
    assert_int_equal(id_parse(" 1"), 0);
    assert_int_equal(id_parse(NULL), 0);
}

static void test_time(void **state)
{
    char b[40];
    util_format_rfc3339_ms(0, b, sizeof b);
    assert_string_equal(b, "1970-01-01T00:00:00.000Z");
    util_format_rfc3339_ms(1795530299123LL, b, sizeof b);
    assert_string_equal(b, "2026-11-24T14:24:59.123Z");
    util_format_rfc3339_ms(1795530299007LL, b, sizeof b);
    assert_string_equal(b, "2026-11-24T14:24:59.007Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_body_ok, setup),
        cmocka_unit_test_setup(test_body_refused, setup),
        cmocka_unit_test_setup(test_get_string, setup),
        cmocka_unit_test_setup(test_utf8_len, setup),
        cmocka_unit_test_setup(test_auth, setup),
        cmocka_unit_test_setup(test_auth_cache, setup),
        cmocka_unit_test_setup(test_revoked_list, setup),
        cmocka_unit_test_setup(test_cursor, setup),
        cmocka_unit_test_setup(test_page_parse, setup),
        cmocka_unit_test_setup(test_parse_id, setup),
        cmocka_unit_test_setup(test_time, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
