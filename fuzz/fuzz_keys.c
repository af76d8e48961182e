/* fuzz_keys.c — libFuzzer target: the key directory's upload validation
 * (keys_validate_upload over any JSON, keys_b64_len over any text).
 * Whatever is accepted must be a normalized body whose keys are base64 of
 * at most KEYS_KEY_MAX_BYTES bytes and whose one-time prekeys number at
 * most KEYS_OTPK_PER_REQUEST. */
#include <stdlib.h>
#include <string.h>
#include "fuzz_env.h"
#include "keys/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    long n = keys_b64_len(s);
    if (n > (long)size) abort();
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (j) {
        verr v = {0};
        json_t *o = keys_validate_upload(j, &v);
        if (o) {
            if (verr_any(&v)) abort();
            long ik = keys_b64_len(json_string_value(json_object_get(o, "identity_key")));
            if (ik < 1 || ik > KEYS_KEY_MAX_BYTES) abort();
            if (json_array_size(json_object_get(o, "one_time_prekeys")) > KEYS_OTPK_PER_REQUEST) abort();
        } else if (!verr_any(&v)) {
            abort();
        }
        json_decref(o);
        verr_clear(&v);
        json_decref(j);
    }
    free(s);
    return 0;
}
