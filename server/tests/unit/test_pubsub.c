/* Unit tests for pubsub.c: opaque subscribers of several delivery classes
 * on one topic (one call per run of same-class subscribers, every
 * subscriber exactly once, in subscription order), the encoder's encodings
 * reaching the delivery, swap-removal on unsubscribe, and the per-reactor
 * table in its reactor slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bus/pubsub.h"
#include "net/reactor.h"

typedef struct fake_sub {
    pubsub_sub sub;
    char name;
} fake_sub;

static reactor g_r;
static int g_cls_a, g_cls_b;
static char g_log[256];  /* per call: "<class>(<names>)" */
static char g_text[256]; /* enc[0] as the last delivery saw it */

static uint32_t deliver_run(pubsub_sub *const *subs, uint32_t n, const pubsub_msg *m, char cls)
{
    size_t o = strlen(g_log);
    g_log[o++] = cls;
    g_log[o++] = '(';
    uint32_t i = 0;
    for (; i < n && subs[i]->cls == subs[0]->cls; i++)
        g_log[o++] = ((fake_sub *)((char *)subs[i] - offsetof(fake_sub, sub)))->name;
    g_log[o++] = ')';
    g_log[o] = 0;
    if (m->enc[0]) snprintf(g_text, sizeof g_text, "%.*s", (int)m->enc[0]->len, sb_buf_bytes(m->enc[0]));
    return i;
}

static uint32_t deliver_a(pubsub_sub *const *s, uint32_t n, const pubsub_msg *m)
{
    return deliver_run(s, n, m, 'A');
}

static uint32_t deliver_b(pubsub_sub *const *s, uint32_t n, const pubsub_msg *m)
{
    return deliver_run(s, n, m, 'B');
}

/* "<event>:<payload>" in enc[0], nothing for binary messages */
static int encode(pubsub_msg *m, const void *payload, size_t len)
{
    if (m->binary) return 0;
    char tmp[256];
    int n = snprintf(tmp, sizeof tmp, "%s:%.*s", m->event, (int)len, (const char *)payload);
    m->enc[0] = sb_buf_from(tmp, (size_t)n);
    return m->enc[0] ? 0 : -1;
}

static void broadcast(const char *topic)
{
    g_log[0] = g_text[0] = 0;
    pubsub_msg *m = pubsub_msg_text(topic, "ev", "{\"x\":1}", 7, NULL);
    assert_non_null(m);
    assert_string_equal(m->payload_json, "{\"x\":1}");
    pubsub_deliver_node(m);
}

static void test_runs_of_classes(void **st)
{
    fake_sub s[5] = {{.name = 'a'}, {.name = 'b'}, {.name = 'c'}, {.name = 'd'}, {.name = 'e'}};
    int cls[5] = {g_cls_a, g_cls_a, g_cls_b, g_cls_a, g_cls_a};
    for (int i = 0; i < 5; i++) {
        s[i].sub.cls = (uint8_t)cls[i];
        assert_int_equal(pubsub_subscribe(&g_r, "room:1", &s[i].sub), 0);
        assert_true(s[i].sub.subscribed);
    }
    assert_int_equal(pubsub_local_count("room:1"), 5);
    assert_int_equal(pubsub_local_count("room:2"), 0);
    broadcast("room:1");
    assert_string_equal(g_log, "A(ab)B(c)A(de)");
    assert_string_equal(g_text, "ev:{\"x\":1}");
    broadcast("room:2"); /* nobody */
    assert_string_equal(g_log, "");

    /* the last subscriber takes the removed one's place */
    pubsub_unsubscribe(&g_r, "room:1", &s[1].sub);
    assert_false(s[1].sub.subscribed);
    pubsub_unsubscribe(&g_r, "room:1", &s[1].sub); /* twice: nothing */
    assert_int_equal(pubsub_local_count("room:1"), 4);
    broadcast("room:1");
    assert_string_equal(g_log, "A(ae)B(c)A(d)");
    for (int i = 0; i < 5; i++) pubsub_unsubscribe(&g_r, "room:1", &s[i].sub);
    assert_int_equal(pubsub_local_count("room:1"), 0);
    broadcast("room:1");
    assert_string_equal(g_log, "");
}

static void test_many_subscribers_and_topics(void **st)
{
    enum { N = 300 };
    fake_sub *s = calloc(N, sizeof *s);
    char topic[32];
    for (int i = 0; i < N; i++) {
        s[i].name = 'x';
        s[i].sub.cls = (uint8_t)g_cls_a;
        assert_int_equal(pubsub_subscribe(&g_r, "big", &s[i].sub), 0);
    }
    fake_sub *solo = calloc(N, sizeof *solo);
    /* one subscriber each, as user:<id> topics */
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof topic, "user:%d", i);
        solo[i].name = 'u';
        solo[i].sub.cls = (uint8_t)g_cls_b;
        assert_int_equal(pubsub_subscribe(&g_r, topic, &solo[i].sub), 0);
    }
    assert_int_equal(pubsub_local_count("big"), N);
    assert_int_equal(pubsub_local_count("user:299"), 1);
    broadcast("user:17");
    assert_string_equal(g_log, "B(u)");
    /* shrink by unsubscribing most (the array is reallocated smaller) */
    for (int i = 0; i < N - 3; i++) pubsub_unsubscribe(&g_r, "big", &s[i].sub);
    broadcast("big");
    assert_string_equal(g_log, "A(xxx)");
    for (int i = N - 3; i < N; i++) pubsub_unsubscribe(&g_r, "big", &s[i].sub);
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof topic, "user:%d", i);
        pubsub_unsubscribe(&g_r, topic, &solo[i].sub);
        assert_int_equal(pubsub_local_count(topic), 0);
    }
    free(s);
    free(solo);
}

static void test_binary_message(void **st)
{
    fake_sub s = {.name = 'q'};
    s.sub.cls = (uint8_t)g_cls_b;
    assert_int_equal(pubsub_subscribe(&g_r, "bin", &s.sub), 0);
    g_log[0] = g_text[0] = 0;
    pubsub_msg *m = pubsub_msg_binary("bin", "ev", "\x01\x02", 2, NULL);
    assert_non_null(m);
    assert_true(m->binary);
    assert_null(m->payload_json);
    pubsub_deliver_node(m);
    assert_string_equal(g_log, "B(q)");
    assert_string_equal(g_text, ""); /* the encoder made nothing for it */
    pubsub_unsubscribe(&g_r, "bin", &s.sub);
}

int main(void)
{
    if (pubsub_register() != 0) return 1;
    g_cls_a = pubsub_class_new(deliver_a);
    g_cls_b = pubsub_class_new(deliver_b);
    if (g_cls_a < 1 || g_cls_b < 1 || g_cls_a == g_cls_b) return 1;
    pubsub_set_encoder(encode);
    if (uv_loop_init(&g_r.loop) != 0 || reactor_init_modules(&g_r) != 0) return 1;
    reactor_adopt(&g_r);
    reactor_all = &g_r;
    reactor_count = 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_of_classes),
        cmocka_unit_test(test_many_subscribers_and_topics),
        cmocka_unit_test(test_binary_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
