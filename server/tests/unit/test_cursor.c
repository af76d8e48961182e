/* test_cursor.c — signed sync cursors: round trip, binding to the user,
 * tamper evidence, canonical form, ordering of positions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/cursor.h"
#include "base/token.h"
#include "base/b64url.h"

static const uint8_t SECRET[] = "0123456789abcdef0123456789abcdef";
#define SL (sizeof SECRET - 1)

static int dec(const char *user, const char *c, sync_pos *p, int64_t *t)
{
    return cursor_decode(SECRET, SL, user, c, strlen(c), p, t);
}

static void round_trip(void **state)
{
    (void)state;
    sync_pos cases[] = {{0, 0}, {1, 1}, {1204, 5}, {UINT64_MAX, INT64_MAX}, {1ull << 40, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char c[CURSOR_LEN + 1];
        cursor_encode(SECRET, SL, "165", cases[i], 1800000000, c);
        assert_int_equal(strlen(c), CURSOR_LEN);
        for (const char *q = c; *q; q++)
            assert_true((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
                        (*q >= '0' && *q <= '9') || *q == '-' || *q == '_');
        sync_pos p;
        int64_t t = 0;
        if (cases[i].id < 0) continue;
        assert_int_equal(dec("165", c, &p, &t), CURSOR_OK);
        assert_true(p.tx == cases[i].tx);
        assert_true(p.id == cases[i].id);
        assert_true(t == 1800000000);
        sync_pos peek;
        assert_int_equal(cursor_peek(c, strlen(c), &peek), 0);
        assert_int_equal(sync_pos_cmp(peek, cases[i]), 0);
    }
}

static void bound_to_user_and_secret(void **state)
{
    (void)state;
    char c[CURSOR_LEN + 1];
    cursor_encode(SECRET, SL, "165", (sync_pos){1000, 7}, 1800000000, c);
    sync_pos p;
    assert_int_equal(dec("166", c, &p, NULL), CURSOR_BAD);  /* another user's */
    assert_int_equal(dec("1650", c, &p, NULL), CURSOR_BAD); /* no prefix confusion */
    assert_int_equal(dec("16", c, &p, NULL), CURSOR_BAD);
    const uint8_t other[] = "0123456789abcdef0123456789abcdeX";
    assert_int_equal(cursor_decode(other, sizeof other - 1, "165", c, strlen(c), &p, NULL), CURSOR_BAD);
    assert_int_equal(dec("165", c, &p, NULL), CURSOR_OK);
}

static void tamper_evident(void **state)
{
    (void)state;
    char c[CURSOR_LEN + 1];
    cursor_encode(SECRET, SL, "42", (sync_pos){123456, 99}, 1800000000, c);
    /* every single-character change is refused */
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < CURSOR_LEN; i++) {
        for (size_t j = i % 7; j < 64; j += 7) {
            if (alphabet[j] == c[i]) continue;
            char d[CURSOR_LEN + 1];
            memcpy(d, c, sizeof d);
            d[i] = alphabet[j];
            assert_int_equal(dec("42", d, NULL, NULL), CURSOR_BAD);
        }
    }
    /* forged: a position re-packed with a made-up MAC */
    uint8_t raw[37] = {1};
    raw[8] = 0x10; /* tx */
    char *forged = b64url_encode(raw, sizeof raw);
    assert_non_null(forged);
    assert_int_equal(dec("42", forged, NULL, NULL), CURSOR_BAD);
    free(forged);
    /* wrong lengths, junk, empty, padding */
    assert_int_equal(dec("42", "", NULL, NULL), CURSOR_BAD);
    assert_int_equal(dec("42", "abc", NULL, NULL), CURSOR_BAD);
    char longer[CURSOR_LEN + 2];
    snprintf(longer, sizeof longer, "%sA", c);
    assert_int_equal(dec("42", longer, NULL, NULL), CURSOR_BAD);
    char pad[CURSOR_LEN + 1];
    memcpy(pad, c, sizeof pad);
    pad[CURSOR_LEN - 1] = '=';
    assert_int_equal(dec("42", pad, NULL, NULL), CURSOR_BAD);
    assert_int_equal(cursor_decode(SECRET, SL, NULL, c, strlen(c), NULL, NULL), CURSOR_BAD);
    assert_int_equal(dec("42", c, NULL, NULL), CURSOR_OK);
}

static void ordering(void **state)
{
    (void)state;
    assert_int_equal(sync_pos_cmp((sync_pos){1, 5}, (sync_pos){2, 0}), -1);
    assert_int_equal(sync_pos_cmp((sync_pos){2, 0}, (sync_pos){1, 5}), 1);
    assert_int_equal(sync_pos_cmp((sync_pos){2, 3}, (sync_pos){2, 4}), -1);
    assert_int_equal(sync_pos_cmp((sync_pos){2, 4}, (sync_pos){2, 4}), 0);
    /* a horizon (h, 0) is after every event of a smaller tx, before every event of tx h */
    assert_int_equal(sync_pos_cmp((sync_pos){9, INT64_MAX}, (sync_pos){10, 0}), -1);
    assert_int_equal(sync_pos_cmp((sync_pos){10, 1}, (sync_pos){10, 0}), 1);
}

static void parse_u64(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(cursor_parse_u64("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(cursor_parse_u64("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(cursor_parse_u64("18446744073709551616", &v), -1);
    assert_int_equal(cursor_parse_u64("", &v), -1);
    assert_int_equal(cursor_parse_u64("-1", &v), -1);
    assert_int_equal(cursor_parse_u64("12a", &v), -1);
    assert_int_equal(cursor_parse_u64(NULL, &v), -1);
}

/* Page cursors (version 2): each decodes to its position and issue time,
 * equals what another call gives for the same inputs, is bound to the user
 * and the secret, and refuses any single-character change; batches longer
 * than one AES call (64) are whole. */
static void many(void **state)
{
    (void)state;
    enum { N = 150 };
    sync_pos pos[N];
    char all[N * CURSOR_LEN];
    char text[N][CURSOR_LEN + 1];
    for (int i = 0; i < N; i++) pos[i] = (sync_pos){1000 + (uint64_t)i * 7, i % 3 ? i : 0};
    pos[0] = (sync_pos){UINT64_MAX, INT64_MAX};
    assert_int_equal(cursor_encode_many(SECRET, SL, "165", pos, N, 1800000000, all), 0);
    for (int i = 0; i < N; i++) {
        memcpy(text[i], all + i * CURSOR_LEN, CURSOR_LEN);
        text[i][CURSOR_LEN] = 0;
    }
    for (int i = 0; i < N; i++) {
        sync_pos p;
        int64_t t = 0;
        assert_int_equal(dec("165", text[i], &p, &t), CURSOR_OK);
        assert_int_equal(sync_pos_cmp(p, pos[i]), 0);
        assert_true(t == 1800000000);
        sync_pos peek;
        assert_int_equal(cursor_peek(text[i], CURSOR_LEN, &peek), 0);
        assert_int_equal(sync_pos_cmp(peek, pos[i]), 0);
        assert_int_equal(dec("166", text[i], &p, NULL), CURSOR_BAD);
        assert_int_equal(dec("1650", text[i], &p, NULL), CURSOR_BAD);
        /* not the version-1 cursor of the same position */
        char v1[CURSOR_LEN + 1];
        cursor_encode(SECRET, SL, "165", pos[i], 1800000000, v1);
        assert_true(memcmp(v1, text[i], CURSOR_LEN) != 0);
    }
    /* the same inputs, one at a time: the same text */
    char one[CURSOR_LEN + 1] = {0};
    assert_int_equal(cursor_encode_many(SECRET, SL, "165", &pos[100], 1, 1800000000, one), 0);
    assert_memory_equal(one, text[100], CURSOR_LEN);
    /* another issue time: another tag */
    assert_int_equal(cursor_encode_many(SECRET, SL, "165", &pos[100], 1, 1800000001, one), 0);
    assert_true(memcmp(one + 28, text[100] + 28, CURSOR_LEN - 28) != 0);
    const uint8_t other[] = "0123456789abcdef0123456789abcdeX";
    assert_int_equal(cursor_decode(other, sizeof other - 1, "165", text[7], CURSOR_LEN, NULL, NULL),
                     CURSOR_BAD);
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < CURSOR_LEN; i++) {
        for (size_t j = i % 5; j < 64; j += 5) {
            if (alphabet[j] == text[7][i]) continue;
            char d[CURSOR_LEN + 1];
            memcpy(d, text[7], sizeof d);
            d[i] = alphabet[j];
            assert_int_equal(dec("165", d, NULL, NULL), CURSOR_BAD);
        }
    }
    /* a version-1 cursor relabelled as version 2 (and back) is refused */
    char v1[CURSOR_LEN + 1];
    cursor_encode(SECRET, SL, "165", pos[7], 1800000000, v1);
    uint8_t raw[40];
    size_t rl = sizeof raw;
    assert_int_equal(b64url_decode(v1, CURSOR_LEN, raw, &rl), 0);
    raw[0] = 2;
    char *re = b64url_encode(raw, 37);
    assert_int_equal(dec("165", re, NULL, NULL), CURSOR_BAD);
    free(re);
    rl = sizeof raw;
    assert_int_equal(b64url_decode(text[7], CURSOR_LEN, raw, &rl), 0);
    raw[0] = 1;
    re = b64url_encode(raw, 37);
    assert_int_equal(dec("165", re, NULL, NULL), CURSOR_BAD);
    free(re);
    /* version 3 does not exist */
    raw[0] = 3;
    re = b64url_encode(raw, 37);
    assert_int_equal(dec("165", re, NULL, NULL), CURSOR_BAD);
    free(re);
    /* a user id longer than an id can be */
    char longid[TOKEN_MAX_ID + 2];
    memset(longid, '7', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    assert_int_equal(cursor_encode_many(SECRET, SL, longid, pos, 1, 1800000000, one), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),       cmocka_unit_test(bound_to_user_and_secret),
        cmocka_unit_test(tamper_evident),   cmocka_unit_test(ordering),
        cmocka_unit_test(parse_u64),        cmocka_unit_test(many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
