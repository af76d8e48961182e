/* test_turn.c — coturn REST-API credentials (calls/turn.c): the HMAC-SHA1
 * against known vectors, the "<expiry>:<user_id>" username, the ICE server
 * list and GET /api/v1/turn's body, and the checks of SB_TURN_* at start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "base/config.h"
#include "calls/turn.h"

static void set_cfg(const char *uris, const char *secret, int64_t ttl)
{
    snprintf(g_config.turn_uris, sizeof g_config.turn_uris, "%s", uris);
    snprintf(g_config.turn_secret, sizeof g_config.turn_secret, "%s", secret);
    g_config.turn_ttl_s = ttl;
}

/* RFC 2202 test case 2 (HMAC-SHA1, key "Jefe"): effcdf6a...9c259a7c79, in base64. */
static void credential_rfc2202(void **st)
{
    char out[TURN_CREDENTIAL_LEN + 1];
    assert_int_equal(turn_credential((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", out, sizeof out), 0);
    assert_string_equal(out, "7/zfauXrL6LSdBbV8YTfnCWafHk=");
}

/* A coturn-shaped vector, computed independently with
 * printf '%s' '1700086400:42' | openssl dgst -sha1 -hmac 'north-wind-secret' -binary | base64 */
static void credential_coturn_vector(void **st)
{
    char user[64], out[TURN_CREDENTIAL_LEN + 1];
    assert_int_equal(turn_username(1700086400, "42", user, sizeof user), 0);
    assert_string_equal(user, "1700086400:42");
    assert_int_equal(turn_credential((const uint8_t *)"north-wind-secret", 17, user, out, sizeof out), 0);
    assert_string_equal(out, "rB+AgT42eBQRslkcBbXMEySUSrM=");
    /* another secret, another credential */
    char other[TURN_CREDENTIAL_LEN + 1];
    assert_int_equal(turn_credential((const uint8_t *)"north-wind-secreT", 17, user, other, sizeof other), 0);
    assert_string_not_equal(out, other);
}

static void credential_and_username_bounds(void **st)
{
    char small[TURN_CREDENTIAL_LEN];
    assert_int_equal(turn_credential((const uint8_t *)"k", 1, "u", small, sizeof small), -1);
    char user[64];
    assert_int_equal(turn_username(1, "0", user, sizeof user), -1);     /* not an id */
    assert_int_equal(turn_username(1, "x1", user, sizeof user), -1);    /* not an id */
    assert_int_equal(turn_username(1, "", user, sizeof user), -1);
    assert_int_equal(turn_username(1, "007", user, sizeof user), -1);   /* leading zero */
    assert_int_equal(turn_username(1700000000, "123", user, 8), -1);    /* too small */
    assert_int_equal(turn_username(1700000000, "123", user, 15), 0);
    assert_string_equal(user, "1700000000:123");
}

static void ice_servers_shape(void **st)
{
    set_cfg(" stun:stun.example.com:3478 , turn:127.0.0.1:3478?transport=udp,turns:t.example.com:5349", "north-wind-secret", 600);
    assert_int_equal(turn_config_check((char[128]){0}, 128), 0);
    json_t *a = turn_ice_servers_at("42", 1700000000);
    assert_int_equal(json_array_size(a), 2);
    json_t *stun = json_array_get(a, 0), *turn = json_array_get(a, 1);
    assert_int_equal(json_array_size(json_object_get(stun, "urls")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(stun, "urls"), 0)), "stun:stun.example.com:3478");
    assert_null(json_object_get(stun, "username"));
    assert_int_equal(json_array_size(json_object_get(turn, "urls")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(turn, "urls"), 0)), "turn:127.0.0.1:3478?transport=udp");
    assert_string_equal(json_string_value(json_array_get(json_object_get(turn, "urls"), 1)), "turns:t.example.com:5349");
    /* the username expires now + SB_TURN_TTL */
    assert_string_equal(json_string_value(json_object_get(turn, "username")), "1700000600:42");
    char expect[TURN_CREDENTIAL_LEN + 1];
    assert_int_equal(turn_credential((const uint8_t *)"north-wind-secret", 17, "1700000600:42", expect, sizeof expect), 0);
    assert_string_equal(json_string_value(json_object_get(turn, "credential")), expect);
    json_decref(a);

    json_t *b = turn_answer("42", 1700000000);
    assert_int_equal(json_integer_value(json_object_get(b, "ttl")), 600);
    assert_string_equal(json_string_value(json_object_get(b, "username")), "1700000600:42");
    assert_string_equal(json_string_value(json_object_get(b, "credential")), expect);
    assert_int_equal(json_array_size(json_object_get(b, "uris")), 2);
    assert_int_equal(json_array_size(json_object_get(b, "ice_servers")), 2);
    json_decref(b);
}

static void ice_servers_unconfigured_and_stun_only(void **st)
{
    set_cfg("", "", 86400);
    assert_int_equal(turn_config_check((char[128]){0}, 128), 0);
    json_t *a = turn_ice_servers("42");
    assert_int_equal(json_array_size(a), 0);
    json_decref(a);
    json_t *b = turn_answer("42", 1700000000);
    assert_true(json_is_null(json_object_get(b, "username")));
    assert_true(json_is_null(json_object_get(b, "credential")));
    assert_int_equal(json_array_size(json_object_get(b, "uris")), 0);
    json_decref(b);

    set_cfg("stun:stun.example.com", "", 86400);
    assert_int_equal(turn_config_check((char[128]){0}, 128), 0);
    a = turn_ice_servers("42");
    assert_int_equal(json_array_size(a), 1);
    assert_null(json_object_get(json_array_get(a, 0), "credential"));
    json_decref(a);
}

static void config_check_refuses(void **st)
{
    char err[128];
    static const char *const bad[] = {
        "http://x", "turn:", "turn:/x", "turn::3478", "stun:a,,stun:b", "stun:a,", ",stun:a",
        "turn:a b", "turn:\"a\"", "TURN:a", "turnx:a",
        "stun:1,stun:2,stun:3,stun:4,stun:5,stun:6,stun:7,stun:8,stun:9,stun:10,stun:11,stun:12,stun:13,stun:14,stun:15,stun:16,stun:17",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_cfg(bad[i], "s", 60);
        err[0] = '\0';
        assert_int_equal(turn_config_check(err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
    set_cfg("turn:127.0.0.1:3478", "", 60); /* turn: without a secret */
    assert_int_equal(turn_config_check(err, sizeof err), -1);
    assert_non_null(strstr(err, "SB_TURN_SECRET"));
    set_cfg("turn:127.0.0.1:3478", "s", 0);
    assert_int_equal(turn_config_check(err, sizeof err), -1);
    set_cfg("turn:127.0.0.1:3478", "s", -5);
    assert_int_equal(turn_config_check(err, sizeof err), -1);
    set_cfg("turn:127.0.0.1:3478", "s", TURN_TTL_MAX + 1LL);
    assert_int_equal(turn_config_check(err, sizeof err), -1);
    set_cfg("turn:127.0.0.1:3478", "s", TURN_TTL_MAX);
    assert_int_equal(turn_config_check(err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(credential_rfc2202),
        cmocka_unit_test(credential_coturn_vector),
        cmocka_unit_test(credential_and_username_bounds),
        cmocka_unit_test(ice_servers_shape),
        cmocka_unit_test(ice_servers_unconfigured_and_stun_only),
        cmocka_unit_test(config_check_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
