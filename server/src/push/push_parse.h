/* push_parse.h — the pure parsers of push (docs/push.md): the service-account
 * key file, the token endpoint's answer, FCM's answers and Retry-After.
 * No I/O; each is fuzzed (fuzz/fuzz_push.c). */
#ifndef SB_PUSH_PARSE_H
#define SB_PUSH_PARSE_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

/* A Google service-account key (the fields push uses). */
typedef struct push_parse_key_t {
    char project_id[128];
    char client_email[256];
    char private_key_id[128]; /* "" when absent */
    char token_uri[512];
    EVP_PKEY *pkey;           /* the RSA private key (owned) */
} push_parse_key_t;

/* Parses a service-account JSON key file's text (len bytes). Returns 0 with
 * *out filled (free with push_parse_key_free), or -1 with a message naming
 * the problem in err (nothing to free). */
int push_parse_key(const char *text, size_t len, push_parse_key_t *out, char *err, size_t errlen);
/* Frees what push_parse_key allocated in k. */
void push_parse_key_free(push_parse_key_t *k);

/* Parses a Retry-After value (delta-seconds or an HTTP date, RFC 9110
 * §10.2.3) of len bytes at now_ms (Unix ms). Returns the delay in ms (0 for
 * a date in the past, capped at one day), or -1 when malformed. */
int64_t push_parse_retry_after(const char *v, size_t len, int64_t now_ms);

/* Parses the token endpoint's JSON answer: access_token (copied into tok,
 * cap bytes with NUL) and expires_in seconds. Returns 0, or -1 when
 * malformed (missing, wrong type, too long, expires_in not in 1..86400). */
int push_parse_token_answer(const char *body, size_t len, char *tok, size_t cap,
                            int64_t *expires_in_s);

/* What an FCM v1 answer means for the push and its device. */
typedef enum push_parse_outcome {
    PUSH_OK = 0,       /* 200 with a message name */
    PUSH_DEAD_TOKEN,   /* 404 / UNREGISTERED, or 400 INVALID_ARGUMENT naming the token: delete the device */
    PUSH_BAD_REQUEST,  /* any other 400: dropped, device kept */
    PUSH_FORBIDDEN,    /* 403 (SENDER_ID_MISMATCH, PERMISSION_DENIED) */
    PUSH_AUTH,         /* 401: the access token is no longer good: fetch another, send again */
    PUSH_RETRY,        /* 429, 5xx: retry with backoff */
    PUSH_MALFORMED,    /* a 200 whose body is not an FCM answer */
    PUSH_OTHER,        /* any other status */
    PUSH_OUTCOME_N
} push_parse_outcome;

/* Classifies an FCM v1 answer (HTTP status, body of len bytes). The FCM
 * errorCode (or the status name) is copied into code (cap bytes; "" when
 * none). Never fails: a body it cannot read classifies by status alone. */
push_parse_outcome push_parse_fcm_answer(long status, const char *body, size_t len, char *code,
                                         size_t cap);

#endif
