/* selftest.c — `sbload --self-test`: the codec's round trips and known
 * vectors (RFC 6455 examples, Phoenix transcript frames, token), run by
 * `make -C loadtest check` so the client codec cannot rot. */
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "phx.h"
#include "sbload.h"
#include "token.h"
#include "ws.h"

static int g_checks, g_fail;

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        g_checks++;                                                                           \
        if (!(cond)) {                                                                        \
            g_fail++;                                                                         \
            fprintf(stderr, "selftest: %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                                     \
    } while (0)

static void test_ws_rfc(void)
{
    char acc[WS_ACCEPT_LEN + 1];
    ws_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", acc);
    CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);

    /* RFC 6455 5.7: masked "Hello" with key 37 fa 21 3d. */
    static const uint8_t rfc[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t out[64];
    size_t n = ws_encode_frame(out, sizeof out, WS_OP_TEXT, "Hello", 5, 0x37fa213d);
    CHECK(n == sizeof rfc && memcmp(out, rfc, n) == 0);
    ws_frame f;
    CHECK(ws_parse_header(rfc, sizeof rfc, &f) == 1);
    CHECK(f.fin && f.opcode == WS_OP_TEXT && f.masked && f.mask_key == 0x37fa213d && f.plen == 5 &&
          f.hdr_len == 6);
    memcpy(out, rfc, sizeof rfc);
    ws_mask(out + 6, 5, f.mask_key, 0);
    CHECK(memcmp(out + 6, "Hello", 5) == 0);
    /* Unmasked server frame and a fragmented "Hel" + "lo". */
    static const uint8_t srv[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    CHECK(ws_parse_header(srv, sizeof srv, &f) == 1 && !f.masked && f.plen == 5 && f.hdr_len == 2);
    static const uint8_t frag1[] = {0x01, 0x03, 'H', 'e', 'l'}, frag2[] = {0x80, 0x02, 'l', 'o'};
    CHECK(ws_parse_header(frag1, sizeof frag1, &f) == 1 && !f.fin && f.opcode == WS_OP_TEXT);
    CHECK(ws_parse_header(frag2, sizeof frag2, &f) == 1 && f.fin && f.opcode == WS_OP_CONT);
    /* 256-byte and 64 KiB unmasked lengths from the RFC. */
    static const uint8_t l16[] = {0x82, 0x7E, 0x01, 0x00};
    CHECK(ws_parse_header(l16, 4, &f) == 1 && f.plen == 256 && f.hdr_len == 4);
    static const uint8_t l64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(ws_parse_header(l64, 10, &f) == 1 && f.plen == 65536 && f.hdr_len == 10);
}

static void test_ws_bad(void)
{
    ws_frame f;
    static const uint8_t rsv[] = {0xC1, 0x00};      /* RSV1 without extension */
    static const uint8_t op3[] = {0x83, 0x00};      /* reserved opcode */
    static const uint8_t fping[] = {0x09, 0x00};    /* fragmented ping */
    static const uint8_t bigping[] = {0x89, 0x7E, 0x00, 0x80};
    static const uint8_t nonmin16[] = {0x81, 0x7E, 0x00, 0x10};
    static const uint8_t nonmin64[] = {0x81, 0x7F, 0, 0, 0, 0, 0, 0, 0x01, 0x00};
    static const uint8_t huge[] = {0x81, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0};
    CHECK(ws_parse_header(rsv, 2, &f) == WS_BAD);
    CHECK(ws_parse_header(op3, 2, &f) == WS_BAD);
    CHECK(ws_parse_header(fping, 2, &f) == WS_BAD);
    CHECK(ws_parse_header(bigping, 4, &f) == WS_BAD);
    CHECK(ws_parse_header(nonmin16, 4, &f) == WS_BAD);
    CHECK(ws_parse_header(nonmin64, 10, &f) == WS_BAD);
    CHECK(ws_parse_header(huge, 10, &f) == WS_BAD);
    static const uint8_t part[] = {0x81, 0xFE, 0x01};
    CHECK(ws_parse_header(part, 1, &f) == WS_NEED_MORE);
    CHECK(ws_parse_header(part, 3, &f) == WS_NEED_MORE);
    static const uint8_t partmask[] = {0x81, 0x85, 0x37, 0xfa};
    CHECK(ws_parse_header(partmask, 4, &f) == WS_NEED_MORE && f.plen == 5);
}

static void test_ws_roundtrip(void)
{
    static const size_t lens[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 125, 126, 127, 65535, 65536, 70001};
    size_t maxl = 70001;
    uint8_t *src = malloc(maxl), *buf = malloc(maxl + WS_MAX_HEADER), *chunk = malloc(maxl);
    uint64_t rng = 0x1234567;
    for (size_t i = 0; i < maxl; i++) src[i] = (uint8_t)rng_next(&rng);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t len = lens[li];
        uint32_t key = (uint32_t)rng_next(&rng);
        size_t n = ws_encode_frame(buf, maxl + WS_MAX_HEADER, WS_OP_BINARY, src, len, key);
        CHECK(n > len);
        ws_frame f;
        CHECK(ws_parse_header(buf, n, &f) == 1);
        CHECK(f.masked && f.mask_key == key && f.plen == len && f.hdr_len + len == n);
        CHECK(f.hdr_len == (len < 126 ? 6u : len <= 0xffff ? 8u : 14u));
        /* The masked bytes differ from the source (for a non-zero key)... */
        if (len >= 8 && key) CHECK(memcmp(buf + f.hdr_len, src, len) != 0);
        /* ...unmasking in uneven chunks with running offsets restores it. */
        memcpy(chunk, buf + f.hdr_len, len);
        size_t off = 0, step = 1;
        while (off < len) {
            size_t k = step < len - off ? step : len - off;
            ws_mask(chunk + off, k, key, off);
            off += k;
            step = step * 3 + 1;
        }
        CHECK(len == 0 || memcmp(chunk, src, len) == 0);
        /* Every truncation of the header says "need more". */
        for (size_t cut = 0; cut < f.hdr_len; cut++) CHECK(ws_parse_header(buf, cut, &f) == 0);
    }
    CHECK(ws_encode_frame(buf, 10, WS_OP_TEXT, src, 5, 1) == 0);
    CHECK(ws_encode_frame(buf, 11, WS_OP_TEXT, src, 5, 1) == 11);
    free(src);
    free(buf);
    free(chunk);
}

static void test_handshake(void)
{
    char key[WS_KEY_LEN + 1], key2[WS_KEY_LEN + 1], req[1024], acc[WS_ACCEPT_LEN + 1];
    ws_key_from_seed(42, key);
    ws_key_from_seed(42, key2);
    CHECK(strlen(key) == WS_KEY_LEN && key[22] == '=' && key[23] == '=' && strcmp(key, key2) == 0);
    ws_key_from_seed(43, key2);
    CHECK(strcmp(key, key2) != 0);
    int n = ws_build_request(req, sizeof req, "127.0.0.1", 4000,
                             "/socket/websocket?token=abc&vsn=2.0.0", key);
    CHECK(n > 0 && strstr(req, "GET /socket/websocket?token=abc&vsn=2.0.0 HTTP/1.1\r\n") == req);
    CHECK(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n") && strstr(req, "\r\n\r\n"));
    CHECK(ws_build_request(req, 20, "h", 1, "/", key) == -1);
    ws_accept_for_key(key, acc);
    char resp[512];
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n"
                      "sec-websocket-accept: %s\r\nupgrade: websocket\r\n\r\n\x81\x02hi",
                      acc);
    int st;
    const char *a;
    size_t al;
    CHECK(ws_parse_response(resp, (size_t)rl - 10, &st, &a, &al) == 0);
    int h = ws_parse_response(resp, (size_t)rl, &st, &a, &al);
    CHECK(h == rl - 4 && st == 101 && al == WS_ACCEPT_LEN && memcmp(a, acc, al) == 0);
    const char *r403 = "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
    CHECK(ws_parse_response(r403, strlen(r403), &st, &a, &al) > 0 && st == 403 && !a);
    CHECK(ws_parse_response("garbage\r\n\r\n", 11, &st, &a, &al) == -1);
}

static void test_phx(void)
{
    char buf[512];
    int n = phx_build(buf, sizeof buf, 1, 1, "room:lobby", "phx_join", "{\"x\":1}", 7);
    CHECK(n > 0 && strcmp(buf, "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{\"x\":1}]") == 0);
    n = phx_build(buf, sizeof buf, 0, 4, "phoenix", "heartbeat", "{}", 2);
    CHECK(n > 0 && strcmp(buf, "[null,\"4\",\"phoenix\",\"heartbeat\",{}]") == 0);
    n = phx_build(buf, sizeof buf, 0, 0, "a\"b", "e\\v", "null", 4);
    CHECK(n > 0 && strcmp(buf, "[null,null,\"a\\\"b\",\"e\\\\v\",null]") == 0);
    CHECK(phx_build(buf, 20, 1, 1, "room:lobby", "phx_join", "{}", 2) == -1);

    phx_frame f;
    const char *reply =
        "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{\"joined\":\"room:lobby\"},"
        "\"status\":\"ok\"}]";
    CHECK(phx_parse(reply, strlen(reply), &f) == 0);
    uint64_t v = 0;
    span st, resp, j;
    CHECK(span_str_eq(f.event, "phx_reply") && span_str_eq(f.topic, "room:lobby"));
    CHECK(span_u64(f.ref, &v) && v == 1 && span_u64(f.join_ref, &v) && v == 1);
    CHECK(json_obj_get(f.payload, "status", &st) && span_str_eq(st, "ok"));
    CHECK(json_obj_get(f.payload, "response", &resp) && json_obj_get(resp, "joined", &j) &&
          span_str_eq(j, "room:lobby"));
    CHECK(!json_obj_get(f.payload, "nope", &st));

    const char *bc = "[null,null,\"echo:fanout\",\"shout\",{\"seq\":17,\"t\":123456789012,"
                     "\"pad\":\"x]\\\"}\",\"n\":{\"a\":[1,{\"b\":\"]\"}]}}]";
    CHECK(phx_parse(bc, strlen(bc), &f) == 0);
    CHECK(span_is_null(f.join_ref) && span_is_null(f.ref) && span_str_eq(f.event, "shout"));
    span s1, s2;
    uint64_t seq = 0, t = 0;
    CHECK(json_obj_get(f.payload, "seq", &s1) && span_u64(s1, &seq) && seq == 17);
    CHECK(json_obj_get(f.payload, "t", &s2) && span_u64(s2, &t) && t == 123456789012ull);
    CHECK(json_obj_get(f.payload, "n", &s1) && s1.n == 19);

    const char *num = "[16,16,\"room:num\",\"phx_reply\",{\"response\":{},\"status\":\"error\"}]";
    CHECK(phx_parse(num, strlen(num), &f) == 0 && span_u64(f.ref, &v) && v == 16);
    CHECK(json_obj_get(f.payload, "status", &st) && !span_str_eq(st, "ok"));

    const char *spaced = " [ null , \"4\" , \"phoenix\" , \"phx_reply\" , { \"status\" : \"ok\" } ] ";
    CHECK(phx_parse(spaced, strlen(spaced), &f) == 0 && json_obj_get(f.payload, "status", &st) &&
          span_str_eq(st, "ok"));

    const char *bad[] = {"", "hello", "{\"topic\":\"x\"}", "[1,2,3,4]", "[1,2,\"t\",\"e\",{}",
                         "[1,2,\"t\",\"e\",{]}", "[1,2,3,\"e\",{}]", "[1,2,\"t\",\"e\",{},5]",
                         "[1,2,\"t\",\"e\",\"unterminated]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(phx_parse(bad[i], strlen(bad[i]), &f) == -1);
    /* Nesting past the limit is refused, not recursed into. */
    char deep[2 * PHX_MAX_DEPTH + 64];
    int o = snprintf(deep, sizeof deep, "[1,2,\"t\",\"e\",");
    for (int i = 0; i < PHX_MAX_DEPTH + 1; i++) deep[o++] = '[';
    for (int i = 0; i < PHX_MAX_DEPTH + 1; i++) deep[o++] = ']';
    deep[o++] = ']';
    CHECK(phx_parse(deep, (size_t)o, &f) == -1);

    /* presence_diff keys back to connection ids */
    const char *diff = "{\"joins\":{\"u7\":{\"metas\":[]},\"u12\":{\"metas\":[]}},\"leaves\":{}}";
    span d = {diff, strlen(diff)}, joins, k, val;
    CHECK(json_obj_get(d, "joins", &joins));
    size_t pos = 0;
    uint64_t ids[2] = {0, 0};
    int nk = 0;
    while (json_obj_next(joins, &pos, &k, &val) && nk < 2)
        CHECK(pattern_match("u{id}", k.p, k.n, &ids[nk++]));
    CHECK(nk == 2 && ids[0] == 7 && ids[1] == 12);
    CHECK(!pattern_match("u{id}", "x7", 2, &v) && !pattern_match("u{id}", "u", 1, &v));
    CHECK(pattern_expand(buf, sizeof buf, "user:{id}/{peer}", 10) > 0 &&
          strcmp(buf, "user:10/11") == 0);
}

static void test_token(void)
{
    char tok[512];
    int n = token_mint(tok, sizeof tok, "s3cret", 6, "42", "load", 2000000000);
    /* Computed independently (Python hmac + base64.urlsafe_b64encode, '=' stripped). */
    CHECK(n > 0 && strcmp(tok, "eyJzdWIiOiI0MiIsInNpZCI6ImxvYWQiLCJleHAiOjIwMDAwMDAwMDB9."
                               "fRc8gpeIwBH5Tyq7i4-ToET7JXQRTmEnxGs6ulbG8W0") == 0);
    char b[16];
    CHECK(b64url("\xfb\xff", 2, b) == 3 && strcmp(b, "-_8") == 0);
    CHECK(token_mint(tok, 10, "s", 1, "42", "load", 1) == -1);
}

static void test_hist(void)
{
    hist *h = malloc(sizeof *h), *h2 = malloc(sizeof *h2);
    hist_init(h);
    hist_init(h2);
    for (unsigned i = 0; i < HIST_N; i++) {
        CHECK(hist_index(hist_lower(i)) == i);
        if (hist_upper(i) != UINT64_MAX) CHECK(hist_index(hist_upper(i)) == i);
        if (i + 1 < HIST_N) CHECK(hist_upper(i) + 1 == hist_lower(i + 1));
    }
    CHECK(hist_index(UINT64_MAX) == HIST_N - 1);
    for (uint64_t v = 1; v <= 100000; v++) hist_record(v <= 50000 ? h : h2, v);
    hist_merge(h, h2);
    CHECK(h->count == 100000 && h->min == 1 && h->max == 100000);
    double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (int i = 0; i < 4; i++) {
        double exact = qs[i] * 100000, got = (double)hist_quantile(h, qs[i]);
        CHECK(got >= exact && got <= exact * (1 + 1.0 / HIST_SUB) + 1);
    }
    CHECK(hist_quantile(h, 1.0) == 100000);
    hist_init(h2);
    CHECK(hist_quantile(h2, 0.99) == 0);
    hist_record(h2, 7);
    CHECK(hist_quantile(h2, 0.5) == 7 && hist_quantile(h2, 0.999) == 7);
    free(h);
    free(h2);
}

int selftest_main(void)
{
    test_ws_rfc();
    test_ws_bad();
    test_ws_roundtrip();
    test_handshake();
    test_phx();
    test_token();
    test_hist();
    if (g_fail) {
        fprintf(stderr, "selftest: %d of %d checks FAILED\n", g_fail, g_checks);
        return 1;
    }
    printf("selftest: all %d checks passed\n", g_checks);
    return 0;
}
