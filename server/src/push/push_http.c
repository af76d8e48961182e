/* push_http.c — libcurl multi on a libuv loop (push_http.h), after
 * libcurl's multi-uv example: curl says which sockets to watch for what
 * (socket callback) and when to call it back (timer callback); libuv calls
 * curl_multi_socket_action when a socket is ready or the timer fires. */
#include "push/push_http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX (64 * 1024)

struct push_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    size_t inflight;
    int open_handles; /* uv handles not yet closed (timer + polls) */
    bool closing;
    char ca_file[1024];    /* extra CA bundle ("" = the system's) */
    struct req *reqs;      /* in flight */
    struct sock_ctx *socks; /* watched sockets */
};

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    push_http *h;
    struct sock_ctx *prev, *next;
} sock_ctx;

typedef struct req {
    push_http *h;
    struct req *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    int attempts;          /* libcurl's tries to send it (on_prereq) */
    long stream_id;        /* HTTP/2 stream id (0: not submitted yet) */
    long port;             /* local port of its connection (identifies it) */
    long goaway_last;      /* last-stream-id of a GOAWAY on its connection, -1: none */
    bool refused;          /* REFUSED_STREAM: not processed by the peer */
    char *body;
    size_t len;
    char retry_after[96];
    bool has_retry_after;
    push_http_cb cb;
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
} req;

int push_http_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    return v && (v->features & CURL_VERSION_HTTP2) ? 0 : -1;
}

static void maybe_free(push_http *h)
{
    if (h->closing && h->open_handles == 0) free(h);
}

static void on_handle_closed(uv_handle_t *hd)
{
    push_http *h;
    if (hd->type == UV_POLL) {
        sock_ctx *sc = hd->data;
        h = sc->h;
        free(sc);
    } else {
        h = hd->data;
    }
    h->open_handles--;
    maybe_free(h);
}

static void req_free(req *q)
{
    if (q->prev) q->prev->next = q->next;
    else if (q->h->reqs == q) q->h->reqs = q->next;
    if (q->next) q->next->prev = q->prev;
    curl_slist_free_all(q->headers);
    free(q->body);
    free(q);
}

/* Hands finished transfers to their callbacks. */
static void check_done(push_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        req *q = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&q);
        long status = 0;
        if (rc == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(h->multi, e);
        curl_easy_cleanup(e);
        h->inflight--;
        const char *err = rc == CURLE_OK ? NULL : (q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc));
        push_http_fate fate = PUSH_HTTP_ANSWERED;
        if (rc != CURLE_OK || status == 0) {
            if (q->refused || (q->goaway_last >= 0 && q->stream_id > q->goaway_last))
                fate = PUSH_HTTP_NOT_PROCESSED;
            else if (q->goaway_last >= 0 && q->stream_id > 0)
                fate = PUSH_HTTP_MAYBE_PROCESSED;
            else if (q->stream_id == 0 &&
                     (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                      rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION))
                fate = PUSH_HTTP_NOT_PROCESSED;
            else
                fate = PUSH_HTTP_NO_ANSWER;
        }
        q->cb(q->arg, status, q->body ? q->body : "", q->len,
              q->has_retry_after ? q->retry_after : NULL, err, fate);
        req_free(q);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *sc = p->data;
    push_http *h = sc->h;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(h->multi, sc->fd, flags, &running);
    check_done(h);
}

static void on_timer(uv_timer_t *t)
{
    push_http *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int socket_cb(CURL *e, curl_socket_t s, int action, void *userp, void *socketp)
{
    push_http *h = userp;
    sock_ctx *sc = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (sc) {
            if (sc->prev) sc->prev->next = sc->next;
            else h->socks = sc->next;
            if (sc->next) sc->next->prev = sc->prev;
            uv_poll_stop(&sc->poll);
            curl_multi_assign(h->multi, s, NULL);
            uv_close((uv_handle_t *)&sc->poll, on_handle_closed);
        }
        return 0;
    }
    if (!sc) {
        sc = calloc(1, sizeof *sc);
        if (!sc) return -1;
        sc->fd = s;
        sc->h = h;
        if (uv_poll_init_socket(h->loop, &sc->poll, s) != 0) {
            free(sc);
            return -1;
        }
        sc->poll.data = sc;
        sc->next = h->socks;
        if (h->socks) h->socks->prev = sc;
        h->socks = sc;
        h->open_handles++;
        curl_multi_assign(h->multi, s, sc);
    }
    int ev = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT) ev |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT) ev |= UV_WRITABLE;
    uv_poll_start(&sc->poll, ev, on_poll);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    push_http *h = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0); /* 0: at the next iteration */
    return 0;
}

push_http *push_http_new(uv_loop_t *loop, long max_conns, long max_streams, const char *ca_file)
{
    push_http *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    snprintf(h->ca_file, sizeof h->ca_file, "%s", ca_file ? ca_file : "");
    h->loop = loop;
    h->multi = curl_multi_init();
    if (!h->multi || uv_timer_init(loop, &h->timer) != 0) {
        if (h->multi) curl_multi_cleanup(h->multi);
        free(h);
        return NULL;
    }
    h->timer.data = h;
    h->open_handles = 1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_conns > 0 ? max_conns : 2L);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, max_streams > 0 ? max_streams : 100L);
    return h;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
    req *q = arg;
    size_t add = size * n;
    if (q->len + add > BODY_MAX) add = q->len < BODY_MAX ? BODY_MAX - q->len : 0;
    if (add) {
        char *b = realloc(q->body, q->len + add + 1);
        if (!b) return 0;
        memcpy(b + q->len, ptr, add);
        q->len += add;
        b[q->len] = '\0';
        q->body = b;
    }
    return size * n;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *arg)
{
    req *q = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && !strncasecmp(ptr, name, sizeof name - 1)) {
        size_t vl = len - (sizeof name - 1);
        if (vl >= sizeof q->retry_after) vl = sizeof q->retry_after - 1;
        memcpy(q->retry_after, ptr + sizeof name - 1, vl);
        q->retry_after[vl] = '\0';
        q->has_retry_after = true;
    }
    return len;
}

/* Called by libcurl right before each attempt to send the request. The
 * first goes; a second is libcurl 7.88 replaying the request on a fresh
 * connection after its connection died ("Connection died, retrying a fresh
 * connect"), which it does even for a request the peer processed before a
 * GOAWAY: it is aborted (CURLE_ABORTED_BY_CALLBACK) and push.c decides, from
 * the GOAWAY's last-stream-id, whether to send it again. */
static int on_prereq(void *arg, char *remote_ip, char *local_ip, int remote_port, int local_port)
{
    req *q = arg;
    (void)remote_ip;
    (void)local_ip;
    (void)remote_port;
    if (q->attempts++ > 0) return CURL_PREREQFUNC_ABORT;
    q->port = local_port;
    return CURL_PREREQFUNC_OK;
}

static bool text_is(const char *d, size_t n, const char *pre, size_t pl)
{
    return n >= pl && !memcmp(d, pre, pl);
}

/* What libcurl 7.88 tells only in its informational text (no API for it):
 * the HTTP/2 stream id of a request, a GOAWAY's last-stream-id and
 * REFUSED_STREAM. A GOAWAY stamps every request in flight on the same
 * connection (same local port). */
static int on_debug(CURL *e, curl_infotype type, char *d, size_t n, void *arg)
{
    req *q = arg;
    (void)e;
    if (type != CURLINFO_TEXT || !q) return 0;
    static const char sid[] = "Using Stream ID: ", ga[] = "recveived GOAWAY, error=",
                      ga2[] = "received GOAWAY, error=", rf[] = "REFUSED_STREAM";
    if (text_is(d, n, sid, sizeof sid - 1)) {
        q->stream_id = strtol(d + sizeof sid - 1, NULL, 10);
    } else if (text_is(d, n, ga, sizeof ga - 1) || text_is(d, n, ga2, sizeof ga2 - 1)) {
        const char *ls = memmem(d, n, "last_stream=", 12);
        if (!ls) return 0;
        long last = strtol(ls + 12, NULL, 10), port = q->port;
        for (req *x = q->h->reqs; x; x = x->next)
            if (x->port == port && (x->goaway_last < 0 || last < x->goaway_last)) x->goaway_last = last;
    } else if (text_is(d, n, rf, sizeof rf - 1)) {
        q->refused = true;
    }
    return 0;
}

int push_http_post(push_http *h, const char *url, const char *const *headers, const char *body,
                   size_t len, long timeout_ms, push_http_cb cb, void *arg)
{
    if (h->closing) return -1;
    req *q = calloc(1, sizeof *q);
    if (!q) return -1;
    q->h = h;
    q->cb = cb;
    q->arg = arg;
    q->goaway_last = -1;
    q->easy = curl_easy_init();
    if (!q->easy) {
        free(q);
        return -1;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(q->headers, headers[i]);
        if (!l) goto fail;
        q->headers = l;
    }
    CURL *e = q->easy;
    bool clear = !strncmp(url, "http://", 7);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, q);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L); /* for on_debug: stream ids, GOAWAY */
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, q);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     clear ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    /* libcurl 7.88.1 (Debian bookworm) breaks a reused h2c prior-knowledge
     * connection ("Error in the HTTP2 framing layer", curl#10634, fixed in
     * 8.0): cleartext endpoints get a connection per request. */
    if (clear) curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    if (h->ca_file[0]) curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, q);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) goto fail;
    q->next = h->reqs;
    if (h->reqs) h->reqs->prev = q;
    h->reqs = q;
    h->inflight++;
    return 0;
fail:
    curl_easy_cleanup(q->easy);
    req_free(q);
    return -1;
}

size_t push_http_inflight(const push_http *h) { return h->inflight; }

void push_http_close(push_http *h)
{
    if (!h || h->closing) return;
    h->closing = true;
    /* abort what is in flight: no callbacks */
    while (h->reqs) {
        req *q = h->reqs;
        curl_multi_remove_handle(h->multi, q->easy);
        curl_easy_cleanup(q->easy);
        req_free(q);
    }
    h->inflight = 0;
    curl_multi_cleanup(h->multi); /* closes the connections (socket_cb may drop their polls) */
    h->multi = NULL;
    while (h->socks) {
        sock_ctx *sc = h->socks;
        h->socks = sc->next;
        uv_poll_stop(&sc->poll);
        uv_close((uv_handle_t *)&sc->poll, on_handle_closed);
    }
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}
