/* test_keys.c — the key directory's upload validation (keys/keys.c):
 * base64 lengths, bounds, ids, the normalized body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/keys.h"

static void test_b64_len(void **st)
{
    (void)st;
    assert_int_equal(keys_b64_len("AAAA"), 3);
    assert_int_equal(keys_b64_len("AAA="), 2);
    assert_int_equal(keys_b64_len("AA=="), 1);
    assert_int_equal(keys_b64_len("AAA"), 2);  /* unpadded */
    assert_int_equal(keys_b64_len("AA"), 1);
    assert_int_equal(keys_b64_len("ab+/AAAA"), 6);
    assert_int_equal(keys_b64_len("A"), -1);   /* impossible length */
    assert_int_equal(keys_b64_len("AAAAA"), -1);
    assert_int_equal(keys_b64_len(""), -1);
    assert_int_equal(keys_b64_len("===="), -1);
    assert_int_equal(keys_b64_len("AA="), -1);  /* partial padding */
    assert_int_equal(keys_b64_len("A==="), -1);
    assert_int_equal(keys_b64_len("AAAA="), -1);
    assert_int_equal(keys_b64_len("AA=A"), -1); /* padding inside */
    assert_int_equal(keys_b64_len("AA AA"), -1);
    assert_int_equal(keys_b64_len("AA-_"), -1); /* base64url is not accepted */
    assert_int_equal(keys_b64_len(NULL), -1);
}

static json_t *parse(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    return j;
}

/* Validates text; returns the normalized body or NULL with *fields set to
 * the comma-joined bad fields (static). */
static json_t *check(const char *text, const char **fields)
{
    static char buf[256];
    json_t *b = parse(text);
    verr v = {0};
    json_t *out = keys_validate_upload(b, &v);
    json_decref(b);
    buf[0] = 0;
    const char *k;
    json_t *x;
    json_object_foreach(v.details, k, x) {
        strcat(buf, k);
        strcat(buf, ",");
    }
    verr_clear(&v);
    *fields = buf;
    return out;
}

static void test_valid(void **st)
{
    (void)st;
    const char *f;
    json_t *o = check("{\"identity_key\":\"AAAA\",\"signed_prekey\":{\"id\":1,\"public_key\":\"AAAA\","
                      "\"signature\":\"AA==\"},\"extra\":1}",
                      &f);
    assert_non_null(o);
    assert_string_equal(f, "");
    assert_null(json_object_get(o, "extra"));
    assert_true(json_is_array(json_object_get(o, "one_time_prekeys")));
    assert_int_equal(json_array_size(json_object_get(o, "one_time_prekeys")), 0);
    assert_null(json_object_get(o, "last_resort_prekey"));
    json_decref(o);
    o = check("{\"identity_key\":\"AAAA\",\"signed_prekey\":{\"id\":4294967295,\"public_key\":\"AAAA\","
              "\"signature\":\"AA==\"},\"one_time_prekeys\":[{\"id\":0,\"public_key\":\"AAAA\"},"
              "{\"id\":2,\"public_key\":\"BBBB\"}],\"last_resort_prekey\":{\"id\":9,\"public_key\":\"AAAA\","
              "\"signature\":\"AAAA\"}}",
              &f);
    assert_non_null(o);
    assert_int_equal(json_array_size(json_object_get(o, "one_time_prekeys")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "last_resort_prekey"), "id")), 9);
    json_decref(o);
}

static void test_invalid(void **st)
{
    (void)st;
    const char *f;
    assert_null(check("{}", &f));
    assert_string_equal(f, "identity_key,signed_prekey,");
    assert_null(check("{\"identity_key\":\"AAAA\",\"signed_prekey\":{\"id\":4294967296,\"public_key\":"
                      "\"AAAA\",\"signature\":\"AAAA\"}}",
                      &f));
    assert_string_equal(f, "signed_prekey,");
    assert_null(check("{\"identity_key\":\"AAAA\",\"signed_prekey\":{\"id\":1,\"public_key\":\"AAAA\","
                      "\"signature\":\"AAAA\"},\"one_time_prekeys\":[{\"id\":1,\"public_key\":\"AAAA\"},"
                      "{\"id\":1,\"public_key\":\"AAAA\"}]}",
                      &f));
    assert_string_equal(f, "one_time_prekeys,");
    assert_null(check("{\"identity_key\":\"AAAA\",\"signed_prekey\":{\"id\":1,\"public_key\":\"AAAA\","
                      "\"signature\":\"AAAA\"},\"last_resort_prekey\":7}",
                      &f));
    assert_string_equal(f, "last_resort_prekey,");
    /* a key of 2049 bytes */
    size_t n = (2049 + 2) / 3 * 4;
    char *big = malloc(n + 200);
    strcpy(big, "{\"identity_key\":\"");
    size_t o = strlen(big);
    memset(big + o, 'A', n);
    strcpy(big + o + n, "\",\"signed_prekey\":{\"id\":1,\"public_key\":\"AAAA\",\"signature\":\"AAAA\"}}");
    assert_null(check(big, &f));
    assert_string_equal(f, "identity_key,");
    free(big);
    /* 101 one-time prekeys */
    char *many = malloc(101 * 40 + 200);
    strcpy(many, "{\"identity_key\":\"AAAA\",\"signed_prekey\":{\"id\":1,\"public_key\":\"AAAA\","
                 "\"signature\":\"AAAA\"},\"one_time_prekeys\":[");
    for (int i = 0; i < 101; i++)
        sprintf(many + strlen(many), "%s{\"id\":%d,\"public_key\":\"AAAA\"}", i ? "," : "", i);
    strcat(many, "]}");
    assert_null(check(many, &f));
    assert_string_equal(f, "one_time_prekeys,");
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_len),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
