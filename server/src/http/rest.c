/* rest.c — helpers shared by REST handlers (see rest.h). */
#include "http/rest.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "base/config.h"
#include "base/json_depth.h"
#include "base/page.h"
#include "base/log.h"
#include "base/token.h"
#include "base/util.h"

/* ------------------------------------------------------------------------ */
/* JSON bodies                                                               */
/* ------------------------------------------------------------------------ */

/* True if s[0..n) is only JSON whitespace. */
static bool all_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
    return true;
}

json_t *rest_body(sb_req *req, bool required)
{
    if (g_config.http_max_body && req->body_len > g_config.http_max_body) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body is larger than %zu bytes", g_config.http_max_body);
        http_respond_error(req, 413, "payload_too_large", msg, NULL);
        return NULL;
    }
    if (!req->body || all_space(req->body, req->body_len)) {
        if (!required) return json_object();
        http_respond_error(req, 400, "bad_request", "request body must be a JSON object", NULL);
        return NULL;
    }
    if (!json_depth_ok(req->body, req->body_len, REST_MAX_DEPTH)) {
        char msg[96];
        snprintf(msg, sizeof msg, "JSON nested deeper than %d levels", REST_MAX_DEPTH);
        http_respond_error(req, 400, "bad_request", msg, NULL);
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid JSON: %s (line %d, column %d)", e.text, e.line,
                 e.column);
        http_respond_error(req, 400, "bad_request", msg, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_error(req, 400, "bad_request", "request body must be a JSON object", NULL);
        return NULL;
    }
    return j;
}

/* ------------------------------------------------------------------------ */
/* Validation errors                                                         */
/* ------------------------------------------------------------------------ */

void rest_verr_respond(sb_req *req, verr *v)
{
    json_t *d = v->details ? v->details : json_object();
    v->details = NULL;
    http_respond_error(req, 422, "validation_failed", "some fields are invalid", d);
}

/* ------------------------------------------------------------------------ */
/* Revoked sessions                                                          */
/* ------------------------------------------------------------------------ */

#define REVOKED_SLOTS 16384

typedef struct revoked {
    struct revoked *chain, *fifo_next;
    int64_t until;
    char sid[TOKEN_MAX_ID + 1];
} revoked;

static pthread_mutex_t g_rev_mu = PTHREAD_MUTEX_INITIALIZER;
static revoked *g_rev_slots[REVOKED_SLOTS];
static revoked *g_rev_head, *g_rev_tail; /* insertion order */
static atomic_size_t g_rev_n;

/* Slot of a session id in the revoked table (FNV-1a). */
static unsigned rev_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % REVOKED_SLOTS;
}

/* Unlinks and frees the oldest entry (under g_rev_mu). */
static void rev_drop_oldest(void)
{
    revoked *e = g_rev_head;
    if (!e) return;
    g_rev_head = e->fifo_next;
    if (!g_rev_head) g_rev_tail = NULL;
    revoked **pp = &g_rev_slots[rev_hash(e->sid)];
    while (*pp && *pp != e)
        pp = &(*pp)->chain;
    if (*pp) *pp = e->chain;
    atomic_fetch_sub(&g_rev_n, 1);
    free(e);
}

void rest_revoke_session(const char *sid, int64_t until_unix)
{
    if (!sid || strlen(sid) > TOKEN_MAX_ID) return;
    int64_t now = time(NULL);
    pthread_mutex_lock(&g_rev_mu);
    /* Entries are added with until = now + access TTL, so the oldest
     * expire first: prune from the head. */
    while (g_rev_head && (g_rev_head->until < now || atomic_load(&g_rev_n) >= REST_REVOKED_MAX))
        rev_drop_oldest();
    revoked *e = calloc(1, sizeof *e);
    if (e) {
        strcpy(e->sid, sid);
        e->until = until_unix;
        unsigned s = rev_hash(sid);
        e->chain = g_rev_slots[s];
        g_rev_slots[s] = e;
        if (g_rev_tail)
            g_rev_tail->fifo_next = e;
        else
            g_rev_head = e;
        g_rev_tail = e;
        atomic_fetch_add(&g_rev_n, 1);
    }
    pthread_mutex_unlock(&g_rev_mu);
}

bool rest_session_revoked(const char *sid)
{
    if (atomic_load_explicit(&g_rev_n, memory_order_relaxed) == 0) return false;
    int64_t now = time(NULL);
    bool found = false;
    pthread_mutex_lock(&g_rev_mu);
    for (revoked *e = g_rev_slots[rev_hash(sid)]; e; e = e->chain)
        if (!strcmp(e->sid, sid) && e->until >= now) {
            found = true;
            break;
        }
    pthread_mutex_unlock(&g_rev_mu);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Authentication                                                            */
/* ------------------------------------------------------------------------ */

/* Tokens this thread verified lately: a client sends the same bearer token
 * with every request, and verifying it (an HMAC and a JSON parse) was a
 * tenth of a small request's CPU. An entry answers only for the same text
 * (compared in constant time), its expiry is checked at each use, and the
 * revocation check below runs on every request. Direct-mapped by an FNV-1a
 * hash of the text; tokens longer than AUTH_CACHE_TOK are not kept. */
#define AUTH_CACHE 8
#define AUTH_CACHE_TOK 320

typedef struct auth_cached {
    size_t len;      /* 0: empty */
    uint64_t secret; /* hash of the secret it was verified with */
    char tok[AUTH_CACHE_TOK];
    token_claims c;
} auth_cached;

static _Thread_local auth_cached t_auth[AUTH_CACHE];

static uint64_t fnv64(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

/* token_verify under the configured secret, through the cache. */
static int verify_cached(const char *tok, size_t len, int64_t now, token_claims *out)
{
    auth_cached *e = NULL;
    uint64_t sh = fnv64(g_config.secret, g_config.secret_len);
    if (len <= AUTH_CACHE_TOK) {
        e = &t_auth[fnv64(tok, len) % AUTH_CACHE];
        if (e->len == len && e->secret == sh && CRYPTO_memcmp(e->tok, tok, len) == 0) {
            if (e->c.exp <= now) {
                e->len = 0;
                return TOKEN_EXPIRED;
            }
            *out = e->c;
            return TOKEN_OK;
        }
    }
    int rc = token_verify((const uint8_t *)g_config.secret, g_config.secret_len, tok, len, now, out);
    if (rc == TOKEN_OK && e) {
        memcpy(e->tok, tok, len);
        e->len = len;
        e->secret = sh;
        e->c = *out;
    }
    return rc;
}

int rest_auth_check(sb_req *req)
{
    const char *h = http_req_header(req, "authorization");
    if (!h) return REST_AUTH_MISSING;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) return TOKEN_BAD;
    h += 7;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t len = strlen(h);
    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    if (!len) return REST_AUTH_MISSING;
    token_claims c;
    int rc = verify_cached(h, len, time(NULL), &c);
    if (rc != TOKEN_OK) return rc;
    if (rest_session_revoked(c.session_id)) return REST_AUTH_REVOKED;
    req->auth = c;
    req->authed = true;
    return TOKEN_OK;
}

bool rest_auth(sb_req *req)
{
    int rc = rest_auth_check(req);
    if (rc == TOKEN_OK) return true;
    if (rc == REST_AUTH_MISSING) {
        http_respond_error_h(req, 401, "unauthorized", "missing bearer token", NULL,
                           "WWW-Authenticate: Bearer realm=\"switchboard\"\r\n");
    } else if (rc == REST_AUTH_REVOKED) {
        http_respond_error_h(req, 401, "unauthorized", "this session has been signed out", NULL,
                           "WWW-Authenticate: Bearer realm=\"switchboard\", "
                           "error=\"invalid_token\", error_description=\"revoked\"\r\n");
    } else if (rc == TOKEN_EXPIRED) {
        http_respond_error_h(req, 401, "unauthorized", "access token expired", NULL,
                           "WWW-Authenticate: Bearer realm=\"switchboard\", "
                           "error=\"invalid_token\", error_description=\"expired\"\r\n");
    } else {
        http_respond_error_h(req, 401, "unauthorized", "invalid access token", NULL,
                           "WWW-Authenticate: Bearer realm=\"switchboard\", "
                           "error=\"invalid_token\"\r\n");
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Pagination                                                                */
/* ------------------------------------------------------------------------ */

int rest_page_parse(const sb_req *req, rest_page *pg, verr *v)
{
    pg->limit = REST_PAGE_DEFAULT;
    pg->cursor = NULL;
    int rc = 0;
    char *lim = http_req_query(req, "limit", true);
    if (lim && *lim) {
        long x = 0;
        bool ok = true;
        size_t n = strlen(lim);
        if (n > 6) ok = false;
        for (size_t i = 0; ok && i < n; i++) {
            if (lim[i] < '0' || lim[i] > '9')
                ok = false;
            else
                x = x * 10 + (lim[i] - '0');
        }
        if (!ok || x < 1 || x > REST_PAGE_MAX) {
            char msg[64];
            snprintf(msg, sizeof msg, "must be an integer from 1 to %d", REST_PAGE_MAX);
            verr_add(v, "limit", msg);
            rc = -1;
        } else {
            pg->limit = (int)x;
        }
    } else if (lim) {
        verr_add(v, "limit", "must be an integer from 1 to 200");
        rc = -1;
    }
    free(lim);
    char *cur = http_req_query(req, "cursor", true);
    if (cur && *cur) {
        pg->cursor = page_cursor_decode(cur);
        if (!pg->cursor) {
            verr_add(v, "cursor", "is not a valid cursor");
            rc = -1;
        }
    }
    free(cur);
    return rc;
}

void rest_page_free(rest_page *pg)
{
    free(pg->cursor);
    pg->cursor = NULL;
}

/* ------------------------------------------------------------------------ */
/* Error responses                                                           */
/* ------------------------------------------------------------------------ */

void rest_unavailable(sb_req *req)
{
    http_respond_error_h(req, 503, "unavailable", "the database is unavailable; nothing was done",
                       NULL, "Retry-After: 1\r\n");
}

void rest_rate_limited(sb_req *req, int retry_after_s)
{
    char h[48];
    if (retry_after_s < 1) retry_after_s = 1;
    snprintf(h, sizeof h, "Retry-After: %d\r\n", retry_after_s);
    json_t *d = json_pack("{s:i}", "retry_after", retry_after_s);
    http_respond_error_h(req, 429, "rate_limited", "too many requests; try again later", d, h);
}

void rest_db_error(sb_req *req, const PGresult *res, const char *err)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!res || !st || !strcmp(err ? err : "", "unavailable") || !strncmp(st, "08", 2) ||
        !strncmp(st, "53", 2) || !strcmp(st, "57P01") || !strcmp(st, "57P02") ||
        !strcmp(st, "57P03") || !strcmp(st, "57014") || !strcmp(st, "40001") ||
        !strcmp(st, "40P01")) {
        rest_unavailable(req);
        return;
    }
    if (!strcmp(st, "SBVAL")) { /* a field refused by the database: RAISE ... 'field', DETAIL 'why' */
        const char *field = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *why = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        json_t *d = json_object();
        json_object_set_new(d, field ? field : "request", json_string(why ? why : "is invalid"));
        http_respond_error(req, 422, "validation_failed", "the request has invalid fields", d);
        return;
    }
    if (!strcmp(st, "23505")) {
        http_respond_error(req, 409, "conflict", "conflicts with an existing record", NULL);
        return;
    }
    log_msg(LOG_ERROR, "db error", "sqlstate", json_string(st), "error",
            json_string(err ? err : ""), "path", json_string(req->path ? req->path : ""), NULL);
    http_respond_error(req, 500, "internal", "internal error", NULL);
}

int rest_code_status(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } t[] = {{"bad_request", 400},       {"unauthorized", 401}, {"forbidden", 403},
             {"not_found", 404},         {"conflict", 409},     {"payload_too_large", 413},
             {"validation_failed", 422}, {"rate_limited", 429}, {"unavailable", 503}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(code, t[i].code)) return t[i].status;
    return 500;
}
