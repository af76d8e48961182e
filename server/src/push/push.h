/* push.h — push notifications through FCM HTTP v1 (docs/push.md).
 *
 * Off unless SB_FCM_CREDENTIALS names a service-account key. Runs on a
 * thread and libuv loop of its own: the FCM client (push_http.c: libcurl multi,
 * HTTP/2), the OAuth2 access token (an RS256 JWT exchanged at the key's
 * token_uri, cached until shortly before it expires, fetched again on a
 * 401), a bounded queue of pending pushes with retries, and the decisions
 * (who gets what), with one message push per conversation and device per
 * SB_FCM_ALERT_INTERVAL_MS (push_coalesce.h). The hooks below are the only
 * things other threads call: each copies what it needs and posts it to that loop, so a push never
 * delays delivery or an acknowledgement. */
#ifndef SB_PUSH_H
#define SB_PUSH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "calls/call_push.h"

/* Counters for /metrics (monotonic, but queued: a gauge). */
typedef struct push_stats {
    uint64_t sent;                /* FCM accepted (200) */
    uint64_t failed_dead_token;   /* 404 UNREGISTERED / 400 naming the token */
    uint64_t failed_bad_request;  /* any other 400 */
    uint64_t failed_forbidden;    /* 403 */
    uint64_t failed_auth;         /* 401 again after a fresh token */
    uint64_t failed_malformed;    /* an answer that is not FCM's */
    uint64_t failed_other;        /* any other status */
    uint64_t failed_exhausted;    /* 429/5xx/network: out of tries or time */
    uint64_t retried;             /* retries scheduled */
    uint64_t dropped;             /* dropped from a full queue */
    uint64_t tokens_deleted;      /* devices deleted for a dead token */
    uint64_t oauth_fetches;       /* access tokens obtained */
    uint64_t oauth_failures;      /* token requests that failed */
    uint64_t latency_ms_sum;      /* sum of request latencies (answered requests) */
    uint64_t latency_count;       /* answered requests */
    uint64_t latency_ms_max;
    uint64_t unconfirmed;         /* no answer, at or below a GOAWAY's last-stream-id: not resent */
    uint64_t refused;             /* not processed by FCM (REFUSED_STREAM, above last-stream-id): resent */
    uint64_t coalesced;           /* held messages replaced by a newer one of the same conversation (never decided) */
    uint64_t skipped_online;      /* recipients of a held message not pushed: online when it was decided */
    uint64_t queued;              /* pushes waiting now (gauge) */
    uint64_t held;                /* messages held for the end of their conversation's interval now (gauge) */
} push_stats;

/* A snapshot of the counters. Thread-safe. */
void push_stats_get(push_stats *out);

/* Reads SB_FCM_CREDENTIALS (g_config): without it push stays off (returns
 * 0); with it, loads and checks the key file. Returns 0, or -1 with a
 * message naming the problem in err. Call once before the reactors start. */
int push_configure(char *err, size_t errlen);
/* True when push is on (after push_configure). */
int push_enabled(void);
/* Registers push's reactor hooks (before reactor_start_all). Returns 0 or
 * -1. A no-op returning 0 when push is off. */
int push_register(void);

/* The chat hook (chat_push.h): `answer` is the text of a committed send's
 * answer ({"message":{...},"duplicate":bool}). Copies it and posts it to
 * push's reactor. Thread-safe, never blocks. */
void push_message_committed(const char *answer);
/* The calls hook (call_push.h): copies what a call push needs and posts it
 * to push's reactor. Thread-safe, never blocks. */
void push_call_event(call_push_kind kind, const char *user_id, const json_t *call);

#endif
