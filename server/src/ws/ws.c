/* ws.c — WebSocket connections (RFC 6455); messages go to the consumer.
 * Inbound: wslay's event API parses frames (masking, fragmentation,
 * control frames, the message size limit). Its context is created when
 * bytes arrive and freed again once every byte fed to it belongs to a
 * complete frame and no fragmented message is open, so an idle socket keeps
 * no parser memory. Outbound frames are pre-built shared buffers. */
#include "ws/ws.h"
#include "base/metrics.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>
#include "base/config.h"
#include "net/conn.h"
#include "http/http_conn.h"
#include "base/log.h"
#include "base/util.h"

typedef struct ws_state {
    void *ud;                    /* the consumer's, NULL once detached */
    wslay_event_context_ptr ctx; /* only while a frame or message is partial */
    uint64_t fed, consumed;      /* bytes given to wslay / in complete frames */
    uint64_t frame_size;         /* size of the frame being received */
    uint64_t msg_len;            /* payload bytes of the message so far */
    bool in_msg;                 /* a fragmented message is open */
    bool in_recv;                /* inside wslay_event_recv */
    bool closing;                /* our close frame is queued */
    bool overflow;               /* outbound queue passed its cap */
    bool dead;                   /* connection gone while in_recv */
} ws_state;

/* Bytes being handed to wslay by ws_on_data on this reactor (kept out of
 * ws_state: every idle connection would carry them). */
static _Thread_local const char *t_feed;
static _Thread_local size_t t_feed_len;

static const ws_consumer *g_consumer;

static void ws_on_data(sb_conn *c, const char *data, size_t len);
static metrics_id m_slow;
__attribute__((constructor)) static void ws_metrics(void)
{
    m_slow = metrics_counter("sb_slow_consumer_closes_total",
                             "Sockets closed because their outbound queue overflowed (WebSocket 1013, long-poll buffer).", NULL);
}

static void ws_before_flush(sb_conn *c);
static void ws_sweep(sb_conn *c, uint64_t now);
static void ws_shutdown(sb_conn *c) { ws_close(c, 1001); }
static void ws_conn_gone(sb_conn *c);

/* WebSocket's handler table: installed on the connection by the upgrade. */
static const conn_handlers g_ws_handlers = {
    .on_data = ws_on_data,
    .before_flush = ws_before_flush,
    .sweep = ws_sweep,
    .shutdown = ws_shutdown,
    .gone = ws_conn_gone,
};

/* c's WebSocket state, or NULL when c runs another protocol. */
static inline ws_state *ws_of(const sb_conn *c)
{
    return c->h == &g_ws_handlers ? c->proto : NULL;
}

void ws_set_consumer(const ws_consumer *cons) { g_consumer = cons; }

bool ws_active(const sb_conn *c) { return !c->closing && c->h == &g_ws_handlers; }

/* ---- handshake ---- */

static bool header_has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (v && *v) {
        while (*v == ' ' || *v == ',' || *v == '\t') v++;
        const char *end = strchr(v, ',');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
        if (n == tl && util_ascii_ieq(v, n, tok)) return true;
        v = end;
    }
    return false;
}

int ws_upgrade_check(sb_req *req)
{
    const char *conn_h = http_req_header(req, "connection");
    if (!conn_h || !header_has_token(conn_h, "upgrade")) {
        char body[300];
        snprintf(body, sizeof body, "'connection' header must contain 'upgrade', got [\"%.200s\"]",
                 conn_h ? conn_h : "");
        http_respond(req, 400, "text/plain; charset=utf-8", body, strlen(body), NULL);
        return -1;
    }
    const char *up = http_req_header(req, "upgrade");
    const char *ver = http_req_header(req, "sec-websocket-version");
    const char *key = http_req_header(req, "sec-websocket-key");
    const char *bad = NULL;
    if (req->method != 1 /* HTTP_GET */) bad = "WebSocket upgrade needs GET";
    else if (!up || !header_has_token(up, "websocket")) bad = "'upgrade' header must contain 'websocket'";
    else if (!ver || strcmp(ver, "13") != 0) bad = "'sec-websocket-version' must be 13";
    else if (!key || strlen(key) != 24) bad = "'sec-websocket-key' must be 16 bytes in base64";
    if (bad) {
        http_respond(req, 400, "text/plain; charset=utf-8", bad, strlen(bad), NULL);
        return -1;
    }
    return 0;
}

int ws_upgrade(sb_req *req, const char *extra_headers, void *ud)
{
    /* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) */
    const char *key = http_req_header(req, "sec-websocket-key");
    char cat[64];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key ? key : "");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
    char accept[64];
    EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);

    sb_conn *c = req->conn;
    ws_state *w = calloc(1, sizeof *w);
    if (!w) {
        http_respond_error(req, 503, "unavailable", "out of memory", NULL);
        return -1;
    }
    w->ud = ud;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\ncache-control: max-age=0, private, must-revalidate\r\n"
                     "connection: Upgrade\r\nserver: switchboard\r\nsec-websocket-accept: %s\r\n%s"
                     "upgrade: websocket\r\n\r\n",
                     accept, extra_headers ? extra_headers : "");
    http_send_raw(c, head, (size_t)n);
    if (c->closing) { /* out of memory: c is closed and req detached from it */
        free(w);
        http_respond_error(req, 503, "unavailable", "out of memory", NULL); /* just frees req */
        return -1;
    }
    size_t rest_len = 0;
    char *rest = http_detach_for_upgrade(c, &rest_len);
    http_req_free(req);
    c->h = &g_ws_handlers;
    c->proto = w;
    conn_resume_read(c);
    if (rest_len) ws_on_data(c, rest, rest_len);
    free(rest);
    return 0;
}

/* ---- frames in ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    ws_state *w = ((sb_conn *)ud)->proto;
    if (!t_feed_len || w->dead) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < t_feed_len ? len : t_feed_len;
    memcpy(buf, t_feed, n);
    t_feed += n;
    t_feed_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    sb_conn *c = ud;
    sb_buf *b = sb_buf_from(data, len);
    if (!b) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    conn_send(c, b, 0);
    sb_buf_unref(b);
    return (ssize_t)len;
}

static void frame_start_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *a, void *ud)
{
    ws_state *w = ((sb_conn *)ud)->proto;
    uint64_t len = a->payload_length;
    w->frame_size = 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + 4 + len;
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME) w->msg_len = 0;
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME ||
        a->opcode == WSLAY_CONTINUATION_FRAME) {
        w->in_msg = !a->fin;
        /* refuse an oversize message from its header, before its payload */
        w->msg_len += len;
        if (w->msg_len > g_config.ws_max_message) ws_close((sb_conn *)ud, 1009);
    }
}

static void frame_end_cb(wslay_event_context_ptr ctx, void *ud)
{
    ws_state *w = ((sb_conn *)ud)->proto;
    w->consumed += w->frame_size;
    w->frame_size = 0;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                   void *ud)
{
    sb_conn *c = ud;
    ws_state *w = c->proto;
    if (w->closing || !w->ud) return;
    if (a->opcode == WSLAY_PING) {
        /* answered here, in order with our other frames (wslay's own
         * automatic pong is never sent) */
        sb_buf *b = sb_buf_from(a->msg, a->msg_length);
        if (b) {
            sb_buf_frame(b, WSLAY_PONG);
            conn_send(c, b, 0);
            sb_buf_unref(b);
        }
        return;
    }
    if (a->opcode == WSLAY_CONNECTION_CLOSE) {
        /* echo the code with an empty reason, as Cowboy does; a malformed
         * close frame gets 1002 (or 1007 for a reason that is not UTF-8) */
        int code = 0;
        if (a->msg_length == 1) code = 1002;
        else if (a->msg_length >= 2) {
            code = a->status_code;
            bool known = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                         (code >= 3000 && code <= 4999);
            if (!known) code = 1002;
            else if (!util_utf8_valid(a->msg + 2, a->msg_length - 2)) code = 1007;
        }
        ws_close(c, code);
        return;
    }
    if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME) return;
    if (a->opcode == WSLAY_TEXT_FRAME && !util_utf8_valid(a->msg, a->msg_length)) {
        ws_close(c, 1007);
        return;
    }
    g_consumer->on_message(w->ud, c, a->opcode == WSLAY_BINARY_FRAME, (const char *)a->msg,
                           a->msg_length);
}

static const struct wslay_event_callbacks g_cbs = {
    recv_cb, send_cb, NULL, frame_start_cb, NULL, frame_end_cb, msg_cb,
};

static void free_ctx(ws_state *w)
{
    if (w->ctx) wslay_event_context_free(w->ctx);
    w->ctx = NULL;
    w->fed = w->consumed = w->frame_size = 0;
}

/* At a frame boundary, reads the length a frame header announces (when the
 * header is complete in data); returns it or 0 when unknown. wslay reports a
 * frame only once payload bytes arrive, so an absurd length is caught here. */
static uint64_t announced_length(const uint8_t *d, size_t len)
{
    if (len < 2) return 0;
    uint64_t n = d[1] & 0x7f;
    if (n == 126) return len >= 4 ? ((uint64_t)d[2] << 8) | d[3] : 0;
    if (n == 127) {
        if (len < 10) return 0;
        n = 0;
        for (int i = 2; i < 10; i++) n = (n << 8) | d[i];
    }
    return n;
}

static void ws_on_data(sb_conn *c, const char *data, size_t len)
{
    ws_state *w = c->proto;
    if (!w || w->closing) return;
    if (w->fed == w->consumed &&
        (w->in_msg ? w->msg_len : 0) + announced_length((const uint8_t *)data, len) >
            g_config.ws_max_message) {
        ws_close(c, 1009);
        return;
    }
    if (!w->ctx) {
        if (wslay_event_context_server_init(&w->ctx, &g_cbs, c) != 0) {
            conn_close(c);
            return;
        }
        wslay_event_config_set_max_recv_msg_length(w->ctx, g_config.ws_max_message);
    }
    const char *saved_feed = t_feed; /* in case of a nested call */
    size_t saved_len = t_feed_len;
    t_feed = data;
    t_feed_len = len;
    w->fed += len;
    w->in_recv = true;
    int rc = wslay_event_recv(w->ctx);
    w->in_recv = false;
    t_feed = saved_feed;
    t_feed_len = saved_len;
    if (w->dead) { /* the connection was closed under us */
        c->proto = NULL;
        free_ctx(w);
        free(w);
        return;
    }
    if (rc != 0) {
        free_ctx(w);
        ws_close(c, 1002);
        return;
    }
    /* closing: nothing more is read, so the parser (about 8 KB) goes now,
     * not when the peer's FIN comes; in a disconnect storm every socket
     * would otherwise hold one through the close handshake */
    if (w->closing) {
        free_ctx(w);
        return;
    }
    if (!wslay_event_get_read_enabled(w->ctx)) {
        /* wslay refused a frame (1002 protocol error, 1009 too big) and
         * queued its close frame: send it and end the connection */
        w->closing = true;
        if (wslay_event_want_write(w->ctx)) wslay_event_send(w->ctx);
        free_ctx(w);
        conn_close_after_flush(c);
        return;
    }
    if (!w->in_msg && w->fed == w->consumed) free_ctx(w);
}

/* ---- frames out ---- */

/* A new close frame carrying code (0: no body), or NULL. */
static sb_buf *close_frame(int code)
{
    sb_buf *b = sb_buf_new(2);
    if (b && code) {
        uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        b = sb_buf_append(b, p, 2);
    }
    if (b) sb_buf_frame(b, 8);
    return b;
}

/* Close frames of codes 1000..1015, built once and shared by every socket
 * (a disconnect storm queues one to each: no allocation per socket).
 * Released at exit. */
#define CLOSE_SHARED_FIRST 1000
#define CLOSE_SHARED_N 16
static _Atomic(sb_buf *) g_close_frames[CLOSE_SHARED_N];
static pthread_once_t g_close_once = PTHREAD_ONCE_INIT;

static void close_frames_free(void)
{
    for (int i = 0; i < CLOSE_SHARED_N; i++) sb_buf_unref(atomic_exchange(&g_close_frames[i], NULL));
}

static void close_frames_init(void) { atexit(close_frames_free); }

/* A new reference to the close frame of code (shared when it can be). */
static sb_buf *close_frame_ref(int code)
{
    int i = code - CLOSE_SHARED_FIRST;
    if (i < 0 || i >= CLOSE_SHARED_N) return close_frame(code);
    sb_buf *cur = atomic_load(&g_close_frames[i]);
    if (!cur) {
        pthread_once(&g_close_once, close_frames_init);
        sb_buf *mine = close_frame(code);
        if (!mine) return NULL;
        if (atomic_compare_exchange_strong(&g_close_frames[i], &cur, mine)) cur = mine;
        else sb_buf_unref(mine);
    }
    return sb_buf_ref(cur);
}

void ws_close(sb_conn *c, int code)
{
    ws_state *w = ws_of(c);
    if (!w || w->closing || c->closing) return;
    w->closing = true;
    if (!w->in_recv) free_ctx(w); /* nothing more is parsed (in wslay: ws_on_data frees it) */
    sb_buf *b = close_frame_ref(code);
    if (b) {
        conn_send(c, b, 0);
        sb_buf_unref(b);
    }
    conn_close_after_flush(c);
}

int ws_send(sb_conn *c, sb_buf *b)
{
    ws_state *w = ws_of(c);
    if (!w || w->closing || w->overflow || c->closing) return -1;
    if (conn_send(c, b, g_config.outbound_max) != 0) {
        /* closed at the next flush, outside any delivery loop */
        w->overflow = true;
        conn_mark_dirty(c);
        return -1;
    }
    return 0;
}

int ws_send_parts(sb_conn *c, sb_buf *const *v, size_t n)
{
    ws_state *w = ws_of(c);
    if (!w || w->closing || w->overflow || c->closing) return -1;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += v[i]->len;
    if ((g_config.outbound_max && (size_t)c->qbytes + total > g_config.outbound_max) ||
        (size_t)c->qbytes + total > UINT32_MAX) {
        w->overflow = true;
        conn_mark_dirty(c);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (conn_send(c, v[i], 0) != 0) { /* out of memory: a frame cut short */
            conn_close(c);
            return -1;
        }
    return 0;
}

static void ws_before_flush(sb_conn *c)
{
    ws_state *w = c->proto;
    if (w && w->overflow && !w->closing) {
        metrics_inc(m_slow);
        log_msg(LOG_INFO, "slow_consumer_closed", "queued", json_integer((json_int_t)c->qbytes), NULL);
        conn_drop_unsent(c);
        ws_close(c, 1013);
    }
}

static void ws_conn_gone(sb_conn *c)
{
    ws_state *w = c->proto;
    if (!w) return;
    if (!w->in_recv) c->proto = NULL;
    if (w->ud) {
        void *ud = w->ud;
        w->ud = NULL;
        g_consumer->on_gone(ud);
    }
    if (w->in_recv) {
        w->dead = true; /* ws_on_data frees it after wslay returns */
        return;
    }
    free_ctx(w);
    free(w);
}

static void ws_sweep(sb_conn *c, uint64_t now)
{
    ws_state *w = c->proto;
    if (w && !w->closing && now - c->last_rx_ms >= g_config.idle_timeout_ms) ws_close(c, 1000);
}
