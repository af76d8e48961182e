/* test_phx_serial.c — Phoenix serializers against the Phoenix 1.7.24
 * transcripts (docs: /work/shared/spec/phoenix-transcripts.md) and sb_buf
 * WebSocket framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/sb_buf.h"
#include "base/json_depth.h"
#include "phoenix/phx_serial.h"

/* ---------------------------------------------------------------- helpers */

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* Checks that b is a final, unmasked WebSocket frame with `opcode` whose
 * header matches its length, and that the message is exactly want[0..n). */
static void check_frame(sb_buf *b, int opcode, const void *want, size_t n)
{
    assert_non_null(b);
    const uint8_t *h = (const uint8_t *)sb_buf_bytes(b);
    assert_int_equal(b->opcode, opcode);
    assert_int_equal(h[0], 0x80 | opcode);
    if (n < 126) {
        assert_int_equal(b->hdr, 2);
        assert_int_equal(h[1], n);
    } else if (n <= 0xffff) {
        assert_int_equal(b->hdr, 4);
        assert_int_equal(h[1], 126);
        assert_int_equal((h[2] << 8) | h[3], n);
    } else {
        assert_int_equal(b->hdr, 10);
        assert_int_equal(h[1], 127);
    }
    assert_int_equal(b->len, b->hdr + n);
    assert_int_equal(sb_buf_text_len(b), n);
    assert_memory_equal(sb_buf_text(b), want, n);
}

/* Text frame whose message is exactly `want`; drops b. */
static void expect_text(sb_buf *b, const char *want)
{
    assert_non_null(b);
    if (sb_buf_text_len(b) != strlen(want) || memcmp(sb_buf_text(b), want, strlen(want)) != 0)
        fail_msg("got  %.*s\nwant %s", (int)sb_buf_text_len(b), sb_buf_text(b), want);
    check_frame(b, 1, want, strlen(want));
    sb_buf_unref(b);
}

/* Binary frame whose message is exactly the bytes in `hex`; drops b. */
static void expect_binary(sb_buf *b, const char *hex)
{
    uint8_t want[1024];
    size_t n = unhex(hex, want);
    check_frame(b, 2, want, n);
    sb_buf_unref(b);
}

static int dec(phx_vsn vsn, const char *s, phx_msg *m)
{
    return phx_decode(vsn, false, s, strlen(s), m);
}

static int dec_bin(const char *hex, phx_msg *m)
{
    uint8_t raw[1024];
    size_t n = unhex(hex, raw);
    return phx_decode(PHX_V2, true, (const char *)raw, n, m);
}

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v) fail_msg("bad test JSON %s: %s", text, e.text);
    return v;
}

/* Asserts that a (possibly NULL) ref is the JSON value in `want` ("null" for
 * absent/NULL). */
static void assert_ref(const json_t *r, const char *want)
{
    if (!strcmp(want, "null")) {
        assert_null(r);
        return;
    }
    json_t *w = js(want);
    assert_non_null(r);
    assert_int_equal(json_typeof(r), json_typeof(w));
    assert_true(json_equal((json_t *)r, w));
    json_decref(w);
}

static void assert_payload(const phx_msg *m, const char *want)
{
    json_t *w = js(want);
    assert_non_null(m->payload);
    assert_true(json_equal(m->payload, w));
    json_decref(w);
}

static void assert_zeroed(const phx_msg *m)
{
    phx_msg z;
    memset(&z, 0, sizeof z);
    assert_memory_equal(m, &z, sizeof z);
}

/* Decodes `in`, replies with the decoded refs/topic and payload `resp`
 * ({:ok, payload} style) and checks the reply text. */
static void reply_case(phx_vsn vsn, const char *in, const char *resp_json, const char *status,
                       const char *want)
{
    phx_msg m;
    assert_int_equal(dec(vsn, in, &m), 0);
    json_t *resp = resp_json ? js(resp_json) : NULL;
    expect_text(phx_encode_reply(vsn, m.join_ref, m.ref, m.topic, status, resp), want);
    json_decref(resp);
    phx_msg_clear(&m);
}

/* -------------------------------------------------------- V2 text decode */

static void test_v2_decode_join(void **state)
{
    phx_msg m;
    assert_int_equal(dec(PHX_V2, "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{\"x\":1}]", &m), 0);
    assert_false(m.binary);
    assert_ref(m.join_ref, "\"1\"");
    assert_ref(m.ref, "\"1\"");
    assert_string_equal(m.topic, "room:lobby");
    assert_string_equal(m.event, "phx_join");
    assert_payload(&m, "{\"x\":1}");
    assert_null(m.bin);
    phx_msg_clear(&m);
    assert_zeroed(&m);
}

static void test_v2_decode_ref_kinds(void **state)
{
    phx_msg m;
    /* numbers stay numbers, null is NULL, strings stay strings */
    assert_int_equal(dec(PHX_V2, "[16,16,\"room:num\",\"phx_join\",{}]", &m), 0);
    assert_true(json_is_integer(m.join_ref));
    assert_int_equal(json_integer_value(m.join_ref), 16);
    assert_true(json_is_integer(m.ref));
    phx_msg_clear(&m);

    assert_int_equal(dec(PHX_V2, "[null,\"4\",\"phoenix\",\"heartbeat\",{}]", &m), 0);
    assert_null(m.join_ref);
    assert_ref(m.ref, "\"4\"");
    phx_msg_clear(&m);

    assert_int_equal(dec(PHX_V2, "[null,null,\"t\",\"e\",null]", &m), 0);
    assert_null(m.join_ref);
    assert_null(m.ref);
    assert_non_null(m.payload); /* payload null is a JSON null value */
    assert_true(json_is_null(m.payload));
    phx_msg_clear(&m);

    /* "16" and 16 are different refs */
    assert_int_equal(dec(PHX_V2, "[\"16\",1.5,\"t\",\"e\",{}]", &m), 0);
    assert_true(json_is_string(m.join_ref));
    assert_true(json_is_real(m.ref));
    phx_msg_clear(&m);
}

static void test_v2_decode_payload_any(void **state)
{
    const char *payloads[] = {
        "{}",   "[]",   "[1,2,3]", "\"str\"", "42",
        "-1.5", "true", "false",   "null",    "{\"a\":{\"b\":[{\"c\":null}]}}"};
    for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
        char in[256];
        snprintf(in, sizeof in, "[\"1\",\"2\",\"room:a\",\"ev\",%s]", payloads[i]);
        phx_msg m;
        assert_int_equal(dec(PHX_V2, in, &m), 0);
        assert_payload(&m, payloads[i]);
        phx_msg_clear(&m);
    }
}

static void test_v2_decode_whitespace_and_utf8(void **state)
{
    phx_msg m;
    assert_int_equal(
        dec(PHX_V2, " \n[ \"1\" , \"2\" ,\t\"room:\xc3\xa9t\xc3\xa9\" , \"ping\" , {} ] \r\n", &m),
        0);
    assert_string_equal(m.topic, "room:\xc3\xa9t\xc3\xa9");
    phx_msg_clear(&m);
    /* escaped unicode in the topic is decoded */
    assert_int_equal(dec(PHX_V2, "[\"1\",\"2\",\"room:\\u00e9\",\"ping\",{}]", &m), 0);
    assert_string_equal(m.topic, "room:\xc3\xa9");
    phx_msg_clear(&m);
}

/* ---------------------------------------------------- transcript replies */

static void test_join_reply_both(void **state)
{
    reply_case(
        PHX_V2, "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{\"x\":1}]",
        "{\"joined\":\"room:lobby\"}", "ok",
        "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{\"joined\":\"room:lobby\"},"
        "\"status\":\"ok\"}]");
    reply_case(
        PHX_V1,
        "{\"topic\":\"room:lobby\",\"event\":\"phx_join\",\"payload\":{\"x\":1},\"ref\":\"1\"}",
        "{\"joined\":\"room:lobby\"}", "ok",
        "{\"event\":\"phx_reply\",\"payload\":{\"response\":{\"joined\":\"room:lobby\"},"
        "\"status\":\"ok\"},\"ref\":\"1\",\"topic\":\"room:lobby\"}");
    /* JS client: join_ref/ref "3" */
    reply_case(
        PHX_V2, "[\"3\",\"3\",\"room:lobby\",\"phx_join\",{\"hello\":\"world\"}]",
        "{\"joined\":\"room:lobby\"}", "ok",
        "[\"3\",\"3\",\"room:lobby\",\"phx_reply\",{\"response\":{\"joined\":\"room:lobby\"},"
        "\"status\":\"ok\"}]");
}

static void test_ping_echo_utf8(void **state)
{
    phx_msg m;
    const char *in = "[\"1\",\"2\",\"room:lobby\",\"ping\",{\"n\":1,\"s\":\"h\xc3\xa9llo\"}]";
    assert_int_equal(dec(PHX_V2, in, &m), 0);
    expect_text(phx_encode_reply(PHX_V2, m.join_ref, m.ref, m.topic, "ok", m.payload),
                "[\"1\",\"2\",\"room:lobby\",\"phx_reply\",{\"response\":{\"n\":1,\"s\":"
                "\"h\xc3\xa9llo\"},\"status\":\"ok\"}]");
    phx_msg_clear(&m);

    /* \u-escaped input comes back as raw UTF-8, like Jason */
    in = "[\"1\",\"2\",\"room:lobby\",\"ping\",{\"n\":1,\"s\":\"h\\u00e9llo \\ud83d\\ude00\"}]";
    assert_int_equal(dec(PHX_V2, in, &m), 0);
    expect_text(phx_encode_reply(PHX_V2, m.join_ref, m.ref, m.topic, "ok", m.payload),
                "[\"1\",\"2\",\"room:lobby\",\"phx_reply\",{\"response\":{\"n\":1,\"s\":"
                "\"h\xc3\xa9llo \xf0\x9f\x98\x80\"},\"status\":\"ok\"}]");
    phx_msg_clear(&m);

    const char *v1 =
        "{\"topic\":\"room:lobby\",\"event\":\"ping\",\"payload\":{\"n\":1},\"ref\":\"2\"}";
    assert_int_equal(dec(PHX_V1, v1, &m), 0);
    expect_text(phx_encode_reply(PHX_V1, m.join_ref, m.ref, m.topic, "ok", m.payload),
                "{\"event\":\"phx_reply\",\"payload\":{\"response\":{\"n\":1},\"status\":\"ok\"},"
                "\"ref\":\"2\",\"topic\":\"room:lobby\"}");
    phx_msg_clear(&m);

    /* stale join_ref: the reply carries the caller's (current) join_ref */
    assert_int_equal(dec(PHX_V2, "[\"1\",\"8\",\"room:lobby\",\"ping\",{\"old\":true}]", &m), 0);
    json_t *cur = json_string("7");
    expect_text(phx_encode_reply(PHX_V2, cur, m.ref, m.topic, "ok", m.payload),
                "[\"7\",\"8\",\"room:lobby\",\"phx_reply\",{\"response\":{\"old\":true},"
                "\"status\":\"ok\"}]");
    json_decref(cur);
    phx_msg_clear(&m);
}

static void test_numeric_refs(void **state)
{
    phx_msg m;
    assert_int_equal(dec(PHX_V2, "[16,16,\"room:num\",\"phx_join\",{}]", &m), 0);
    json_t *resp = js("{\"joined\":\"room:num\"}");
    expect_text(phx_encode_reply(PHX_V2, m.join_ref, m.ref, m.topic, "ok", resp),
                "[16,16,\"room:num\",\"phx_reply\",{\"response\":{\"joined\":\"room:num\"},"
                "\"status\":\"ok\"}]");
    json_decref(resp);
    json_t *state_p = js("{\"u1\":{\"metas\":[{\"online_at\":1795515930,\"phx_ref\":"
                         "\"GOr0Oc5XNiPiDAJi\"}]}}");
    expect_text(phx_encode(PHX_V2, m.join_ref, NULL, m.topic, "presence_state", state_p),
                "[16,null,\"room:num\",\"presence_state\",{\"u1\":{\"metas\":[{\"online_at\":"
                "1795515930,\"phx_ref\":\"GOr0Oc5XNiPiDAJi\"}]}}]");
    json_decref(state_p);
    phx_msg_clear(&m);

    /* negative and large integers, and a JSON null ref object, are echoed */
    json_t *neg = json_integer(-9007199254740993LL), *jnull = json_null();
    expect_text(phx_encode_reply(PHX_V2, jnull, neg, "t", "ok", NULL),
                "[null,-9007199254740993,\"t\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    json_decref(neg);
    json_decref(jnull);
}

static void test_heartbeat_null_refs(void **state)
{
    reply_case(PHX_V2, "[null,\"4\",\"phoenix\",\"heartbeat\",{}]", NULL, "ok",
               "[null,\"4\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    reply_case(PHX_V1,
               "{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":{},\"ref\":\"4\"}", NULL,
               "ok",
               "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},\"status\":\"ok\"},\"ref\":"
               "\"4\",\"topic\":\"phoenix\"}");
    /* JS client heartbeat ref 7 */
    reply_case(PHX_V2, "[null,\"7\",\"phoenix\",\"heartbeat\",{}]", "{}", "ok",
               "[null,\"7\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
}

static void test_unmatched_topic(void **state)
{
    /* join_ref is always null in this reply; the caller passes NULL */
    phx_msg m;
    assert_int_equal(dec(PHX_V2, "[\"1\",\"5\",\"room:other\",\"ping\",{}]", &m), 0);
    json_t *why = js("{\"reason\":\"unmatched topic\"}");
    expect_text(phx_encode_reply(PHX_V2, NULL, m.ref, m.topic, "error", why),
                "[null,\"5\",\"room:other\",\"phx_reply\",{\"response\":{\"reason\":\"unmatched "
                "topic\"},\"status\":\"error\"}]");
    phx_msg_clear(&m);

    assert_int_equal(
        dec(PHX_V1, "{\"topic\":\"room:other\",\"event\":\"ping\",\"payload\":{},\"ref\":\"5\"}",
            &m),
        0);
    expect_text(phx_encode_reply(PHX_V1, m.join_ref, m.ref, m.topic, "error", why),
                "{\"event\":\"phx_reply\",\"payload\":{\"response\":{\"reason\":\"unmatched "
                "topic\"},\"status\":\"error\"},\"ref\":\"5\",\"topic\":\"room:other\"}");
    phx_msg_clear(&m);

    assert_int_equal(dec(PHX_V2, "[\"6\",\"6\",\"nochannel:x\",\"phx_join\",{}]", &m), 0);
    expect_text(phx_encode_reply(PHX_V2, NULL, m.ref, m.topic, "error", why),
                "[null,\"6\",\"nochannel:x\",\"phx_reply\",{\"response\":{\"reason\":\"unmatched "
                "topic\"},\"status\":\"error\"}]");
    phx_msg_clear(&m);
    json_decref(why);
}

static void test_phx_close_and_error(void **state)
{
    json_t *one = json_string("1"), *seven = json_string("7"), *fourteen = json_string("14");
    /* V2: ref = join_ref */
    expect_text(phx_encode(PHX_V2, one, one, "room:lobby", "phx_close", NULL),
                "[\"1\",\"1\",\"room:lobby\",\"phx_close\",{}]");
    expect_text(phx_encode(PHX_V2, seven, seven, "room:lobby", "phx_close", NULL),
                "[\"7\",\"7\",\"room:lobby\",\"phx_close\",{}]");
    expect_text(phx_encode(PHX_V2, fourteen, fourteen, "room:crash", "phx_error", NULL),
                "[\"14\",\"14\",\"room:crash\",\"phx_error\",{}]");
    /* V1: the channel's join_ref is null (V1 clients send none), and V1
     * output never carries join_ref */
    expect_text(phx_encode(PHX_V1, NULL, NULL, "room:lobby", "phx_close", NULL),
                "{\"event\":\"phx_close\",\"payload\":{},\"ref\":null,\"topic\":\"room:lobby\"}");
    expect_text(phx_encode(PHX_V1, one, NULL, "room:lobby", "phx_close", NULL),
                "{\"event\":\"phx_close\",\"payload\":{},\"ref\":null,\"topic\":\"room:lobby\"}");
    /* phx_leave: ok reply with the request's refs, then the close above */
    json_t *eleven = json_string("11");
    expect_text(phx_encode_reply(PHX_V2, seven, eleven, "room:lobby", "ok", NULL),
                "[\"7\",\"11\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    json_decref(eleven);
    json_decref(one);
    json_decref(seven);
    json_decref(fourteen);
}

static void test_broadcast_and_push_text(void **state)
{
    json_t *p = js("{\"msg\":\"hi\"}");
    expect_text(phx_encode(PHX_V2, NULL, NULL, "room:lobby", "shout", p),
                "[null,null,\"room:lobby\",\"shout\",{\"msg\":\"hi\"}]");
    expect_text(phx_encode(PHX_V1, NULL, NULL, "room:lobby", "shout", p),
                "{\"event\":\"shout\",\"payload\":{\"msg\":\"hi\"},\"ref\":null,\"topic\":"
                "\"room:lobby\"}");
    json_decref(p);

    const char *diff = "{\"joins\":{\"u1\":{\"metas\":[{\"online_at\":1795515925,\"phx_ref\":"
                       "\"GOr0OJ1gSgziDAIC\"}]}},\"leaves\":{}}";
    p = js(diff);
    char want[512];
    snprintf(want, sizeof want, "[null,null,\"room:lobby\",\"presence_diff\",%s]", diff);
    expect_text(phx_encode(PHX_V2, NULL, NULL, "room:lobby", "presence_diff", p), want);
    snprintf(want, sizeof want,
             "{\"event\":\"presence_diff\",\"payload\":%s,\"ref\":null,\"topic\":\"room:lobby\"}",
             diff);
    expect_text(phx_encode(PHX_V1, NULL, NULL, "room:lobby", "presence_diff", p), want);
    /* raw payload gives the same bytes */
    expect_text(
        phx_encode_raw(PHX_V1, NULL, NULL, "room:lobby", "presence_diff", diff, strlen(diff)),
        want);
    snprintf(want, sizeof want, "[null,null,\"room:lobby\",\"presence_diff\",%s]", diff);
    expect_text(
        phx_encode_raw(PHX_V2, NULL, NULL, "room:lobby", "presence_diff", diff, strlen(diff)),
        want);
    json_decref(p);

    json_t *one = json_string("1");
    expect_text(phx_encode_raw(PHX_V2, one, NULL, "room:lobby", "presence_state", NULL, 0),
                "[\"1\",null,\"room:lobby\",\"presence_state\",{}]");
    json_decref(one);
}

/* ------------------------------------------------------------ V1 decode */

static void test_v1_decode(void **state)
{
    phx_msg m;
    assert_int_equal(
        dec(PHX_V1,
            "{\"topic\":\"room:jr\",\"event\":\"phx_join\",\"payload\":{},\"ref\":\"10\","
            "\"join_ref\":\"10\"}",
            &m),
        0);
    assert_ref(m.join_ref, "\"10\"");
    assert_ref(m.ref, "\"10\"");
    assert_string_equal(m.topic, "room:jr");
    assert_string_equal(m.event, "phx_join");
    assert_payload(&m, "{}");
    /* the reply has no join_ref key */
    json_t *resp = js("{\"joined\":\"room:jr\"}");
    expect_text(phx_encode_reply(PHX_V1, m.join_ref, m.ref, m.topic, "ok", resp),
                "{\"event\":\"phx_reply\",\"payload\":{\"response\":{\"joined\":\"room:jr\"},"
                "\"status\":\"ok\"},\"ref\":\"10\",\"topic\":\"room:jr\"}");
    json_decref(resp);
    phx_msg_clear(&m);

    /* no join_ref; null ref; key order irrelevant; unknown keys ignored */
    assert_int_equal(
        dec(PHX_V1, "{\"ref\":null,\"payload\":[1],\"extra\":1,\"event\":\"e\",\"topic\":\"t\"}",
            &m),
        0);
    assert_null(m.join_ref);
    assert_null(m.ref);
    assert_payload(&m, "[1]");
    phx_msg_clear(&m);

    /* numeric V1 refs */
    assert_int_equal(
        dec(PHX_V1, "{\"topic\":\"t\",\"event\":\"e\",\"payload\":{},\"ref\":3,\"join_ref\":null}",
            &m),
        0);
    assert_true(json_is_integer(m.ref));
    assert_null(m.join_ref);
    expect_text(phx_encode_reply(PHX_V1, m.join_ref, m.ref, m.topic, "ok", NULL),
                "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},\"status\":\"ok\"},\"ref\":"
                "3,\"topic\":\"t\"}");
    phx_msg_clear(&m);
}

/* --------------------------------------------------------------- binary */

static void test_binary_decode_transcript(void **state)
{
    phx_msg m;
    assert_int_equal(dec_bin("0001010a043739726f6f6d3a6c6f62627970696e67010203ff", &m), 0);
    assert_true(m.binary);
    assert_true(json_is_string(m.join_ref));
    assert_string_equal(json_string_value(m.join_ref), "7");
    assert_true(json_is_string(m.ref));
    assert_string_equal(json_string_value(m.ref), "9");
    assert_string_equal(m.topic, "room:lobby");
    assert_string_equal(m.event, "ping");
    assert_null(m.payload);
    assert_int_equal(m.bin_len, 4);
    assert_memory_equal(m.bin, "\x01\x02\x03\xff", 4);
    /* reply, byte-exact (ws header 82 19 then the Phoenix bytes) */
    sb_buf *b = phx_encode_reply_binary(m.join_ref, m.ref, m.topic, "ok", m.bin, m.bin_len);
    assert_non_null(b);
    assert_int_equal(b->hdr, 2);
    assert_memory_equal(sb_buf_bytes(b), "\x82\x17", 2);
    expect_binary(b, "0101010a023739726f6f6d3a6c6f6262796f6b010203ff");
    phx_msg_clear(&m);
    assert_zeroed(&m);

    /* shout with ref "10" -> broadcast kind 2, then a TEXT reply */
    assert_int_equal(dec_bin("0001020a05373130726f6f6d3a6c6f62627973686f75740a0b", &m), 0);
    assert_string_equal(json_string_value(m.ref), "10");
    assert_string_equal(m.event, "shout");
    assert_int_equal(m.bin_len, 2);
    expect_binary(phx_encode_broadcast_binary(m.topic, m.event, m.bin, m.bin_len),
                  "020a05726f6f6d3a6c6f62627973686f75740a0b");
    expect_text(phx_encode_reply(PHX_V2, m.join_ref, m.ref, m.topic, "ok", NULL),
                "[\"7\",\"10\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    phx_msg_clear(&m);

    /* JS client frame */
    assert_int_equal(dec_bin("0001010a043336726f6f6d3a6c6f62627970696e67010203", &m), 0);
    assert_string_equal(json_string_value(m.join_ref), "3");
    assert_string_equal(json_string_value(m.ref), "6");
    expect_binary(phx_encode_reply_binary(m.join_ref, m.ref, m.topic, "ok", m.bin, m.bin_len),
                  "0101010a023336726f6f6d3a6c6f6262796f6b010203");
    phx_msg_clear(&m);
}

static void test_binary_decode_edges(void **state)
{
    phx_msg m;
    /* empty join_ref/ref become "" strings; empty data gives a non-NULL bin */
    assert_int_equal(dec_bin("000000000174", &m), 0);
    assert_true(json_is_string(m.join_ref));
    assert_string_equal(json_string_value(m.join_ref), "");
    assert_string_equal(json_string_value(m.ref), "");
    assert_string_equal(m.topic, "");
    assert_string_equal(m.event, "t");
    assert_int_equal(m.bin_len, 0);
    assert_non_null(m.bin);
    phx_msg_clear(&m);

    /* data may be any bytes, including NUL */
    assert_int_equal(dec_bin("000000000174"
                             "00ff00",
                             &m),
                     0);
    assert_int_equal(m.bin_len, 3);
    assert_memory_equal(m.bin, "\x00\xff\x00", 3);
    phx_msg_clear(&m);

    /* 255-byte topic */
    uint8_t raw[5 + 255 + 1];
    memcpy(raw, "\x00\x00\x00\xff\x01", 5);
    memset(raw + 5, 'a', 255);
    raw[260] = 'e';
    assert_int_equal(phx_decode(PHX_V2, true, (const char *)raw, sizeof raw, &m), 0);
    assert_int_equal(strlen(m.topic), 255);
    phx_msg_clear(&m);
}

static void test_binary_encode(void **state)
{
    json_t *seven = json_string("7"), *nine = json_string("9"), *n16 = json_integer(16);
    /* server push kind 0 has no ref */
    expect_binary(phx_encode_push_binary(seven, "room:lobby", "ev", "\x01\x02", 2),
                  "00010a02"
                  "37"
                  "726f6f6d3a6c6f626279"
                  "6576"
                  "0102");
    expect_binary(phx_encode_push_binary(NULL, "t", "e", NULL, 0), "0000010174"
                                                                   "65");
    /* numeric refs as decimal text */
    expect_binary(phx_encode_reply_binary(n16, n16, "t", "ok", "\xaa", 1), "01020201023136313674"
                                                                           "6f6b"
                                                                           "aa");
    /* null refs are empty */
    expect_binary(phx_encode_reply_binary(NULL, nine, "t", "error", NULL, 0), "01"
                                                                              "00"
                                                                              "01"
                                                                              "01"
                                                                              "05"
                                                                              "39"
                                                                              "74"
                                                                              "6572726f72");
    expect_binary(phx_encode_broadcast_binary("t", "e", NULL, 0), "0201017465");

    /* 255 bytes fit, 256 do not (Phoenix raises) */
    char big[257];
    memset(big, 'x', 256);
    big[256] = 0;
    assert_null(phx_encode_broadcast_binary(big, "e", "", 0));
    assert_null(phx_encode_broadcast_binary("t", big, "", 0));
    assert_null(phx_encode_push_binary(seven, big, "e", "", 0));
    assert_null(phx_encode_reply_binary(seven, nine, "t", big, "", 0));
    json_t *bigref = json_string(big);
    assert_null(phx_encode_reply_binary(bigref, nine, "t", "ok", "", 0));
    assert_null(phx_encode_reply_binary(seven, bigref, "t", "ok", "", 0));
    assert_null(phx_encode_push_binary(bigref, "t", "e", "", 0));
    json_decref(bigref);
    big[255] = 0;
    sb_buf *b = phx_encode_broadcast_binary(big, "e", "", 0);
    assert_non_null(b);
    assert_int_equal((uint8_t)sb_buf_text(b)[1], 255);
    assert_int_equal(sb_buf_text_len(b), 3 + 255 + 1);
    sb_buf_unref(b);
    /* refs of other JSON types cannot be written as text */
    json_t *obj = json_object();
    assert_null(phx_encode_reply_binary(obj, nine, "t", "ok", "", 0));
    json_decref(obj);

    /* large data: 16-bit and 64-bit frame lengths */
    size_t n = 70000;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)i;
    b = phx_encode_broadcast_binary("t", "e", data, n);
    assert_non_null(b);
    assert_int_equal(b->hdr, 10);
    assert_int_equal(sb_buf_text_len(b), n + 5);
    assert_memory_equal(sb_buf_text(b) + 5, data, n);
    sb_buf_unref(b);
    b = phx_encode_broadcast_binary("t", "e", data, 200);
    assert_non_null(b);
    assert_int_equal(b->hdr, 4);
    sb_buf_unref(b);
    free(data);
    json_decref(seven);
    json_decref(nine);
    json_decref(n16);
}

/* ------------------------------------------------------------- framing */

static void frame_len_case(size_t n, const char *hdr_hex)
{
    uint8_t want[10];
    size_t hn = unhex(hdr_hex, want);
    char *payload = malloc(n ? n : 1);
    memset(payload, 'z', n);
    sb_buf *b = sb_buf_from(payload, n);
    assert_non_null(b);
    sb_buf_frame(b, 1);
    assert_int_equal(b->hdr, hn);
    assert_int_equal(b->opcode, 1);
    assert_int_equal(b->len, hn + n);
    assert_int_equal(b->start, SB_BUF_HEADROOM - hn);
    assert_memory_equal(sb_buf_bytes(b), want, hn);
    assert_int_equal(sb_buf_text_len(b), n);
    if (n) assert_memory_equal(sb_buf_text(b), payload, n);
    sb_buf_unref(b);
    free(payload);
}

static void test_frame_headers(void **state)
{
    frame_len_case(0, "8100");
    frame_len_case(125, "817d");
    frame_len_case(126, "817e007e");
    frame_len_case(65535, "817effff");
    frame_len_case(65536, "817f0000000000010000");

    sb_buf *b = sb_buf_from("ab", 2);
    sb_buf_frame(b, 2);
    assert_memory_equal(sb_buf_bytes(b),
                        "\x82\x02"
                        "ab",
                        4);
    sb_buf_unref(b);
    b = sb_buf_from("\x03\xe8", 2);
    sb_buf_frame(b, 8);
    assert_memory_equal(sb_buf_bytes(b), "\x88\x02\x03\xe8", 4);
    sb_buf_unref(b);
}

static void test_buf_basics(void **state)
{
    sb_buf *b = sb_buf_new(0);
    assert_non_null(b);
    assert_int_equal(b->len, 0);
    assert_int_equal(b->start, SB_BUF_HEADROOM);
    for (int i = 0; i < 1000; i++)
        b = sb_buf_append(b, "0123456789", 10);
    assert_non_null(b);
    assert_int_equal(b->len, 10000);
    assert_memory_equal(sb_buf_text(b) + 9990, "0123456789", 10);
    sb_buf_ref(b);
    sb_buf_unref(b);
    assert_int_equal(atomic_load(&b->refs), 1);
    sb_buf_unref(b);
    sb_buf_unref(NULL);
}

/* ---------------------------------------------------- JSON text fidelity */

static void test_string_escaping(void **state)
{
    /* Jason escapes only " \ and control characters (\u00XX uppercase); not
     * '/', DEL or non-ASCII */
    json_t *p = json_pack("{s:s}", "s", "a\"b\\c/d\b\f\n\r\t\x01\x1f\x7f\xe2\x80\xa8z");
    expect_text(phx_encode(PHX_V2, NULL, NULL, "t", "e", p),
                "[null,null,\"t\",\"e\",{\"s\":\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001F\x7f"
                "\xe2\x80\xa8z\"}]");
    json_decref(p);
    /* keys are escaped too, and topic/event */
    p = json_pack("{s:i}", "k\"\n", 1);
    expect_text(phx_encode(PHX_V2, NULL, NULL, "a\"b", "c\\d", p),
                "[null,null,\"a\\\"b\",\"c\\\\d\",{\"k\\\"\\n\":1}]");
    json_decref(p);
    /* embedded NUL in a server-made string */
    p = json_stringn("a\0b", 3);
    expect_text(phx_encode(PHX_V2, NULL, NULL, "t", "e", p),
                "[null,null,\"t\",\"e\",\"a\\u0000b\"]");
    json_decref(p);
}

/* Our writer must equal jansson's compact dump for everything but reals. */
static void test_matches_jansson_dump(void **state)
{
    const char *docs[] = {
        "{}",
        "[]",
        "{\"a\":[1,2,{\"b\":null,\"c\":true,\"d\":false}],\"z\":\"\\u00e9\\n\",\"m\":-0}",
        "[[[[[]]]],{\"\":\"\"},\"\\\"\\\\/\",9223372036854775807,-9223372036854775808]",
        "{\"k2\":1,\"k1\":2,\"k0\":{\"y\":[],\"x\":{}}}",
        "\"just a string \\u0007\"",
        "12345",
        "null",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        json_t *v = js(docs[i]);
        char *ref = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char want[1024];
        snprintf(want, sizeof want, "[null,null,\"t\",\"e\",%s]", ref);
        expect_text(phx_encode(PHX_V2, NULL, NULL, "t", "e", v), want);
        free(ref);
        json_decref(v);
    }
}

static void real_case(double d, const char *want)
{
    json_t *v = json_real(d);
    char w[128];
    snprintf(w, sizeof w, "[null,null,\"t\",\"e\",%s]", want);
    expect_text(phx_encode(PHX_V2, NULL, NULL, "t", "e", v), w);
    json_decref(v);
}

static void test_real_format(void **state)
{
    /* Erlang io_lib_format:fwrite_g/1 (Jason's float encoding), OTP 25 */
    real_case(1.1, "1.1");
    real_case(-1.5, "-1.5");
    real_case(0.0, "0.0");
    real_case(-0.0, "-0.0");
    real_case(1.0, "1.0");
    real_case(100.0, "100.0");
    real_case(1000.0, "1.0e3");
    real_case(1234567.0, "1234567.0");
    real_case(123456.789, "123456.789");
    real_case(0.1, "0.1");
    real_case(0.001, "0.001");
    real_case(0.0001, "1.0e-4");
    real_case(0.00012, "1.2e-4");
    real_case(0.1 + 0.2, "0.30000000000000004");
    real_case(1e20, "1.0e20");
    real_case(1.5e300, "1.5e300");
    real_case(5e-324, "5.0e-324");
    real_case(1.7976931348623157e308, "1.7976931348623157e308");
    real_case(9007199254740992.0, "9.007199254740992e15");
    real_case(9007199254740991.0, "9007199254740991.0");
    /* parsed reals come back in the same form (1e2 is a float: 100.0) */
    phx_msg m;
    assert_int_equal(dec(PHX_V2, "[1,2,\"t\",\"e\",[1e2,2.50,-3.25e-7,1.1]]", &m), 0);
    expect_text(phx_encode(PHX_V2, NULL, NULL, "t", "e", m.payload),
                "[null,null,\"t\",\"e\",[100.0,2.5,-3.25e-7,1.1]]");
    phx_msg_clear(&m);
    /* real refs too, in text and binary */
    json_t *r = json_real(2.5);
    expect_text(phx_encode(PHX_V2, r, r, "t", "e", NULL), "[2.5,2.5,\"t\",\"e\",{}]");
    expect_binary(phx_encode_reply_binary(r, NULL, "t", "ok", NULL, 0), "010300010232"
                                                                        "2e35746f6b");
    json_decref(r);
}

static void test_encode_rejects_bad_text(void **state)
{
    assert_null(phx_encode(PHX_V2, NULL, NULL, NULL, "e", NULL));
    assert_null(phx_encode(PHX_V2, NULL, NULL, "t", NULL, NULL));
    assert_null(phx_encode(PHX_V2, NULL, NULL, "t\xff", "e", NULL));
    assert_null(phx_encode(PHX_V1, NULL, NULL, "t", "\xc0\x80", NULL));
    assert_null(phx_encode_reply(PHX_V2, NULL, NULL, "t", NULL, NULL));
    assert_null(phx_encode_broadcast_binary("t\xed\xa0\x80", "e", NULL, 0));
    /* a cyclic value is refused rather than recursing forever */
    json_t *a = json_array(), *b = json_array();
    json_array_append(a, b);
    json_array_append(b, a);
    assert_null(phx_encode(PHX_V2, NULL, NULL, "t", "e", a));
    json_array_clear(b);
    json_decref(a);
    json_decref(b);
}

/* ------------------------------------------------------------- malformed */

static void expect_reject(phx_vsn vsn, bool binary, const char *data, size_t len)
{
    phx_msg m;
    memset(&m, 0xab, sizeof m); /* must be zeroed on failure */
    if (phx_decode(vsn, binary, data, len, &m) != -1)
        fail_msg("accepted (vsn %d, binary %d): %.*s", vsn, binary, (int)len, data);
    assert_zeroed(&m);
}

static void reject_text(phx_vsn vsn, const char *s)
{
    expect_reject(vsn, false, s, strlen(s));
}

static void test_reject_text(void **state)
{
    const char *v2_bad[] = {
        "hello",
        "",
        " ",
        "[",
        "[]",
        "\"x\"",
        "42",
        "null",
        "[\"1\",\"2\",\"t\",\"e\"]",                      /* 4 elements */
        "[\"1\",\"2\",\"t\",\"e\",{},{}]",                /* 6 elements */
        "[\"1\",\"2\",1,\"e\",{}]",                       /* topic not a string */
        "[\"1\",\"2\",null,\"e\",{}]",                    /* topic null */
        "[\"1\",\"2\",\"t\",[],{}]",                      /* event not a string */
        "[\"1\",\"2\",\"t\",null,{}]",                    /* event null */
        "[true,\"2\",\"t\",\"e\",{}]",                    /* join_ref bool */
        "[\"1\",{},\"t\",\"e\",{}]",                      /* ref object */
        "[\"1\",[\"2\"],\"t\",\"e\",{}]",                 /* ref array */
        "[\"1\",\"2\",\"t\",\"e\",{}] x",                 /* trailing garbage */
        "[\"1\",\"2\",\"t\",\"e\",{}][]",                 /* two documents */
        "[\"1\",\"2\",\"t\",\"e\",{]",                    /* unbalanced */
        "[\"1\",\"2\",\"t\",\"e\",{}]]",                  /* extra closer */
        "[\"1\",\"2\",\"t\\u0000x\",\"e\",{}]",           /* NUL in topic */
        "[\"1\",\"2\",\"t\",\"e\",\"\\ud800\"]",          /* lone surrogate */
        "[\"1\",\"2\",\"t\",\"e\",1e999]",                /* real overflow */
        "[\"1\",\"2\",\"t\",\"e\",99999999999999999999]", /* integer overflow */
        "[\"1\",\"2\",\"t\",\"e\",NaN]",
        "[\"1\",\"2\",\"t\",\"e\",{'a':1}]",
        "{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":{},\"ref\":\"1\"}", /* V1 on V2
                                                                                         */
    };
    for (size_t i = 0; i < sizeof v2_bad / sizeof *v2_bad; i++)
        reject_text(PHX_V2, v2_bad[i]);

    const char *v1_bad[] = {
        "[null,\"1\",\"phoenix\",\"heartbeat\",{}]", /* V2 array on V1 */
        "hello",
        "",
        "\"s\"",
        "{\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}",              /* no topic */
        "{\"topic\":\"t\",\"payload\":{},\"ref\":\"1\"}",              /* no event */
        "{\"topic\":\"t\",\"event\":\"e\",\"ref\":\"1\"}",             /* no payload */
        "{\"topic\":\"t\",\"event\":\"e\",\"payload\":{}}",            /* no ref */
        "{\"topic\":1,\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}",  /* topic number */
        "{\"topic\":\"t\",\"event\":{},\"payload\":{},\"ref\":\"1\"}", /* event object */
        "{\"topic\":\"t\",\"event\":\"e\",\"payload\":{},\"ref\":false}",
        "{\"topic\":\"t\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\",\"join_ref\":[]}",
    };
    for (size_t i = 0; i < sizeof v1_bad / sizeof *v1_bad; i++)
        reject_text(PHX_V1, v1_bad[i]);

    /* invalid UTF-8 anywhere */
    reject_text(PHX_V2, "[\"1\",\"2\",\"t\",\"e\",\"\xff\"]");
    reject_text(PHX_V2, "[\"1\",\"2\",\"t\xc3\",\"e\",{}]");
    reject_text(PHX_V2, "[\"1\",\"2\",\"t\",\"e\",\"\xc0\xaf\"]");     /* overlong */
    reject_text(PHX_V2, "[\"1\",\"2\",\"t\",\"e\",\"\xed\xa0\x80\"]"); /* surrogate */
    reject_text(PHX_V1, "{\"topic\":\"t\xfe\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}");
    /* an embedded NUL byte in the frame */
    static const char nul_after[] = "[\"1\",\"2\",\"t\",\"e\",{}]\0";
    static const char nul_inside[] = "[\"1\",\"2\",\"t\0\",\"e\",{}]";
    expect_reject(PHX_V2, false, nul_after, sizeof nul_after - 1);
    expect_reject(PHX_V2, false, nul_inside, sizeof nul_inside - 1);
    /* NULL data */
    expect_reject(PHX_V2, false, NULL, 0);
    /* bad vsn */
    reject_text((phx_vsn)3, "[null,null,\"t\",\"e\",{}]");
}

static char *nested(int levels, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc(2 * (size_t)levels + n + 1);
    memset(s, '[', (size_t)levels);
    memcpy(s + levels, inner, n);
    memset(s + levels + n, ']', (size_t)levels);
    s[2 * (size_t)levels + n] = 0;
    return s;
}

static void test_depth_limit(void **state)
{
    phx_msg m;
    char buf[4096];
    /* frame array is level 1: payload may nest PHX_MAX_DEPTH - 1 levels */
    char *ok = nested(PHX_MAX_DEPTH - 1, "");
    snprintf(buf, sizeof buf, "[\"1\",\"2\",\"t\",\"e\",%s]", ok);
    assert_int_equal(dec(PHX_V2, buf, &m), 0);
    phx_msg_clear(&m);
    char *deep = nested(PHX_MAX_DEPTH, "");
    snprintf(buf, sizeof buf, "[\"1\",\"2\",\"t\",\"e\",%s]", deep);
    reject_text(PHX_V2, buf);
    snprintf(buf, sizeof buf, "{\"topic\":\"t\",\"event\":\"e\",\"ref\":null,\"payload\":%s}",
             deep);
    reject_text(PHX_V1, buf);
    snprintf(buf, sizeof buf, "{\"topic\":\"t\",\"event\":\"e\",\"ref\":null,\"payload\":%s}", ok);
    assert_int_equal(dec(PHX_V1, buf, &m), 0);
    phx_msg_clear(&m);
    free(ok);
    free(deep);

    /* objects count like arrays */
    strcpy(buf, "[\"1\",\"2\",\"t\",\"e\",");
    for (int i = 0; i < PHX_MAX_DEPTH; i++)
        strcat(buf, "{\"a\":");
    strcat(buf, "1");
    for (int i = 0; i < PHX_MAX_DEPTH; i++)
        strcat(buf, "}");
    strcat(buf, "]");
    reject_text(PHX_V2, buf);

    /* brackets inside strings (with escaped quotes) do not count */
    strcpy(buf, "[\"1\",\"2\",\"t\",\"e\",\"\\\"");
    for (int i = 0; i < 200; i++)
        strcat(buf, "[{");
    strcat(buf, "\\\\\"]");
    assert_int_equal(dec(PHX_V2, buf, &m), 0);
    assert_int_equal(json_string_length(m.payload), 1 + 400 + 1);
    phx_msg_clear(&m);

    /* 100000 '[' (and a balanced version) are rejected quickly */
    char *huge = nested(100000, "");
    clock_t t0 = clock();
    expect_reject(PHX_V2, false, huge, 100000);
    expect_reject(PHX_V2, false, huge, 200000);
    expect_reject(PHX_V1, false, huge, 200000);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_true(secs < 0.05);
    free(huge);
}

/* A payload nested to the limit decodes, and its reply, one level deeper,
 * is still written in full: the limit guards the server against what it
 * parses (client input), not what it writes for a client, whose parser
 * (phoenix.js: JSON.parse) has no such limit. phx_decode, the server's
 * reader of client input, refuses the reply text; a plain JSON reader reads
 * back the payload. (fuzz/corpus/phx/finding-reply-depth) */
static void test_reply_past_depth_limit(void **state)
{
    char buf[4096];
    char *ok = nested(PHX_MAX_DEPTH - 1, "\"x\"");
    for (int v = 0; v < 2; v++) {
        phx_vsn vsn = v ? PHX_V2 : PHX_V1;
        if (vsn == PHX_V2)
            snprintf(buf, sizeof buf, "[\"1\",\"2\",\"t\",\"e\",%s]", ok);
        else
            snprintf(buf, sizeof buf, "{\"topic\":\"t\",\"event\":\"e\",\"ref\":\"2\",\"payload\":%s}",
                     ok);
        phx_msg m;
        assert_int_equal(dec(vsn, buf, &m), 0);
        assert_int_equal(json_depth_max(buf, strlen(buf), 1000), PHX_MAX_DEPTH);
        sb_buf *b = phx_encode_reply(vsn, m.join_ref, m.ref, m.topic, "ok", m.payload);
        assert_non_null(b);
        const char *t = sb_buf_text(b);
        size_t n = sb_buf_text_len(b);
        assert_int_equal(json_depth_max(t, n, 1000), PHX_MAX_DEPTH + 1);
        expect_reject(vsn, false, t, n);
        json_error_t e;
        json_t *r = json_loadb(t, n, 0, &e);
        assert_non_null(r);
        json_t *pl = vsn == PHX_V2 ? json_array_get(r, 4) : json_object_get(r, "payload");
        assert_string_equal(json_string_value(json_object_get(pl, "status")), "ok");
        assert_true(json_equal(json_object_get(pl, "response"), m.payload));
        json_decref(r);
        sb_buf_unref(b);
        phx_msg_clear(&m);
    }
    free(ok);
}

static void test_reject_binary(void **state)
{
    uint8_t raw[64];
    const char *good = "0001010a043739726f6f6d3a6c6f62627970696e67010203ff";
    size_t n = unhex(good, raw);
    /* every truncation that cuts into the header or the fields */
    size_t fixed = 5 + 1 + 1 + 10 + 4;
    for (size_t cut = 0; cut < fixed; cut++)
        expect_reject(PHX_V2, true, (const char *)raw, cut);
    /* cutting only data is still a valid frame */
    phx_msg m;
    assert_int_equal(phx_decode(PHX_V2, true, (const char *)raw, fixed, &m), 0);
    assert_int_equal(m.bin_len, 0);
    phx_msg_clear(&m);
    /* sizes claiming more than is there */
    raw[3] = 0xff;
    expect_reject(PHX_V2, true, (const char *)raw, n);
    unhex(good, raw);
    /* kinds other than push */
    for (int k = 1; k < 256; k += (k < 4 ? 1 : 50)) {
        raw[0] = (uint8_t)k;
        expect_reject(PHX_V2, true, (const char *)raw, n);
    }
    raw[0] = 0;
    /* binary frames on V1 */
    expect_reject(PHX_V1, true, (const char *)raw, n);
    /* bad UTF-8 or NUL in text fields */
    uint8_t bad[32];
    size_t bn = unhex("000000020174ff65", bad); /* topic "t\xff" */
    expect_reject(PHX_V2, true, (const char *)bad, bn);
    bn = unhex("0000000201740065", bad); /* topic "t\0" */
    expect_reject(PHX_V2, true, (const char *)bad, bn);
    bn = unhex("010000000174"
               "65",
               bad); /* kind 1 */
    expect_reject(PHX_V2, true, (const char *)bad, bn);
    bn = unhex("00010000013174", bad); /* ok baseline: jr "1", event "t" */
    assert_int_equal(phx_decode(PHX_V2, true, (const char *)bad, bn, &m), 0);
    phx_msg_clear(&m);
    bn = unhex("00010000018074", bad); /* join_ref 0x80 */
    expect_reject(PHX_V2, true, (const char *)bad, bn);
    bn = unhex("000001000180"
               "74",
               bad); /* ref 0x80 */
    expect_reject(PHX_V2, true, (const char *)bad, bn);
    bn = unhex("00000000"
               "01"
               "c0",
               bad); /* event 0xc0 */
    expect_reject(PHX_V2, true, (const char *)bad, bn);
    /* empty */
    expect_reject(PHX_V2, true, "", 0);
    expect_reject(PHX_V2, true, NULL, 0);
}

/* Random bytes and mutations of valid frames: no crash, out zeroed on -1. */
static void test_fuzz_smoke(void **state)
{
    const char *seeds[] = {
        "[\"1\",\"2\",\"room:lobby\",\"ping\",{\"n\":1,\"s\":\"h\xc3\xa9llo\",\"a\":[1,2.5,null]}]",
        "{\"topic\":\"t\",\"event\":\"e\",\"payload\":{\"x\":[\"\\\"[\"]},\"ref\":\"1\"}",
    };
    uint8_t bin[64];
    size_t bn = unhex("0001010a043739726f6f6d3a6c6f62627970696e67010203ff", bin);
    srand(12345);
    char buf[256];
    for (int iter = 0; iter < 20000; iter++) {
        int which = iter % 3;
        size_t n;
        if (which < 2) {
            n = strlen(seeds[which]);
            memcpy(buf, seeds[which], n);
        } else {
            n = bn;
            memcpy(buf, bin, n);
        }
        int muts = 1 + rand() % 4;
        for (int k = 0; k < muts; k++) {
            int op = rand() % 3;
            size_t pos = n ? (size_t)rand() % n : 0;
            if (op == 0 && n)
                buf[pos] = (char)(rand() & 0xff);
            else if (op == 1)
                n = pos;
            else if (n < sizeof buf - 1)
                buf[n++] = "[]{}\",\\:"[rand() % 8];
        }
        for (int v = 1; v <= 2; v++) {
            for (int b = 0; b <= 1; b++) {
                char *copy = malloc(n ? n : 1); /* exact-size so ASan sees overreads */
                memcpy(copy, buf, n);
                phx_msg m;
                if (phx_decode((phx_vsn)v, b, copy, n, &m) == 0) {
                    assert_non_null(m.topic);
                    assert_non_null(m.event);
                    /* whatever decodes can be encoded back */
                    sb_buf *o = b ? phx_encode_reply_binary(m.join_ref, m.ref, m.topic, "ok", m.bin,
                                                            m.bin_len)
                                  : phx_encode_reply((phx_vsn)v, m.join_ref, m.ref, m.topic, "ok",
                                                     m.payload);
                    assert_non_null(o);
                    sb_buf_unref(o);
                    phx_msg_clear(&m);
                } else {
                    assert_zeroed(&m);
                }
                free(copy);
            }
        }
    }
}

/* A push shared by many channels: head + shared piece is byte for byte the
 * frame phx_encode_raw makes (V2), and V1's shared frame is that frame. */
static void test_push_shared(void **state)
{
    (void)state;
    static const char st[] = "{\"7\":{\"metas\":[{\"online_at\":1,\"phx_ref\":\"abc\"}]}}";
    for (size_t big = 0; big < 2; big++) { /* a 7-bit length, then a 16-bit one */
        char *payload = NULL;
        size_t plen = strlen(st);
        if (big) {
            plen = 70000;
            payload = malloc(plen);
            assert_non_null(payload);
            memset(payload, ' ', plen);
            memcpy(payload, st, strlen(st));
        }
        const char *p = big ? payload : st;
        json_t *jr = json_string("5");
        sb_buf *whole = phx_encode_raw(PHX_V2, jr, NULL, "conversation:9", "presence_state", p, plen);
        sb_buf *sh = phx_encode_push_shared(PHX_V2, "conversation:9", "presence_state", p, plen);
        sb_buf *head = phx_encode_push_head(jr, "conversation:9", "presence_state", sh);
        assert_non_null(whole);
        assert_non_null(sh);
        assert_non_null(head);
        assert_int_equal(sh->cont, 1);
        assert_int_equal(sh->hdr, 0);
        assert_int_equal(head->opcode, 1);
        assert_int_equal(head->len + sh->len, whole->len);
        assert_memory_equal(sb_buf_bytes(head), sb_buf_bytes(whole), head->len);
        assert_memory_equal(sb_buf_bytes(sh), sb_buf_bytes(whole) + head->len, sh->len);
        sb_buf *v1 = phx_encode_push_shared(PHX_V1, "conversation:9", "presence_state", p, plen);
        sb_buf *v1w = phx_encode_raw(PHX_V1, NULL, NULL, "conversation:9", "presence_state", p, plen);
        assert_non_null(v1);
        assert_non_null(v1w);
        assert_int_equal(v1->len, v1w->len);
        assert_memory_equal(sb_buf_bytes(v1), sb_buf_bytes(v1w), v1->len);
        assert_int_equal(v1->cont, 0);
        /* a topic that is not valid UTF-8 encodes nothing */
        assert_null(phx_encode_push_head(jr, "bad\xff", "presence_state", sh));
        sb_buf_unref(whole);
        sb_buf_unref(sh);
        sb_buf_unref(head);
        sb_buf_unref(v1);
        sb_buf_unref(v1w);
        json_decref(jr);
        free(payload);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_decode_join),
        cmocka_unit_test(test_v2_decode_ref_kinds),
        cmocka_unit_test(test_v2_decode_payload_any),
        cmocka_unit_test(test_v2_decode_whitespace_and_utf8),
        cmocka_unit_test(test_join_reply_both),
        cmocka_unit_test(test_ping_echo_utf8),
        cmocka_unit_test(test_numeric_refs),
        cmocka_unit_test(test_heartbeat_null_refs),
        cmocka_unit_test(test_unmatched_topic),
        cmocka_unit_test(test_phx_close_and_error),
        cmocka_unit_test(test_broadcast_and_push_text),
        cmocka_unit_test(test_v1_decode),
        cmocka_unit_test(test_binary_decode_transcript),
        cmocka_unit_test(test_binary_decode_edges),
        cmocka_unit_test(test_binary_encode),
        cmocka_unit_test(test_frame_headers),
        cmocka_unit_test(test_buf_basics),
        cmocka_unit_test(test_string_escaping),
        cmocka_unit_test(test_matches_jansson_dump),
        cmocka_unit_test(test_real_format),
        cmocka_unit_test(test_encode_rejects_bad_text),
        cmocka_unit_test(test_reject_text),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_reply_past_depth_limit),
        cmocka_unit_test(test_reject_binary),
        cmocka_unit_test(test_fuzz_smoke),
        cmocka_unit_test(test_push_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
