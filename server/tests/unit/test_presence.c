/* test_presence.c — the presence table fed by other nodes' diffs
 * (presence_apply_diff, presence_state, presence_node_down), malformed
 * diffs, and the chat id parser shared by REST and channel events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include "chat/chat.h"
#include "presence/presence.h"

static json_t *diff(const char *text)
{
    json_error_t e;
    json_t *d = json_loads(text, 0, &e);
    assert_non_null(d);
    return d;
}

static size_t metas(json_t *state, const char *key)
{
    return json_array_size(json_object_get(json_object_get(state, key), "metas"));
}

static void test_remote_diffs(void **st)
{
    const char *topic = "conversation:unit1";
    json_t *d = diff("{\"joins\":{\"7\":{\"metas\":[{\"online_at\":1,\"phx_ref\":\"r1\"},"
                     "{\"online_at\":2,\"phx_ref\":\"r2\"}]},\"8\":{\"metas\":[{\"phx_ref\":\"r3\"}]}},"
                     "\"leaves\":{}}");
    presence_apply_diff("n2", topic, d);
    json_decref(d);
    assert_int_equal(presence_count(topic), 3);
    json_t *s = presence_state(topic);
    assert_int_equal(metas(s, "7"), 2);
    assert_int_equal(metas(s, "8"), 1);
    json_decref(s);

    /* a leave names node and ref: another node's ref of the same name stays */
    d = diff("{\"joins\":{\"7\":{\"metas\":[{\"online_at\":3,\"phx_ref\":\"r1\"}]}},\"leaves\":{}}");
    presence_apply_diff("n3", topic, d);
    json_decref(d);
    d = diff("{\"joins\":{},\"leaves\":{\"7\":{\"metas\":[{\"phx_ref\":\"r1\"}]}}}");
    presence_apply_diff("n2", topic, d);
    json_decref(d);
    assert_int_equal(presence_count(topic), 3);
    s = presence_state(topic);
    assert_int_equal(metas(s, "7"), 2); /* r2 of n2, r1 of n3 */
    json_decref(s);

    /* a node going down takes all its presences, on every topic */
    presence_apply_diff("n2", "conversation:unit2",
                        d = diff("{\"joins\":{\"9\":{\"metas\":[{\"phx_ref\":\"x\"}]}},\"leaves\":{}}"));
    json_decref(d);
    presence_node_down("n2");
    assert_int_equal(presence_count(topic), 1);
    assert_int_equal(presence_count("conversation:unit2"), 0);
    presence_node_down("n3");
    assert_int_equal(presence_count(topic), 0);
    s = presence_state(topic);
    assert_int_equal(json_object_size(s), 0);
    json_decref(s);
}

static void test_malformed_diffs(void **st)
{
    const char *topic = "conversation:unit3";
    const char *bad[] = {
        "[]", "{\"joins\":[]}", "{\"joins\":{\"1\":{\"metas\":{}}}}",
        "{\"joins\":{\"1\":{\"metas\":[{\"phx_ref\":5}]}}}",
        "{\"joins\":{\"1\":{\"metas\":[{\"phx_ref\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}}}",
        "{\"joins\":{\"123456789012345678901234567890\":{\"metas\":[{\"phx_ref\":\"r\"}]}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_error_t e;
        json_t *d = json_loads(bad[i], JSON_DECODE_ANY, &e);
        presence_apply_diff("n9", topic, d);
        json_decref(d);
    }
    presence_apply_diff("", topic, NULL); /* no node: ignored */
    presence_apply_diff(NULL, topic, NULL);
    assert_int_equal(presence_count(topic), 0);
    presence_node_down("nobody");
    presence_node_down(NULL);
}

static void test_online_unknown(void **st)
{
    int64_t seen = 42;
    assert_false(presence_user_online("12345", &seen));
    assert_int_equal(seen, 42);
    assert_false(presence_user_online("a-very-long-user-id-that-is-not-ours-at-all", &seen));
}

static void test_chat_json_id(void **st)
{
    char out[24];
    json_t *v;
    assert_int_equal(chat_json_id(NULL, out), 0);
    assert_int_equal(chat_json_id(v = json_null(), out), 0);
    json_decref(v);
    assert_int_equal(chat_json_id(v = json_string("42"), out), 1);
    assert_string_equal(out, "42");
    json_decref(v);
    assert_int_equal(chat_json_id(v = json_integer(7), out), 1);
    assert_string_equal(out, "7");
    json_decref(v);
    const char *bad[] = {"", "0", "-1", "01", "abc", "1e3", "99999999999999999999999", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chat_json_id(v = json_string(bad[i]), out), -1);
        json_decref(v);
    }
    assert_int_equal(chat_json_id(v = json_integer(0), out), -1);
    json_decref(v);
    assert_int_equal(chat_json_id(v = json_real(1.5), out), -1);
    json_decref(v);
    assert_int_equal(chat_json_id(v = json_true(), out), -1);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_diffs),
        cmocka_unit_test(test_malformed_diffs),
        cmocka_unit_test(test_online_unknown),
        cmocka_unit_test(test_chat_json_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
