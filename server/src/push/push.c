/* push.c — the push service (push.h, docs/push.md): decisions, the queue,
 * retries, the OAuth2 access token and the counters. Everything but the
 * hooks and the counters runs on push's reactor thread. */
#include "push/push.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "net/reactor.h"
#include "presence/presence.h"
#include "push/push_coalesce.h"
#include "push/push_http.h"
#include "push/push_jwt.h"
#include "push/push_parse.h"
#include "push/push_payload.h"
#include "store/db.h"

/* ---- counters ---- */

static push_stats g_stats;
#define STAT_ADD(f, n) __atomic_fetch_add(&g_stats.f, (uint64_t)(n), __ATOMIC_RELAXED)
#define STAT_INC(f) STAT_ADD(f, 1)

void push_stats_get(push_stats *out)
{
    const uint64_t *src = (const uint64_t *)&g_stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof g_stats / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* ---- state ---- */

typedef enum { JOB_MSG = 0, JOB_CALL } job_kind;

/* One FCM request for one device token. */
typedef struct job {
    struct job *prev, *next;
    job_kind kind;
    char *body;
    size_t len;
    char device_id[24];
    char updated_us[24]; /* the device row's updated_at when decided (re-registration check) */
    int tries, auth_tries;
    uint64_t first_ms, next_ms, sent_ms; /* loop time */
    unsigned token_gen;
} job;

/* A committed message handed over by the chat hook. */
typedef struct intake {
    struct intake *next;
    char text[];
} intake;

static struct {
    bool on;
    push_parse_key_t key;
    char url[1200];
    reactor *r;
    push_http *http;
    uv_timer_t timer;
    bool timer_on;
    bool closed;
    job *head, *tail;
    size_t n_msg, n_call, inflight;
    char access[2048];
    uint64_t access_exp_ms;
    unsigned token_gen;
    bool fetching;
    uint64_t token_next_ms;
    int token_streak;
    push_coalesce *co; /* by conversation: one message decision per interval (msg_item) */
} S;

static pthread_mutex_t in_mu = PTHREAD_MUTEX_INITIALIZER;
static intake *in_head, *in_tail;
static size_t in_n;

int push_enabled(void) { return S.on; }

static uint64_t now_ms(void) { return uv_now(&S.r->loop); }

/* ---- configuration ---- */

int push_configure(char *err, size_t errlen)
{
    if (!g_config.fcm_credentials[0]) return 0;
    FILE *f = fopen(g_config.fcm_credentials, "rb");
    if (!f) {
        snprintf(err, errlen, "SB_FCM_CREDENTIALS: cannot open %s", g_config.fcm_credentials);
        return -1;
    }
    char *buf = malloc(64 * 1024 + 1);
    size_t n = buf ? fread(buf, 1, 64 * 1024 + 1, f) : 0;
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char why[256];
    int rc = push_parse_key(buf, n, &S.key, why, sizeof why);
    free(buf);
    if (rc != 0) {
        snprintf(err, errlen, "SB_FCM_CREDENTIALS: %s is not a usable service-account key: %s",
                 g_config.fcm_credentials, why);
        return -1;
    }
    const char *ep = g_config.fcm_endpoint;
    size_t el = strlen(ep);
    while (el && ep[el - 1] == '/') el--;
    if ((strncmp(ep, "https://", 8) != 0 && strncmp(ep, "http://", 7) != 0) || el < 8) {
        push_parse_key_free(&S.key);
        snprintf(err, errlen, "SB_FCM_ENDPOINT: not an http(s) URL: %s", ep);
        return -1;
    }
    snprintf(S.url, sizeof S.url, "%.*s/v1/projects/%s/messages:send", (int)el, ep, S.key.project_id);
    if (push_http_global_init() != 0) {
        push_parse_key_free(&S.key);
        snprintf(err, errlen, "libcurl without HTTP/2 (nghttp2): push needs it");
        return -1;
    }
    S.on = true;
    return 0;
}

/* ---- the queue ---- */

static void unlink_job(job *j)
{
    if (j->prev) j->prev->next = j->next;
    else S.head = j->next;
    if (j->next) j->next->prev = j->prev;
    else S.tail = j->prev;
    j->prev = j->next = NULL;
    if (j->kind == JOB_MSG) S.n_msg--;
    else S.n_call--;
    __atomic_store_n(&g_stats.queued, (uint64_t)(S.n_msg + S.n_call), __ATOMIC_RELAXED);
}

static void job_free(job *j)
{
    if (!j) return;
    free(j->body);
    free(j);
}

/* Appends j, making room first: the oldest message push goes; call pushes
 * are never dropped for message pushes (they may use up to twice the
 * bound, then a new call push is dropped). */
static void enqueue(job *j)
{
    size_t max = g_config.fcm_queue_max ? g_config.fcm_queue_max : 1;
    if (S.n_msg + S.n_call >= max) {
        job *old = NULL;
        for (job *x = S.head; x; x = x->next)
            if (x->kind == JOB_MSG) {
                old = x;
                break;
            }
        if (old) {
            unlink_job(old);
            job_free(old);
            STAT_INC(dropped);
        } else if (j->kind == JOB_MSG || S.n_call >= 2 * max) {
            STAT_INC(dropped);
            job_free(j);
            return;
        }
    }
    j->prev = S.tail;
    j->next = NULL;
    if (S.tail) S.tail->next = j;
    else S.head = j;
    S.tail = j;
    if (j->kind == JOB_MSG) S.n_msg++;
    else S.n_call++;
    __atomic_store_n(&g_stats.queued, (uint64_t)(S.n_msg + S.n_call), __ATOMIC_RELAXED);
}

static job *job_new(job_kind kind, char *body, const char *device_id, const char *updated_us)
{
    if (!body) return NULL;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        free(body);
        return NULL;
    }
    j->kind = kind;
    j->body = body;
    j->len = strlen(body);
    snprintf(j->device_id, sizeof j->device_id, "%s", device_id ? device_id : "");
    snprintf(j->updated_us, sizeof j->updated_us, "%s", updated_us ? updated_us : "");
    j->first_ms = now_ms();
    return j;
}

static void dispatch(void);

static void on_timer(uv_timer_t *t) { S.timer_on = false; dispatch(); }

static void arm(uint64_t at)
{
    uint64_t now = now_ms();
    uint64_t due = at > now ? at - now : 0;
    if (S.timer_on && uv_timer_get_due_in(&S.timer) <= due) return;
    uv_timer_start(&S.timer, on_timer, due, 0);
    S.timer_on = true;
}

/* ---- the OAuth2 access token ---- */

static void on_token(void *arg, long status, const char *body, size_t len, const char *ra,
                     const char *err, push_http_fate fate)
{
    (void)arg;
    (void)ra;
    (void)fate;
    S.fetching = false;
    int64_t exp_s = 0;
    uint64_t now = now_ms();
    if (status == 200 && push_parse_token_answer(body, len, S.access, sizeof S.access, &exp_s) == 0) {
        STAT_INC(oauth_fetches);
        uint64_t life = (uint64_t)exp_s * 1000, margin = life / 4 < 60000 ? life / 4 : 60000;
        S.access_exp_ms = now + life - margin;
        S.token_gen++;
        S.token_streak = 0;
        log_msg(LOG_INFO, "push: OAuth access token obtained", "expires_in_s", json_integer(exp_s),
                NULL);
    } else {
        STAT_INC(oauth_failures);
        S.access[0] = '\0';
        S.token_streak++;
        int sh = S.token_streak < 7 ? S.token_streak - 1 : 6;
        S.token_next_ms = now + (1000u << sh);
        log_msg(LOG_ERROR,
                status ? "push: the OAuth token endpoint refused the service-account JWT"
                       : "push: the OAuth token endpoint could not be reached",
                "token_uri", json_string(S.key.token_uri), "status", json_integer(status),
                "answer", json_stringn(body ? body : "", len > 300 ? 300 : len), "error",
                json_string(err ? err : ""), "oauth_failures",
                json_integer((json_int_t)__atomic_load_n(&g_stats.oauth_failures, __ATOMIC_RELAXED)),
                NULL);
    }
    dispatch();
}

/* Starts fetching an access token unless one is on its way or a failure
 * asks to wait. */
static void fetch_token(void)
{
    if (S.fetching || S.closed) return;
    uint64_t now = now_ms();
    if (now < S.token_next_ms) {
        arm(S.token_next_ms);
        return;
    }
    char *jwt = push_jwt_make(&S.key, (int64_t)time(NULL));
    if (!jwt) {
        STAT_INC(oauth_failures);
        S.token_next_ms = now + 5000;
        log_msg(LOG_ERROR, "push: could not sign the service-account JWT", NULL);
        arm(S.token_next_ms);
        return;
    }
    static const char pre[] = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
    size_t jl = strlen(jwt);
    char *body = malloc(sizeof pre + jl);
    if (body) {
        memcpy(body, pre, sizeof pre - 1);
        memcpy(body + sizeof pre - 1, jwt, jl + 1);
    }
    free(jwt);
    static const char *const hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
                                       "Accept: application/json", NULL};
    if (!body || push_http_post(S.http, S.key.token_uri, hdrs, body, strlen(body),
                                (long)g_config.fcm_timeout_ms, on_token, NULL) != 0) {
        STAT_INC(oauth_failures);
        S.token_next_ms = now + 5000;
        arm(S.token_next_ms);
    } else {
        S.fetching = true;
    }
    free(body);
}

/* ---- sending and results ---- */

static void on_device_deleted(const PGresult *res, const char *err, void *arg)
{
    char *id = arg;
    if (res && !err && PQntuples(res) == 1) {
        STAT_INC(tokens_deleted);
        log_msg(LOG_INFO, "push: device deleted: FCM says its token is dead", "device_id",
                json_string(id), NULL);
    } else if (res && !err) {
        log_msg(LOG_INFO, "push: dead token kept: the device registered again after the send began",
                "device_id", json_string(id), NULL);
    } else {
        log_msg(LOG_WARN, "push: could not delete a device with a dead token", "device_id",
                json_string(id), "error", json_string(err ? err : ""), NULL);
    }
    free(id);
}

static const char SQL_DEVICE_DEL[] =
    "DELETE FROM devices WHERE id = $1::int8"
    " AND floor(extract(epoch from updated_at) * 1000000)::int8 = $2::int8 RETURNING id";

static void delete_device(const job *j)
{
    db_pool *p = db_of(S.r);
    char *id = strdup(j->device_id);
    if (!p || !id || !j->device_id[0]) {
        free(id);
        return;
    }
    const char *params[2] = {j->device_id, j->updated_us};
    db_query(p, SQL_DEVICE_DEL, 2, params, on_device_deleted, id);
}

/* A 429, 5xx or network failure: again after Retry-After or a backoff with
 * jitter, unless out of tries or time. */
static void retry(job *j, const char *retry_after, const char *why)
{
    uint64_t now = now_ms();
    j->tries++;
    int64_t delay = retry_after ? push_parse_retry_after(retry_after, strlen(retry_after),
                                                         util_now_unix_ms())
                                : -1;
    if (delay < 0) {
        int sh = j->tries - 1 < 10 ? j->tries - 1 : 10;
        uint64_t d = g_config.fcm_retry_base_ms << sh;
        if (d > 60000) d = 60000;
        uint32_t rnd = 0;
        util_random_bytes(&rnd, sizeof rnd);
        delay = (int64_t)(d / 2 + (d / 2 ? rnd % (d / 2 + 1) : 0)); /* jitter: [d/2, d] */
    }
    if (j->tries >= g_config.fcm_max_tries || now + (uint64_t)delay > j->first_ms + g_config.fcm_retry_window_ms) {
        STAT_INC(failed_exhausted);
        log_msg(LOG_WARN, "push: given up after retries", "device_id", json_string(j->device_id),
                "tries", json_integer(j->tries), "last", json_string(why), NULL);
        job_free(j);
        return;
    }
    STAT_INC(retried);
    j->next_ms = now + (uint64_t)delay;
    enqueue(j);
}

static void on_sent(void *arg, long status, const char *body, size_t len, const char *ra,
                    const char *err, push_http_fate fate)
{
    job *j = arg;
    S.inflight--;
    uint64_t lat = now_ms() - j->sent_ms;
    char code[64];
    push_parse_outcome o;
    if (status == 0 && fate == PUSH_HTTP_MAYBE_PROCESSED) {
        /* FCM closed the connection (GOAWAY) after this request's stream,
         * which it says it may have processed, and no answer came: sending
         * it again could deliver it twice, so it is not (counted) */
        STAT_INC(unconfirmed);
        log_msg(LOG_INFO, "push: no answer before FCM closed the connection (GOAWAY) but FCM may have processed it: not sent again",
                "device_id", json_string(j->device_id), "error", json_string(err ? err : ""), NULL);
        job_free(j);
        dispatch();
        return;
    }
    if (status == 0 && fate == PUSH_HTTP_NOT_PROCESSED) {
        /* refused (REFUSED_STREAM, above a GOAWAY's last-stream-id) or never
         * sent: FCM has not seen it, so it goes again at once */
        STAT_INC(refused);
        retry(j, "0", err ? err : "not processed");
        dispatch();
        return;
    }
    if (status == 0) {
        o = PUSH_RETRY;
        snprintf(code, sizeof code, "%s", err ? err : "no answer");
    } else {
        STAT_INC(latency_count);
        STAT_ADD(latency_ms_sum, lat);
        uint64_t mx = __atomic_load_n(&g_stats.latency_ms_max, __ATOMIC_RELAXED);
        if (lat > mx) __atomic_store_n(&g_stats.latency_ms_max, lat, __ATOMIC_RELAXED);
        o = push_parse_fcm_answer(status, body, len, code, sizeof code);
    }
    switch (o) {
    case PUSH_OK:
        STAT_INC(sent);
        job_free(j);
        break;
    case PUSH_DEAD_TOKEN:
        STAT_INC(failed_dead_token);
        delete_device(j);
        job_free(j);
        break;
    case PUSH_BAD_REQUEST:
        STAT_INC(failed_bad_request);
        log_msg(LOG_WARN, "push: FCM refused a push (400); dropped", "code", json_string(code),
                "device_id", json_string(j->device_id), NULL);
        job_free(j);
        break;
    case PUSH_FORBIDDEN:
        STAT_INC(failed_forbidden);
        log_msg(LOG_ERROR, "push: FCM forbids this sender (403): check the project and the service account's role",
                "code", json_string(code), "project_id", json_string(S.key.project_id),
                "failed_forbidden",
                json_integer((json_int_t)__atomic_load_n(&g_stats.failed_forbidden, __ATOMIC_RELAXED)),
                NULL);
        job_free(j);
        break;
    case PUSH_AUTH:
        if (j->token_gen == S.token_gen) S.access[0] = '\0'; /* fetch another */
        if (++j->auth_tries <= 2) {
            j->next_ms = 0;
            enqueue(j);
        } else {
            STAT_INC(failed_auth);
            log_msg(LOG_ERROR, "push: FCM refused a fresh access token (401)", NULL);
            job_free(j);
        }
        break;
    case PUSH_RETRY:
        retry(j, ra, code);
        break;
    case PUSH_MALFORMED:
        STAT_INC(failed_malformed);
        log_msg(LOG_WARN, "push: FCM's answer is malformed; counted as failed", "status",
                json_integer(status), NULL);
        job_free(j);
        break;
    default:
        STAT_INC(failed_other);
        log_msg(LOG_WARN, "push: FCM answered an unexpected status; dropped", "status",
                json_integer(status), "code", json_string(code), NULL);
        job_free(j);
        break;
    }
    dispatch();
}

static void send_job(job *j)
{
    char auth[2100];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", S.access);
    const char *hdrs[] = {auth, "Content-Type: application/json; charset=UTF-8", NULL};
    j->sent_ms = now_ms();
    j->token_gen = S.token_gen;
    if (push_http_post(S.http, S.url, hdrs, j->body, j->len, (long)g_config.fcm_timeout_ms, on_sent,
                       j) != 0) {
        retry(j, NULL, "could not start the request");
        return;
    }
    S.inflight++;
}

static void release_held(void);

/* Sends what is due, as far as the concurrency allows; fetches a token
 * first when there is none. */
static void dispatch(void)
{
    if (S.closed) return;
    release_held();
    if (!S.head) return;
    uint64_t now = now_ms();
    if (!S.access[0] || now >= S.access_exp_ms) {
        S.access[0] = '\0';
        fetch_token();
        return;
    }
    uint64_t next = 0;
    size_t cap = (size_t)(g_config.fcm_concurrency > 0 ? g_config.fcm_concurrency : 1);
    for (job *j = S.head, *nx; j && S.inflight < cap; j = nx) {
        nx = j->next;
        if (j->next_ms > now) {
            if (!next || j->next_ms < next) next = j->next_ms;
            continue;
        }
        unlink_job(j);
        send_job(j);
    }
    if (next) arm(next);
}

/* ---- decisions: messages ---- */

/* Committed messages are decided in batches: one query for the devices of
 * every recipient of up to DECIDE_BATCH messages (what one wake-up of the
 * push reactor drained), not one per message: less work for Postgres and
 * the push reactor, which also serves sockets. */
#define DECIDE_BATCH 64

typedef struct msg_item {
    char conv[24], msg[24], sender[24];
    int64_t seq;
    char *preview; /* NULL: none */
    bool silent;   /* held for the end of its conversation's interval: no alert */
} msg_item;

typedef struct msg_batch {
    int n;
    msg_item m[DECIDE_BATCH];
} msg_batch;

/* Row i of the answer belongs to message m.i (1-based, in order). */
static const char SQL_MSGS[] =
    "SELECT m.i::text, mb.user_id::text, (mb.muted_until IS NOT NULL AND mb.muted_until > now()),"
    " d.id::text, d.push_token, floor(extract(epoch from d.updated_at) * 1000000)::int8::text,"
    " u.display_name"
    " FROM unnest($1::int8[], $2::int8[]) WITH ORDINALITY AS m(conv, sender, i)"
    " JOIN members mb ON mb.conversation_id = m.conv AND mb.user_id <> m.sender"
    " JOIN devices d ON d.user_id = mb.user_id"
    " LEFT JOIN users u ON u.id = m.sender"
    " ORDER BY m.i, d.id";

static void batch_free(msg_batch *b)
{
    for (int i = 0; i < b->n; i++) free(b->m[i].preview);
    free(b);
}

static void on_msg_rows(const PGresult *res, const char *err, void *arg)
{
    msg_batch *b = arg;
    if (S.closed || !res || err) {
        if (!S.closed)
            log_msg(LOG_WARN, "push: could not read the recipients' devices", "error",
                    json_string(err ? err : ""), "messages", json_integer(b->n), NULL);
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        long k = strtol(PQgetvalue(res, i, 0), NULL, 10) - 1;
        if (k < 0 || k >= b->n) continue;
        const msg_item *c = &b->m[k];
        const char *uid = PQgetvalue(res, i, 1);
        if (presence_user_online(uid, NULL)) { /* a live socket somewhere: no push */
            if (c->silent) STAT_INC(skipped_online);
            continue;
        }
        bool muted = PQgetvalue(res, i, 2)[0] == 't';
        const char *dev = PQgetvalue(res, i, 3);
        push_payload_msg m = {
            .token = PQgetvalue(res, i, 4), .conversation_id = c->conv, .message_id = c->msg,
            .sender_id = c->sender, .sender_name = PQgetvalue(res, i, 6), .seq = c->seq,
            .preview = c->preview, .muted = muted, .alert = !muted && !c->silent};
        job *j = job_new(JOB_MSG, push_payload_message(&m), dev, PQgetvalue(res, i, 5));
        if (j) enqueue(j);
    }
    dispatch();
done:
    batch_free(b);
}

/* Sends the batch's query (the batch is then owned by its callback). */
static void decide_batch(msg_batch *b)
{
    db_pool *p = db_of(S.r);
    if (!p || b->n == 0) {
        batch_free(b);
        return;
    }
    /* two int8[] literals: {conv,...} and {sender,...} (ids are digits) */
    char *convs = malloc((size_t)b->n * 25 + 3), *senders = malloc((size_t)b->n * 25 + 3);
    if (!convs || !senders) {
        free(convs);
        free(senders);
        batch_free(b);
        return;
    }
    size_t cl = 0, sl = 0;
    convs[cl++] = '{';
    senders[sl++] = '{';
    for (int i = 0; i < b->n; i++) {
        cl += (size_t)sprintf(convs + cl, "%s%s", i ? "," : "", b->m[i].conv);
        sl += (size_t)sprintf(senders + sl, "%s%s", i ? "," : "", b->m[i].sender);
    }
    convs[cl++] = '}';
    convs[cl] = '\0';
    senders[sl++] = '}';
    senders[sl] = '\0';
    const char *params[2] = {convs, senders};
    db_query(p, SQL_MSGS, 2, params, on_msg_rows, b);
    free(convs);
    free(senders);
}

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

/* Parses a committed send's answer into c (false: not one to push). */
static bool parse_message(msg_item *c, const char *text)
{
    bool ok = false;
    json_t *a = json_loads(text, 0, NULL);
    json_t *m = json_object_get(a, "message");
    if (!json_is_object(m) || json_is_true(json_object_get(a, "duplicate"))) goto done;
    const char *conv = json_string_value(json_object_get(m, "conversation_id"));
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *sender = json_string_value(json_object_get(m, "sender_id"));
    if (!conv || !id || !sender || strlen(conv) >= 24 || strlen(id) >= 24 || strlen(sender) >= 24 ||
        !all_digits(conv) || !all_digits(sender))
        goto done;
    memset(c, 0, sizeof *c);
    strcpy(c->conv, conv);
    strcpy(c->msg, id);
    strcpy(c->sender, sender);
    c->seq = json_integer_value(json_object_get(m, "seq"));
    const char *pv = push_payload_preview(json_string_value(json_object_get(m, "kind")),
                                          json_string_value(json_object_get(m, "body")));
    c->preview = pv ? strdup(pv) : NULL;
    ok = true;
done:
    json_decref(a);
    return ok;
}

/* Appends c to *bp (made when NULL), deciding the batch when it is full. */
static void batch_add(msg_batch **bp, const msg_item *c)
{
    if (!*bp) *bp = calloc(1, sizeof **bp);
    if (!*bp) {
        free(c->preview);
        return;
    }
    (*bp)->m[(*bp)->n++] = *c;
    if ((*bp)->n == DECIDE_BATCH) {
        decide_batch(*bp);
        *bp = NULL;
    }
}

static void item_free(void *p)
{
    msg_item *c = p;
    if (!c) return;
    free(c->preview);
    free(c);
}

/* Coalescing (push_coalesce.h, docs/push.md): the first message of a quiet
 * conversation is decided at once and alerts; the ones after it inside the
 * interval are held, the newest replacing the one before, and the newest is
 * decided when the interval ends, silently. Returns true when c goes into
 * the batch now; otherwise c was taken (held or freed). */
static bool coalesce(msg_item *c)
{
    if (push_coalesce_offer(S.co, c->conv, now_ms()) == 0) return true;
    msg_item *h = malloc(sizeof *h);
    if (!h) return true; /* no memory to hold it: decided now */
    *h = *c;
    h->silent = true;
    msg_item *old = push_coalesce_hold(S.co, c->conv, h);
    if (old == h) { /* no window after all: decided now */
        free(h);
        return true;
    }
    if (old) {
        STAT_INC(coalesced);
        item_free(old);
    }
    return false;
}

/* Decides the held messages whose interval has ended (in batches) and arms
 * the timer for the next interval's end. */
static void release_held(void)
{
    msg_batch *b = NULL;
    msg_item *h;
    while ((h = push_coalesce_due(S.co, now_ms())) != NULL) {
        batch_add(&b, h);
        free(h); /* its preview moved into the batch */
    }
    if (b) decide_batch(b);
    __atomic_store_n(&g_stats.held, (uint64_t)push_coalesce_held(S.co), __ATOMIC_RELAXED);
    uint64_t next = push_coalesce_next_ms(S.co);
    if (next != UINT64_MAX) arm(next);
}

static void drain_intake(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&in_mu);
    intake *l = in_head;
    in_head = in_tail = NULL;
    in_n = 0;
    pthread_mutex_unlock(&in_mu);
    msg_batch *b = NULL;
    while (l) {
        intake *nx = l->next;
        msg_item c;
        if (!S.closed && parse_message(&c, l->text) && coalesce(&c)) batch_add(&b, &c);
        free(l);
        l = nx;
    }
    if (b) decide_batch(b);
    release_held(); /* also arms the timer for the first window's end */
}

/* Committed messages are drained DRAIN_DELAY_MS after the first one of a
 * quiet intake: the reactors wake the push thread at most once per delay
 * (not once per message) and a drain decides a bigger batch. */
#define DRAIN_DELAY_MS 10
static uv_timer_t D_timer;

static void on_drain_timer(uv_timer_t *t)
{
    (void)t;
    drain_intake(NULL);
}

static void drain_later(void *arg)
{
    (void)arg;
    if (!S.closed && !uv_is_active((uv_handle_t *)&D_timer))
        uv_timer_start(&D_timer, on_drain_timer, DRAIN_DELAY_MS, 0);
}

void push_message_committed(const char *answer)
{
    reactor *r = __atomic_load_n(&S.r, __ATOMIC_ACQUIRE);
    if (!S.on || !r || !answer) return;
    size_t n = strlen(answer);
    intake *it = malloc(sizeof *it + n + 1);
    if (!it) return;
    memcpy(it->text, answer, n + 1);
    it->next = NULL;
    pthread_mutex_lock(&in_mu);
    if (in_n >= g_config.fcm_queue_max) {
        pthread_mutex_unlock(&in_mu);
        STAT_INC(dropped);
        free(it);
        return;
    }
    if (in_tail) in_tail->next = it;
    else in_head = it;
    in_tail = it;
    bool first = in_n++ == 0;
    pthread_mutex_unlock(&in_mu);
    if (first) reactor_post(r, drain_later, NULL);
}

/* ---- decisions: calls ---- */

typedef struct call_ctx {
    call_push_kind kind;
    char user[24], caller[24];
    char call_id[64], media[16], reason[48];
} call_ctx;

static const char SQL_CALL[] =
    "SELECT d.id::text, d.push_token, floor(extract(epoch from d.updated_at) * 1000000)::int8::text,"
    " (SELECT display_name FROM users WHERE id = $2::int8)"
    " FROM devices d WHERE d.user_id = $1::int8";

static void on_call_rows(const PGresult *res, const char *err, void *arg)
{
    call_ctx *c = arg;
    if (S.closed || !res || err) goto done;
    int64_t ttl = (int64_t)((g_config.call_ring_ms + 999) / 1000);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *tok = PQgetvalue(res, i, 1);
        char *body = c->kind == CALL_PUSH_INVITE
                         ? push_payload_call(tok, c->call_id, c->caller, PQgetvalue(res, i, 3),
                                             c->media, ttl)
                         : push_payload_cancel(tok, c->call_id, c->reason, ttl);
        job *j = job_new(JOB_CALL, body, PQgetvalue(res, i, 0), PQgetvalue(res, i, 2));
        if (j) enqueue(j);
    }
    dispatch();
done:
    free(c);
}

static void call_task(void *arg)
{
    call_ctx *c = arg;
    db_pool *p = S.closed ? NULL : db_of(S.r);
    if (!p) {
        free(c);
        return;
    }
    const char *params[2] = {c->user, c->caller[0] ? c->caller : NULL};
    db_query(p, SQL_CALL, 2, params, on_call_rows, c);
}

void push_call_event(call_push_kind kind, const char *user_id, const json_t *call)
{
    reactor *r = __atomic_load_n(&S.r, __ATOMIC_ACQUIRE);
    if (!S.on || !r || !user_id || !call) return;
    const char *id = json_string_value(json_object_get(call, "id"));
    const char *caller = json_string_value(json_object_get(call, "caller_id"));
    const char *media = json_string_value(json_object_get(call, "media"));
    const char *reason = kind == CALL_PUSH_ANSWER
                             ? "answered_elsewhere"
                             : json_string_value(json_object_get(call, "end_reason"));
    if (!id || strlen(id) >= 64 || strlen(user_id) >= 24 || (caller && strlen(caller) >= 24)) return;
    if (kind == CALL_PUSH_END) {
        /* only the devices still ringing: not a participant who answered */
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(call, "participants"), i, p) {
            const char *uid = json_string_value(json_object_get(p, "user_id"));
            const char *st = json_string_value(json_object_get(p, "state"));
            if (uid && st && !strcmp(uid, user_id) &&
                (!strcmp(st, "joined") || !strcmp(st, "connected") || !strcmp(st, "left") ||
                 !strcmp(st, "busy")))
                return;
        }
    }
    call_ctx *c = calloc(1, sizeof *c);
    if (!c) return;
    c->kind = kind;
    snprintf(c->user, sizeof c->user, "%s", user_id);
    snprintf(c->caller, sizeof c->caller, "%s", caller ? caller : "");
    snprintf(c->call_id, sizeof c->call_id, "%s", id);
    snprintf(c->media, sizeof c->media, "%s", media ? media : "audio");
    snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : "ended");
    if (reactor_post(r, call_task, c) != 0) free(c);
}

/* ---- the push thread ----
 * Push runs on a loop and thread of its own, not on a socket reactor: its
 * work (decision queries, JSON, TLS, libcurl walking its transfers on each
 * socket event) never stands between a reactor and the acknowledgement it
 * is about to write, and the thread runs at a lower priority (nice +5) so
 * the kernel prefers the reactors when the cores are busy. It has its own
 * database pool (2 connections); reactors hand work over with reactor_post
 * on its `reactor` (a loop with a task queue, no listener, no sockets). */

static reactor P;
static uv_timer_t P_tick;
static pthread_t P_thread;
static bool P_running;

static void p_on_wake(uv_async_t *a)
{
    reactor *r = a->data;
    pthread_mutex_lock(&r->tasks_mu);
    reactor_task *t = r->tasks_head;
    r->tasks_head = r->tasks_tail = NULL;
    pthread_mutex_unlock(&r->tasks_mu);
    while (t) {
        reactor_task *nx = t->next;
        t->fn(t->arg);
        free(t);
        t = nx;
    }
}

/* Once a second on the push thread. */
static void p_on_tick(uv_timer_t *t)
{
    (void)t;
    if (S.closed) return;
    drain_intake(NULL); /* in case a post was lost to memory */
    /* a push that waited for a token longer than the retry window gives up */
    uint64_t now = now_ms();
    for (job *j = S.head, *nx; j; j = nx) {
        nx = j->next;
        if (now > j->first_ms + g_config.fcm_retry_window_ms) {
            unlink_job(j);
            STAT_INC(failed_exhausted);
            job_free(j);
        }
    }
    dispatch();
}

/* On the push thread: closes everything; the loop then ends. */
static void p_stop(void *arg)
{
    (void)arg;
    S.closed = true;
    push_http_close(S.http);
    S.http = NULL;
    uv_close((uv_handle_t *)&S.timer, NULL);
    uv_timer_stop(&D_timer);
    uv_close((uv_handle_t *)&D_timer, NULL);
    while (S.head) {
        job *j = S.head;
        unlink_job(j);
        job_free(j);
    }
    push_coalesce_free(S.co, item_free);
    S.co = NULL;
    drain_intake(NULL);
    db_pool_close(db_of(&P));
    uv_timer_stop(&P_tick);
    uv_close((uv_handle_t *)&P_tick, NULL);
    /* the wake handle stays open but no longer keeps the loop alive: a
     * reactor posting during shutdown reaches a valid handle (its task is
     * never run); the loop ends once the pool and the client are closed */
    uv_unref((uv_handle_t *)&P.wake);
}

static void *p_main(void *arg)
{
    (void)arg;
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5); /* best effort */
    uv_run(&P.loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Reactor 0's start hook: makes the push thread and starts it. */
static void push_start(reactor *r)
{
    if (r->id != 0 || P_running) return;
    P.id = -1;
    if (uv_loop_init(&P.loop) != 0 || pthread_mutex_init(&P.tasks_mu, NULL) != 0 ||
        uv_async_init(&P.loop, &P.wake, p_on_wake) != 0 || uv_timer_init(&P.loop, &P_tick) != 0 ||
        uv_timer_init(&P.loop, &S.timer) != 0 || uv_timer_init(&P.loop, &D_timer) != 0) {
        log_msg(LOG_ERROR, "push: could not make its loop: push stays off", NULL);
        return;
    }
    P.wake.data = &P;
    if (g_config.database_url[0]) P.slot[db_reactor_slot] = db_pool_new(&P, g_config.database_url, 2);
    long conns = g_config.fcm_connections > 0 ? (g_config.fcm_connections < 64 ? g_config.fcm_connections : 64) : 1;
    long cc = g_config.fcm_concurrency > 0 ? g_config.fcm_concurrency : 1;
    S.http = push_http_new(&P.loop, conns, (cc + conns - 1) / conns, g_config.fcm_ca_file);
    S.co = push_coalesce_new(g_config.fcm_alert_interval_ms, g_config.fcm_queue_max);
    uv_timer_start(&P_tick, p_on_tick, 1000, 1000);
    __atomic_store_n(&S.r, &P, __ATOMIC_RELEASE);
    if (pthread_create(&P_thread, NULL, p_main, NULL) != 0) {
        __atomic_store_n(&S.r, NULL, __ATOMIC_RELEASE);
        log_msg(LOG_ERROR, "push: could not start its thread: push stays off", NULL);
        return;
    }
    P_running = true;
    log_msg(LOG_INFO, "push: on (FCM HTTP v1)", "project_id", json_string(S.key.project_id),
            "endpoint", json_string(S.url), "thread", json_string("push (own loop, nice +5)"), NULL);
    if (!S.http) log_msg(LOG_ERROR, "push: could not start the HTTP client", NULL);
}

/* Reactor 0's exit hook: stops the push thread and waits for it. */
static void push_exit(reactor *r)
{
    if (r->id != 0 || !P_running) return;
    __atomic_store_n(&S.r, NULL, __ATOMIC_RELEASE); /* the hooks stop handing work over */
    if (reactor_post(&P, p_stop, NULL) == 0) pthread_join(P_thread, NULL);
    P_running = false;
}

static const reactor_hooks push_hooks = {.start = push_start, .exit = push_exit};

int push_register(void)
{
    if (!S.on) return 0;
    if (g_config.fcm_retry_base_ms == 0) g_config.fcm_retry_base_ms = 1;
    return reactor_register(&push_hooks) < 0 ? -1 : 0;
}
