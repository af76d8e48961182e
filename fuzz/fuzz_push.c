/* fuzz_push.c — libFuzzer target: push's parsers (push_parse.h) and the
 * preview cut (push_payload.h).
 * Input: byte 0 selects what the rest is:
 *   0: a service-account key file (push_parse_key; what it accepts has an
 *      RSA key and non-empty fields);
 *   1: a Retry-After value (push_parse_retry_after: -1 or 0..one day);
 *   2: the token endpoint's answer (push_parse_token_answer);
 *   3: byte 1 picks an HTTP status, the rest is an FCM answer body
 *      (push_parse_fcm_answer: always an outcome, a NUL-terminated code);
 *   other: a message body for a message push (push_payload_message: the
 *      payload within 4 KB, the preview cut on a character boundary). */
#include <stdlib.h>
#include <string.h>
#include "fuzz_env.h"
#include "push/push_parse.h"
#include "push/push_payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0]) {
    case 0: {
        push_parse_key_t k;
        char err[256];
        if (push_parse_key(p, n, &k, err, sizeof err) == 0) {
            if (!k.pkey || !k.project_id[0] || !k.client_email[0] || !k.token_uri[0]) abort();
            push_parse_key_free(&k);
        } else if (!err[0]) {
            abort();
        }
        break;
    }
    case 1: {
        int64_t d = push_parse_retry_after(p, n, 1700000000000LL);
        if (d < -1 || d > 86400000LL) abort();
        break;
    }
    case 2: {
        char tok[256];
        int64_t e = 0;
        if (push_parse_token_answer(p, n, tok, sizeof tok, &e) == 0 && (e < 1 || e > 86400 || strlen(tok) >= sizeof tok)) abort();
        break;
    }
    case 3: {
        if (n < 1) return 0;
        static const long st[] = {200, 400, 401, 403, 404, 429, 500, 503, 302, 418};
        char code[64];
        push_parse_outcome o = push_parse_fcm_answer(st[(uint8_t)p[0] % 10], p + 1, n - 1, code, sizeof code);
        if ((int)o < 0 || o >= PUSH_OUTCOME_N || memchr(code, 0, sizeof code) == NULL) abort();
        break;
    }
    default: {
        char *body = malloc(n + 1);
        if (!body) return 0;
        memcpy(body, p, n);
        body[n] = '\0';
        push_payload_msg m = {.token = "tok", .conversation_id = "1", .message_id = "2", .sender_id = "3",
                              .sender_name = "S", .seq = 4, .preview = body, .alert = true};
        char *s = push_payload_message(&m);
        if (s && strlen(s) > 3 + PUSH_PAYLOAD_MAX) abort();
        free(s);
        size_t cut = push_payload_utf8_cut(body, strlen(body), strlen(body) / 2);
        if (cut > 0 && cut < strlen(body) && ((unsigned char)body[cut] & 0xC0) == 0x80) abort();
        free(body);
        break;
    }
    }
    return 0;
}
