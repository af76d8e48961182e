/* http.c — HTTP/1.1 on llhttp: request parsing under limits, keep-alive,
 * pipelining (one request handled at a time, in order), responses. */
#include "http/http.h"
#include "base/metrics.h"

#include <llhttp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "http/client_ip.h"
#include "base/config.h"
#include "net/conn.h"
#include "http/http_conn.h"
#include "base/log.h"
#include "http/router.h"
#include "base/util.h"
#include "base/strbuf.h"

typedef struct http_state {
    llhttp_t parser;
    sb_req *req;      /* being parsed */
    sb_req *active;   /* dispatched, not yet answered */
    strbuf url, hname, hval, body;
    size_t head_bytes;
    int hstate;       /* 0: none, 1: in a field name, 2: in a value */
    int err_status;   /* 413 / 431 when a limit stopped the parser */
    char *pending;    /* bytes received after the current request */
    size_t pending_len;
    bool in_parse;
    bool closing_after; /* server shutting down: close after the response */
    bool peer_known;    /* peer: the client's address, read once per connection */
    bool streaming;     /* active is a streamed response (http_stream_begin) */
    uint64_t stream_ms; /* loop time of the stream's last progress */
    bool stream_raw;    /* the stream has a Content-Length: no chunk framing */
    http_stream_fn wait_fn; /* a stream waiting for the client to drain */
    void *wait_arg;
    /* a streamed request body (router_add_stream) */
    bool bstream;       /* the parser is inside such a body */
    bool hdr_pause;     /* the parser paused at such a request's headers */
    bool body_end;      /* the parser paused at the end of such a body */
    bool body_paused;   /* the consumer asked for a pause */
    bool body_done;     /* sreq's body is complete */
    sb_req *sreq;       /* the active request whose body streams */
    http_body_fn body_fn;
    void *body_arg;
    char peer[48];
} http_state;

static llhttp_settings_t g_settings;

static void http_on_data(sb_conn *c, const char *data, size_t len);
static void http_sweep(sb_conn *c, uint64_t now);
static void http_shutdown(sb_conn *c);
static void http_conn_gone(sb_conn *c);

/* HTTP's handler table: what the connection calls while it speaks HTTP. */
static const conn_handlers g_http_handlers = {
    .on_data = http_on_data,
    .sweep = http_sweep,
    .shutdown = http_shutdown,
    .gone = http_conn_gone,
};

/* c's HTTP state, or NULL when c runs another protocol (or was upgraded). */
static inline http_state *http_of(const sb_conn *c)
{
    return c->h == &g_http_handlers ? c->proto : NULL;
}

static void req_free(sb_req *req)
{
    if (!req) return;
    for (int i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    free(req->target);
    free(req->path);
    free(req->body);
    free(req);
}

void http_req_free(sb_req *req) { req_free(req); }

static http_state *H(llhttp_t *p) { return ((sb_conn *)p->data)->proto; }

static int push_header(http_state *h)
{
    if (h->hstate != 2) return 0;
    sb_req *req = h->req;
    if (req->nheaders >= 100) {
        h->err_status = 431; /* too many header fields */
        return -1;
    }
    sb_header *nh = realloc(req->headers, (size_t)(req->nheaders + 1) * sizeof *nh);
    if (!nh) return -1;
    req->headers = nh;
    for (size_t i = 0; i < h->hname.len; i++)
        if (h->hname.p[i] >= 'A' && h->hname.p[i] <= 'Z') h->hname.p[i] += 32;
    nh[req->nheaders].name = h->hname.p ? h->hname.p : strdup("");
    nh[req->nheaders].value = h->hval.p ? h->hval.p : strdup("");
    req->nheaders++;
    h->hname = (strbuf){0};
    h->hval = (strbuf){0};
    h->hstate = 0;
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    http_state *h = H(p);
    sb_conn *c = p->data;
    req_free(h->req);
    h->req = calloc(1, sizeof(sb_req));
    if (!h->req) return -1;
    h->head_bytes = 0;
    h->hstate = 0;
    strbuf_free(&h->url);
    strbuf_free(&h->body);
    c->mark_ms = uv_now(&c->r->loop);
    return 0;
}

static int limit_head(http_state *h, size_t n)
{
    h->head_bytes += n;
    if (h->head_bytes > g_config.http_max_header) {
        h->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    http_state *h = H(p);
    if (limit_head(h, n)) return -1;
    return strbuf_add(&h->url, at, n, 0);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    http_state *h = H(p);
    if (limit_head(h, n + 4)) return -1;
    if (h->hstate == 2 && push_header(h)) return -1;
    h->hstate = 1;
    return strbuf_add(&h->hname, at, n, 0);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    http_state *h = H(p);
    if (limit_head(h, n)) return -1;
    h->hstate = 2;
    if (!h->hval.p && strbuf_add(&h->hval, "", 0, 0)) return -1;
    return strbuf_add(&h->hval, at, n, 0);
}

/* Fills the request's line fields from the parser (at the end of the
 * message, or at the headers for a streamed body). */
static void fill_req(http_state *h, llhttp_t *p)
{
    sb_req *req = h->req;
    req->method = llhttp_get_method(p);
    req->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    if (!req->target) {
        req->target = h->url.p ? h->url.p : strdup("");
        h->url = (strbuf){0};
    }
    if (!req->body) {
        req->body = h->body.p ? h->body.p : strdup("");
        req->body_len = h->body.len;
        h->body = (strbuf){0};
    }
}

/* True if the request being parsed goes to a router_add_stream route. */
static bool stream_route(llhttp_t *p, http_state *h)
{
    const char *u = h->url.p ? h->url.p : "";
    const char *qm = strchr(u, '?');
    size_t plen = qm ? (size_t)(qm - u) : h->url.len;
    char *path = util_url_decode(u, plen, false);
    bool yes = path && router_streams_body(llhttp_get_method(p), path, ((sb_conn *)p->data)->admin);
    free(path);
    return yes;
}

static int on_headers_complete(llhttp_t *p)
{
    http_state *h = H(p);
    if (h->hstate == 1) h->hstate = 2; /* a field with an empty value */
    if (push_header(h)) return -1;
    if (!p->upgrade && stream_route(p, h)) {
        fill_req(h, p);
        h->req->body_streamed = true;
        h->bstream = true;
        h->hdr_pause = true;
        return HPE_PAUSED; /* dispatched now (parse_loop); the body follows */
    }
    if (p->content_length > g_config.http_max_body && (p->flags & F_CONTENT_LENGTH)) {
        h->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    http_state *h = H(p);
    if (h->bstream) { /* to the consumer, if it still listens (else dropped) */
        sb_req *req = h->sreq;
        if (req && h->active == req && h->body_fn) h->body_fn(req, HTTP_BODY_DATA, at, n, h->body_arg);
        return 0;
    }
    if (strbuf_add(&h->body, at, n, g_config.http_max_body)) {
        h->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    http_state *h = H(p);
    if (h->bstream) { /* a streamed body is complete: told from parse_loop */
        h->bstream = false;
        h->body_end = true;
        return HPE_PAUSED;
    }
    fill_req(h, p);
    return p->upgrade ? 0 : HPE_PAUSED;
}

static void init_settings(void)
{
    static bool done;
    if (done) return;
    llhttp_settings_init(&g_settings);
    g_settings.on_message_begin = on_message_begin;
    g_settings.on_url = on_url;
    g_settings.on_header_field = on_header_field;
    g_settings.on_header_value = on_header_value;
    g_settings.on_headers_complete = on_headers_complete;
    g_settings.on_body = on_body;
    g_settings.on_message_complete = on_message_complete;
    done = true;
}

int http_conn_open(sb_conn *c)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_settings);
    http_state *h = calloc(1, sizeof *h);
    if (!h) return -1;
    llhttp_init(&h->parser, HTTP_REQUEST, &g_settings);
    h->parser.data = c;
    c->h = &g_http_handlers;
    c->proto = h;
    return 0;
}

static void http_state_free(http_state *h)
{
    req_free(h->req);
    strbuf_free(&h->url);
    strbuf_free(&h->hname);
    strbuf_free(&h->hval);
    strbuf_free(&h->body);
    free(h->pending);
    free(h);
}

static void http_conn_gone(sb_conn *c)
{
    http_state *h = http_of(c);
    if (!h) return;
    sb_req *active = h->active;
    http_stream_fn fn = h->streaming ? h->wait_fn : NULL;
    void *arg = h->wait_arg;
    http_body_fn bfn = active && active == h->sreq && !h->body_done ? h->body_fn : NULL;
    void *barg = h->body_arg;
    if (active) active->conn = NULL;
    c->on_drain = NULL;
    c->proto = NULL;
    http_state_free(h);
    if (fn) fn(active, arg); /* a stream waiting to write more: it is over */
    if (bfn) bfn(active, HTTP_BODY_ABORT, NULL, 0, barg); /* a body being read: it is over */
}

static const char *http_date(void)
{
    static _Thread_local char buf[40];
    static _Thread_local time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

const char *http_reason(int s)
{
    switch (s) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void http_send_raw(sb_conn *c, const char *data, size_t len)
{
    sb_buf *b = sb_buf_from(data, len);
    if (!b) {
        conn_close(c);
        return;
    }
    conn_send(c, b, 0);
    sb_buf_unref(b);
}

static void parse_loop(sb_conn *c);

/* Whether the connection can take another request after req's response:
 * not when the server stops, nor when req's streamed body was not read to
 * its end (the rest of it is not a request). */
static bool can_keep_alive(const http_state *h, const sb_conn *c, const sb_req *req)
{
    return req->keep_alive && !h->closing_after && !c->r->stopping &&
           !(h->sreq == req && !h->body_done);
}

/* The status line and headers of a response, with the blank line, into
 * out; returns snprintf's count. */
static int head_text(char *out, size_t cap, int status, const char *ctype, size_t len,
                     bool keep_alive)
{
    return snprintf(out, cap,
                    "HTTP/1.1 %d %s\r\nserver: switchboard\r\ndate: %s\r\ncontent-length: %zu\r\n"
                    "%s%s%s%s\r\n",
                    status, http_reason(status), http_date(), len, ctype ? "content-type: " : "",
                    ctype ? ctype : "", ctype ? "\r\n" : "", keep_alive ? "" : "connection: close\r\n");
}

/* Writes a response on c (status line, headers, body); closes after it when
 * !keep_alive. Does not touch any request. */
static void write_response(sb_conn *c, int status, const char *ctype, const void *body, size_t len,
                           const char *extra, bool keep_alive, bool head_only)
{
    char head[1024];
    int n = head_text(head, sizeof head, status, ctype, len, keep_alive);
    size_t elen = extra ? strlen(extra) : 0;
    sb_buf *b = sb_buf_new((size_t)n + elen + len);
    if (!b) {
        conn_close(c);
        return;
    }
    /* extra headers go before the blank line */
    b = sb_buf_append(b, head, (size_t)n - 2);
    if (b && elen) b = sb_buf_append(b, extra, elen);
    if (b) b = sb_buf_append(b, "\r\n", 2);
    if (b && len && !head_only) b = sb_buf_append(b, body, len);
    if (!b) {
        conn_close(c);
        return;
    }
    conn_send(c, b, 0);
    sb_buf_unref(b);
    if (!keep_alive) conn_close_after_flush(c);
}

/* The active request of c was answered: on to the next one. */
static void answered(sb_conn *c, bool ka)
{
    http_state *h = c->proto;
    if (h->sreq == h->active) {
        h->sreq = NULL;
        h->body_fn = NULL;
    }
    h->active = NULL;
    if (ka) {
        conn_resume_read(c);
        if (!h->in_parse && h->pending_len) parse_loop(c);
    }
}

/* One request answered: its route's counter of the status class. */
static void count_status(const sb_req *req, int status)
{
    int cls = status / 100;
    if (req->metric_codes && cls >= 1 && cls <= 5) metrics_inc(req->metric_codes[cls - 1]);
}

void http_respond(sb_req *req, int status, const char *ctype, const void *body, size_t len,
                const char *extra)
{
    sb_conn *c = req->conn;
    http_state *h = c ? http_of(c) : NULL;
    if (h && !c->closing && h->active == req) {
        bool ka = can_keep_alive(h, c, req);
        count_status(req, status);
        write_response(c, status, ctype, body, len, extra, ka, req->method == HTTP_HEAD);
        answered(c, ka);
    }
    req_free(req);
}

#define BODY_HEAD_ROOM 256 /* room for the status line and headers in front of a body */

/* Each thread keeps a few response buffers of http_respond_body_new for
 * reuse once their response is written (the pool then holds the only
 * reference): a body over 64 KiB allocated and freed per request makes
 * glibc trim its heap on each free (madvise, then page faults and TLB
 * shootdowns on the next request). At most BODY_POOL buffers of at most
 * BODY_POOL_MAX bytes per thread; freed when the thread exits. */
#define BODY_POOL 4
#define BODY_POOL_MAX (1u << 20)

typedef struct body_pool {
    sb_buf *b[BODY_POOL];
} body_pool;

static pthread_key_t g_pool_key;
static bool g_pool_ok;

static void body_pool_free(void *p)
{
    body_pool *bp = p;
    for (int i = 0; i < BODY_POOL; i++) sb_buf_unref(bp->b[i]);
    free(bp);
}

static void body_pool_init(void) { g_pool_ok = pthread_key_create(&g_pool_key, body_pool_free) == 0; }

/* A buffer with at least `cap` content bytes: a free pooled one, or a new
 * one (pooled when a slot is free or holds a smaller free one). */
static sb_buf *body_buf(size_t cap)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, body_pool_init);
    body_pool *bp = g_pool_ok ? pthread_getspecific(g_pool_key) : NULL;
    if (!bp && g_pool_ok && (bp = calloc(1, sizeof *bp)) && pthread_setspecific(g_pool_key, bp) != 0) {
        free(bp);
        bp = NULL;
    }
    if (!bp || cap > BODY_POOL_MAX) return sb_buf_new(cap);
    int slot = -1;
    for (int i = 0; i < BODY_POOL; i++) {
        sb_buf *b = bp->b[i];
        bool free_now = !b || atomic_load_explicit(&b->refs, memory_order_acquire) == 1;
        if (b && free_now && b->cap >= SB_BUF_HEADROOM + cap) {
            b->start = SB_BUF_HEADROOM;
            b->len = 0;
            b->hdr = 0;
            b->opcode = 0;
            return sb_buf_ref(b);
        }
        if (free_now && slot < 0) slot = i;
    }
    /* rounded up, so that pages of about the same size reuse it */
    size_t want = (cap + 16383) & ~(size_t)16383;
    sb_buf *b = sb_buf_new(want);
    if (!b || slot < 0) return b;
    sb_buf_unref(bp->b[slot]); /* a smaller free one, or none */
    bp->b[slot] = b;
    return sb_buf_ref(b);
}

sb_buf *http_respond_body_new(size_t body_cap, char **body)
{
    *body = NULL;
    if (body_cap > UINT32_MAX - BODY_HEAD_ROOM - SB_BUF_HEADROOM - 65536) return NULL;
    sb_buf *b = body_buf(BODY_HEAD_ROOM + body_cap);
    if (b) *body = b->data + SB_BUF_HEADROOM + BODY_HEAD_ROOM;
    return b;
}

void http_respond_body(sb_req *req, int status, const char *ctype, sb_buf *b, size_t len)
{
    sb_conn *c = req->conn;
    http_state *h = c ? http_of(c) : NULL;
    if (h && !c->closing && h->active == req) {
        bool ka = can_keep_alive(h, c, req);
        if (len < SIZE_MAX) count_status(req, status);
        char head[BODY_HEAD_ROOM];
        int n = head_text(head, sizeof head, status, ctype, len, ka);
        if (n <= 0 || n >= BODY_HEAD_ROOM) { /* cannot happen with our headers: copy */
            sb_buf_unref(b);
            http_respond(req, 500, NULL, NULL, 0, NULL);
            return;
        }
        /* the head goes right in front of the body: one buffer, no copy */
        b->start = (uint32_t)(SB_BUF_HEADROOM + BODY_HEAD_ROOM - n);
        memcpy(b->data + b->start, head, (size_t)n);
        b->len = (uint32_t)((size_t)n + (req->method == HTTP_HEAD ? 0 : len));
        conn_send(c, b, 0);
        if (!ka) conn_close_after_flush(c);
        answered(c, ka);
    }
    sb_buf_unref(b);
    req_free(req);
}

/* The stream's connection state, or NULL when the client is gone. */
static http_state *stream_state(const sb_req *req)
{
    sb_conn *c = req->conn;
    http_state *h = c ? http_of(c) : NULL;
    if (!h || c->closing || h->active != req || !h->streaming) return NULL;
    return h;
}

int http_stream_begin(sb_req *req, int status, const char *ctype, const char *extra)
{
    sb_conn *c = req->conn;
    http_state *hs = c ? http_of(c) : NULL;
    if (!hs || c->closing || hs->active != req) return -1;
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nserver: switchboard\r\ndate: %s\r\ntransfer-encoding: chunked\r\n"
                     "%s%s%s%s",
                     status, http_reason(status), http_date(), ctype ? "content-type: " : "",
                     ctype ? ctype : "", ctype ? "\r\n" : "", extra ? extra : "");
    if (n <= 0 || n >= (int)sizeof head - 2) return -1;
    memcpy(head + n, "\r\n", 3);
    sb_buf *b = sb_buf_from(head, (size_t)n + 2);
    if (!b) return -1;
    conn_send(c, b, 0);
    sb_buf_unref(b);
    hs->streaming = true;
    hs->stream_ms = uv_now(&c->r->loop);
    return 0;
}

int http_stream_begin_len(sb_req *req, int status, const char *ctype, const char *extra,
                          unsigned long long length)
{
    sb_conn *c = req->conn;
    http_state *hs = c ? http_of(c) : NULL;
    if (!hs || c->closing || hs->active != req) return -1;
    char head[3072];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nserver: switchboard\r\ndate: %s\r\ncontent-length: %llu\r\n"
                     "%s%s%s%s",
                     status, http_reason(status), http_date(), length, ctype ? "content-type: " : "",
                     ctype ? ctype : "", ctype ? "\r\n" : "", extra ? extra : "");
    if (n <= 0 || n >= (int)sizeof head - 2) return -1;
    memcpy(head + n, "\r\n", 3);
    sb_buf *b = sb_buf_from(head, (size_t)n + 2);
    if (!b) return -1;
    conn_send(c, b, 0);
    sb_buf_unref(b);
    hs->streaming = true;
    hs->stream_raw = true;
    hs->stream_ms = uv_now(&c->r->loop);
    return 0;
}

int http_stream_send(sb_req *req, sb_buf *b)
{
    http_state *h = stream_state(req);
    if (!h || !h->stream_raw) return -1;
    return conn_send(req->conn, b, 0);
}

int http_stream_write(sb_req *req, const void *data, size_t len)
{
    http_state *h = stream_state(req);
    if (!h) return -1;
    if (!len) return 0;
    if (h->stream_raw) {
        sb_buf *rb = sb_buf_from(data, len);
        if (!rb) return -1;
        int rc = conn_send(req->conn, rb, 0);
        sb_buf_unref(rb);
        return rc;
    }
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    sb_buf *b = sb_buf_new((size_t)n + len + 2);
    if (b) b = sb_buf_append(b, size, (size_t)n);
    if (b) b = sb_buf_append(b, data, len);
    if (b) b = sb_buf_append(b, "\r\n", 2);
    if (!b) return -1;
    int rc = conn_send(req->conn, b, 0);
    sb_buf_unref(b);
    return rc;
}

size_t http_stream_queued(const sb_req *req)
{
    return stream_state(req) ? req->conn->qbytes : 0;
}

static void stream_drained(sb_conn *c, void *arg)
{
    http_state *h = http_of(c);
    sb_req *req = arg;
    if (!h || h->active != req || !h->wait_fn) return;
    http_stream_fn fn = h->wait_fn;
    h->wait_fn = NULL;
    h->stream_ms = uv_now(&c->r->loop);
    fn(req, h->wait_arg);
}

void http_stream_wait(sb_req *req, size_t below, http_stream_fn fn, void *arg)
{
    http_state *h = stream_state(req);
    if (!h) { /* gone: tell at once */
        fn(req, arg);
        return;
    }
    h->wait_fn = fn;
    h->wait_arg = arg;
    conn_on_drain(req->conn, below, stream_drained, req);
}

/* Leaves streaming mode; the request is answered (keep-alive when ka). */
static void stream_done(sb_conn *c, bool ka)
{
    http_state *h = http_of(c);
    h->streaming = false;
    h->stream_raw = false;
    h->wait_fn = NULL;
    conn_on_drain(c, 0, NULL, NULL);
    if (!ka) conn_close_after_flush(c);
    answered(c, ka);
}

void http_stream_end(sb_req *req)
{
    http_state *h = stream_state(req);
    if (h) {
        sb_conn *c = req->conn;
        bool ka = can_keep_alive(h, c, req);
        if (h->stream_raw) {
            stream_done(c, ka);
            req_free(req);
            return;
        }
        sb_buf *b = sb_buf_from("0\r\n\r\n", 5);
        if (b) {
            conn_send(c, b, 0);
            sb_buf_unref(b);
            stream_done(c, ka);
        } else {
            conn_close(c);
        }
    }
    req_free(req);
}

void http_stream_abort(sb_req *req)
{
    http_state *h = stream_state(req);
    if (h) {
        sb_conn *c = req->conn;
        h->streaming = false;
        h->stream_raw = false;
        h->wait_fn = NULL;
        h->active = NULL;
        req->conn = NULL;
        conn_close(c);
    }
    req_free(req);
}

void http_respond_json(sb_req *req, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (!s) {
        http_respond(req, 500, "application/json", "{\"error\":{\"code\":\"internal\",\"message\":\"encoding failed\",\"details\":{}}}", 79, NULL);
        return;
    }
    http_respond(req, status, "application/json; charset=utf-8", s, strlen(s), NULL);
    free(s);
}

void http_respond_error_h(sb_req *req, int status, const char *code, const char *message,
                        json_t *details, const char *extra)
{
    json_t *o = json_pack("{s:{s:s,s:s,s:o}}", "error", "code", code, "message", message,
                          "details", details ? details : json_object());
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        http_respond(req, status, NULL, NULL, 0, extra);
        return;
    }
    http_respond(req, status, "application/json; charset=utf-8", s, strlen(s), extra);
    free(s);
}

void http_respond_error(sb_req *req, int status, const char *code, const char *message,
                      json_t *details)
{
    http_respond_error_h(req, status, code, message, details, NULL);
}

const char *http_req_header(const sb_req *req, const char *name)
{
    for (int i = 0; i < req->nheaders; i++)
        if (strcmp(req->headers[i].name, name) == 0) return req->headers[i].value;
    return NULL;
}

/* Calls fn for each name=value pair of the query; stops when fn returns 1. */
static char *query_find(const sb_req *req, const char *name, bool last, int *count)
{
    const char *q = req->query;
    size_t nl = strlen(name);
    char *found = NULL;
    int cnt = 0;
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t seg = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', seg);
        size_t klen = eq ? (size_t)(eq - q) : seg;
        if (klen == nl && memcmp(q, name, nl) == 0) {
            cnt++;
            if (!count && (last || !found)) {
                free(found);
                found = eq ? util_url_decode(eq + 1, seg - klen - 1, true) : strdup("");
                if (!last) break;
            }
        }
        q = amp ? amp + 1 : NULL;
    }
    if (count) *count = cnt;
    return found;
}

char *http_req_query(const sb_req *req, const char *name, bool last)
{
    return query_find(req, name, last, NULL);
}

int http_req_query_count(const sb_req *req, const char *name)
{
    int n = 0;
    query_find(req, name, false, &n);
    return n;
}

static void dispatch(sb_conn *c, sb_req *req, bool upgrade)
{
    http_state *h = c->proto;
    h->active = req;
    h->req = NULL;
    req->conn = c;
    req->r = c->r;
    if (!h->peer_known) {
        conn_peer_ip(c, h->peer, sizeof h->peer);
        h->peer_known = true;
    }
    client_ip_of_request(req, h->peer); /* the peer, or X-Forwarded-For from a trusted proxy */
    char *t = req->target;
    char *qm = strchr(t, '?');
    size_t plen = qm ? (size_t)(qm - t) : strlen(t);
    req->query = qm ? qm + 1 : t + plen;
    req->path = util_url_decode(t, plen, false);
    if (upgrade) req->keep_alive = false; /* what follows is not HTTP */
    /* reading pauses while the request is handled (parse_loop, after this
     * returns): a request answered (or upgraded, e.g. a WebSocket route) at
     * once costs no pause and resume (two epoll_ctl calls per connection) */
    if (!req->path || req->path[0] != '/') {
        http_respond_error(req, 400, "bad_request", "malformed request target", NULL);
        return;
    }
    router_dispatch(req, c->admin);
}

/* True while the active request's streamed body should be parsed on. */
static bool body_flowing(const http_state *h)
{
    return h->active && h->active == h->sreq && h->body_fn && !h->body_paused && !h->body_done;
}

/* Answers a request the parser refused (malformed, over a limit) and closes
 * after it. A streamed body being read ends (HTTP_BODY_ABORT) first. */
static void parse_failed(sb_conn *c, http_state *h, llhttp_errno_t err)
{
    int status = h->err_status ? h->err_status : 400;
    const char *msg = status == 431   ? "request header section too large"
                      : status == 413 ? "request body too large"
                                      : llhttp_errno_name(err);
    sb_req *sreq = h->sreq;
    if (sreq && h->active == sreq && !h->body_done) {
        http_body_fn fn = h->body_fn;
        void *arg = h->body_arg;
        h->sreq = NULL;
        h->body_fn = NULL;
        h->active = NULL;
        sreq->conn = NULL; /* its answer only frees it */
        if (fn) fn(sreq, HTTP_BODY_ABORT, NULL, 0, arg);
        if (http_of(c) != h || c->closing) return;
    } else if (h->active) {
        return; /* a request in hand answers first; then the connection closes */
    }
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"details\":{}}}",
                     status == 413 ? "payload_too_large" : "bad_request", msg);
    write_response(c, status, "application/json; charset=utf-8", body, (size_t)n, NULL, false, false);
}

/* Runs the parser over pending bytes until it needs more, a request is being
 * handled (unless its body streams to a ready consumer: then that body is
 * parsed on, HTTP_BODY_SLICE bytes at a time), or the connection leaves
 * HTTP mode. */
static void parse_loop(sb_conn *c)
{
    http_state *h = c->proto;
    h->in_parse = true;
    while (http_of(c) == h && (!h->active || body_flowing(h)) && h->pending_len && !c->closing &&
           !c->draining) {
        char *data = h->pending;
        size_t len = h->pending_len;
        size_t n = h->active && len > HTTP_BODY_SLICE ? HTTP_BODY_SLICE : len;
        h->pending = NULL;
        h->pending_len = 0;
        llhttp_errno_t err = llhttp_execute(&h->parser, data, n);
        if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
            free(data);
            if (http_of(c) == h) parse_failed(c, h, err);
            break;
        }
        if (http_of(c) != h) { /* cannot happen within execute; be safe */
            free(data);
            return;
        }
        size_t used = n;
        if (err != HPE_OK) {
            const char *pos = llhttp_get_error_pos(&h->parser);
            used = pos ? (size_t)(pos - data) : n;
        }
        if (used < len) { /* the rest waits in pending */
            memmove(data, data + used, len - used);
            h->pending = data;
            h->pending_len = len - used;
        } else {
            free(data);
        }
        if (err == HPE_OK) continue;
        if (err == HPE_PAUSED) llhttp_resume(&h->parser);
        else llhttp_resume_after_upgrade(&h->parser);
        if (h->hdr_pause) { /* a streamed-body request: its handler runs now */
            h->hdr_pause = false;
            sb_req *req = h->req;
            h->sreq = req;
            h->body_done = false;
            h->body_paused = false;
            h->body_fn = NULL;
            dispatch(c, req, false);
            if (http_of(c) != h) return;
            continue;
        }
        if (h->body_end) { /* its body is complete */
            h->body_end = false;
            sb_req *req = h->sreq;
            if (req && h->active == req) {
                h->body_done = true;
                if (h->body_fn) h->body_fn(req, HTTP_BODY_END, NULL, 0, h->body_arg);
                if (http_of(c) != h) return;
            }
            continue;
        }
        dispatch(c, h->req, err == HPE_PAUSED_UPGRADE);
        if (http_of(c) != h) return; /* upgraded: h is gone */
    }
    if (http_of(c) == h) {
        h->in_parse = false;
        if (h->active && !c->closing) {
            if (body_flowing(h)) conn_resume_read(c);
            else conn_pause_read(c); /* answered later, or the consumer is busy */
        }
    }
}

static void http_on_data(sb_conn *c, const char *data, size_t len)
{
    http_state *h = c->proto;
    if (!h) return;
    size_t cap = g_config.http_max_header + g_config.http_max_body + 65536;
    if (h->pending_len + len > cap) {
        conn_close(c);
        return;
    }
    char *np = realloc(h->pending, h->pending_len + len);
    if (!np) {
        conn_close(c);
        return;
    }
    memcpy(np + h->pending_len, data, len);
    h->pending = np;
    h->pending_len += len;
    if (h->active && !body_flowing(h)) {
        conn_pause_read(c);
        return;
    }
    if (!h->in_parse) parse_loop(c);
}

/* The state of req's connection while its streamed body is being read. */
static http_state *body_state(const sb_req *req)
{
    sb_conn *c = req->conn;
    http_state *h = c ? http_of(c) : NULL;
    if (!h || c->closing || h->active != req || h->sreq != req) return NULL;
    return h;
}

void http_body_read(sb_req *req, http_body_fn fn, void *arg)
{
    http_state *h = body_state(req);
    if (!h) { /* the client went away */
        fn(req, HTTP_BODY_ABORT, NULL, 0, arg);
        return;
    }
    h->body_fn = fn;
    h->body_arg = arg;
    h->body_paused = false;
    sb_conn *c = req->conn;
    c->last_rx_ms = uv_now(&c->r->loop);
    if (h->body_done) { /* cannot happen: the parser waits for fn */
        fn(req, HTTP_BODY_END, NULL, 0, arg);
        return;
    }
    if (!h->in_parse) parse_loop(c);
}

void http_body_pause(sb_req *req)
{
    http_state *h = body_state(req);
    if (h) h->body_paused = true;
}

void http_body_resume(sb_req *req)
{
    http_state *h = body_state(req);
    if (!h || !h->body_paused) return;
    h->body_paused = false;
    sb_conn *c = req->conn;
    c->last_rx_ms = uv_now(&c->r->loop); /* the idle time counts from here */
    if (!h->in_parse) parse_loop(c);
}

char *http_detach_for_upgrade(sb_conn *c, size_t *len)
{
    http_state *h = http_of(c);
    char *rest = h->pending;
    *len = h->pending_len;
    h->pending = NULL;
    h->pending_len = 0;
    h->active = NULL;
    c->proto = NULL; /* c->h stays until the new protocol installs its own */
    http_state_free(h);
    return rest;
}

static void http_sweep(sb_conn *c, uint64_t now)
{
    http_state *h = c->proto;
    if (h && h->streaming && h->wait_fn && now - h->stream_ms > g_config.http_idle_ms) {
        conn_close(c); /* a stream the client stopped reading: its wait ends (gone) */
        return;
    }
    if (h && h->active && h->sreq == h->active && h->body_fn && !h->body_done && !h->body_paused &&
        now - c->last_rx_ms > g_config.http_idle_ms) {
        conn_close(c); /* a body that stopped arriving: the consumer sees HTTP_BODY_ABORT */
        return;
    }
    if (!h || h->active) return;
    bool mid_request = h->req != NULL || h->pending_len > 0;
    if (mid_request && now - c->mark_ms > g_config.http_idle_ms) {
        const char *body = "{\"error\":{\"code\":\"bad_request\",\"message\":\"request took too long\",\"details\":{}}}";
        write_response(c, 408, "application/json; charset=utf-8", body, strlen(body), NULL, false, false);
    } else if (!mid_request && now - c->last_rx_ms > g_config.http_idle_ms) {
        conn_close(c);
    }
}

static void http_shutdown(sb_conn *c)
{
    http_state *h = c->proto;
    if (!h) return;
    if (h->active) h->closing_after = true;
    else conn_close(c);
}
