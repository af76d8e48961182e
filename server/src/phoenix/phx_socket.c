/* phx_socket.c — Phoenix socket semantics (see phx_socket.h). The frame
 * order of every case follows what Phoenix 1.7 sends (phoenix-transcripts.md):
 * a duplicate join replies to the new join first, then sends phx_close to the
 * old join_ref; phx_leave replies, then sends phx_close; an event with no
 * handler crashes the channel (phx_error); unknown topics get
 * "unmatched topic" with a null join_ref. */
#include "phoenix/phx_socket.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "base/log.h"
#include "base/metrics.h"
#include "phoenix/phx_fanout.h"

#define MAX_INQ 256

static _Thread_local phx_socket *t_sockets; /* this reactor's sockets */

struct phx_deferred {
    phx_channel *ch;
    json_t *ref;
};

static void process(phx_socket *s, phx_msg *m);

/* Small join_refs ("1" .. "1023", what phoenix.js sends) are shared by all
 * channels instead of each holding a private jansson string (two small
 * allocations, about 128 bytes of heap per joined channel). Made on first
 * use (jansson's reference counts are atomic), released at exit. */
#define JOIN_REF_CACHE 1024
static _Atomic(json_t *) g_join_refs[JOIN_REF_CACHE];
static pthread_once_t g_join_refs_once = PTHREAD_ONCE_INIT;

static void join_refs_free(void)
{
    for (int i = 0; i < JOIN_REF_CACHE; i++) json_decref(atomic_exchange(&g_join_refs[i], NULL));
}

static void join_refs_init(void) { atexit(join_refs_free); }

/* Returns a new reference to join_ref, or to an equal shared string. */
static json_t *join_ref_intern(json_t *jr)
{
    if (!json_is_string(jr)) return json_incref(jr);
    const char *v = json_string_value(jr);
    size_t n = json_string_length(jr);
    if (n == 0 || n > 4 || (v[0] == '0' && n > 1)) return json_incref(jr);
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return json_incref(jr);
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    if (x >= JOIN_REF_CACHE) return json_incref(jr);
    json_t *cur = atomic_load(&g_join_refs[x]);
    if (!cur) {
        pthread_once(&g_join_refs_once, join_refs_init);
        json_t *mine = json_incref(jr);
        if (atomic_compare_exchange_strong(&g_join_refs[x], &cur, mine)) cur = mine;
        else json_decref(mine);
    }
    return json_incref(cur);
}

static void socket_unref(phx_socket *s)
{
    if (--s->refs) return;
    for (uint32_t i = 0; i < s->inq_len; i++) phx_msg_clear(&s->inq[i]);
    free(s->inq);
    free(s);
}

phx_socket *phx_socket_new(reactor *r, phx_vsn vsn, const token_claims *claims,
                           const phx_transport_ops *ops, void *t)
{
    size_t ul = strlen(claims->user_id) + 1, sl = strlen(claims->session_id) + 1;
    phx_socket *s = calloc(1, sizeof *s + ul + sl);
    if (!s) return NULL;
    s->r = r;
    s->vsn = vsn;
    memcpy(s->ids, claims->user_id, ul);
    memcpy(s->ids + ul, claims->session_id, sl);
    s->claims.user_id = s->ids;
    s->claims.session_id = s->ids + ul;
    s->claims.exp = claims->exp;
    s->ops = ops;
    s->t = t;
    s->refs = 1;
    s->all_next = t_sockets;
    if (t_sockets) t_sockets->all_prev = s;
    t_sockets = s;
    phx_fanout_socket_added(vsn);
    return s;
}

void phx_socket_send(phx_socket *s, sb_buf *b)
{
    if (b && !s->closed) s->ops->send(s->t, b);
}

int phx_push_shared(phx_channel *ch, const char *event, const char *payload_json,
                    size_t payload_len, sb_buf *shared[2])
{
    phx_socket *s = ch->sock;
    if (s->closed) return -1;
    sb_buf **sh = &shared[s->vsn == PHX_V1 ? 0 : 1];
    if (!*sh && !(*sh = phx_encode_push_shared(s->vsn, ch->topic, event, payload_json, payload_len)))
        return -1;
    if (s->vsn == PHX_V1) return s->ops->send(s->t, *sh); /* the same message for all */
    if (!s->ops->send_parts) { /* one buffer per message: a copy */
        sb_buf *b = phx_encode_raw(s->vsn, ch->join_ref, NULL, ch->topic, event, payload_json,
                                   payload_len);
        int rc = b ? s->ops->send(s->t, b) : -1;
        sb_buf_unref(b);
        return rc;
    }
    sb_buf *head = phx_encode_push_head(ch->join_ref, ch->topic, event, *sh);
    if (!head) return -1;
    sb_buf *v[2] = {head, *sh};
    int rc = s->ops->send_parts(s->t, v, 2);
    sb_buf_unref(head);
    return rc;
}

/* Encodes and sends a reply. */
static void reply(phx_socket *s, json_t *join_ref, json_t *ref, const char *topic,
                  const char *status, json_t *response)
{
    sb_buf *b = phx_encode_reply(s->vsn, join_ref, ref, topic, status, response);
    phx_socket_send(s, b);
    sb_buf_unref(b);
}

/* Sends [join_ref, join_ref, topic, event, {}] (phx_close / phx_error). */
static void control(phx_socket *s, json_t *join_ref, const char *topic, const char *event)
{
    sb_buf *b = phx_encode(s->vsn, join_ref, join_ref, topic, event, NULL);
    phx_socket_send(s, b);
    sb_buf_unref(b);
}

void phx_channel_ref(phx_channel *ch) { ch->refs++; }

void phx_channel_unref(phx_channel *ch)
{
    if (--ch->refs) return;
    phx_socket *s = ch->sock;
    json_decref(ch->join_ref);
    json_decref(ch->join_msg_ref);
    free(ch);
    socket_unref(s);
}

static phx_channel *find_channel(phx_socket *s, const char *topic)
{
    for (phx_channel *ch = s->channels; ch; ch = ch->next)
        if (strcmp(ch->topic, topic) == 0) return ch;
    return NULL;
}

static void unlink_channel(phx_socket *s, phx_channel *ch)
{
    for (phx_channel **pp = &s->channels; *pp; pp = &(*pp)->next)
        if (*pp == ch) {
            *pp = ch->next;
            ch->next = NULL;
            return;
        }
}

/* metrics: channels by topic prefix (the part before ':', from a fixed
 * list: no per-topic label) */
static const char *const k_prefixes[] = {"user", "conversation", "call", "echo", "other"};
#define NPREFIX (sizeof k_prefixes / sizeof k_prefixes[0])
static metrics_id m_joins[NPREFIX], m_joined[NPREFIX];
__attribute__((constructor)) static void phx_socket_metrics(void)
{
    for (size_t i = 0; i < NPREFIX; i++) {
        char l[48];
        snprintf(l, sizeof l, "prefix=\"%s\"", k_prefixes[i]);
        m_joins[i] = metrics_counter("sb_channel_joins_total", "Channel joins accepted, by topic prefix.", l);
        m_joined[i] = metrics_gauge("sb_channels_joined", "Channels joined now, by topic prefix.", l);
    }
}

static size_t topic_prefix(const char *topic)
{
    for (size_t i = 0; i + 1 < NPREFIX; i++) {
        size_t n = strlen(k_prefixes[i]);
        if (strncmp(topic, k_prefixes[i], n) == 0 && topic[n] == ':') return i;
    }
    return NPREFIX - 1;
}

/* Takes ch out of service: unlinked, unsubscribed, terminated. The caller
 * still holds the list's reference and drops it. */
static void retire_channel(phx_socket *s, phx_channel *ch)
{
    unlink_channel(s, ch);
    if (ch->sub.subscribed) {
        metrics_gauge_add(m_joined[topic_prefix(ch->topic)], -1);
        phx_fanout_unsubscribe(ch);
    }
    bool was_open = ch->status != CH_CLOSED;
    ch->status = CH_CLOSED;
    if (was_open && ch->h->terminate) ch->h->terminate(ch);
}

static void finish_join(phx_channel *ch, bool ok, json_t *resp, json_t *ref)
{
    phx_socket *s = ch->sock;
    phx_channel *old = ch->replaced;
    ch->replaced = NULL;
    if (ok) {
        ch->status = CH_JOINED;
        if (phx_fanout_subscribe(ch) != 0) {
            ok = false;
            json_decref(resp);
            resp = json_pack("{s:s}", "reason", "unavailable");
        }
    }
    reply(s, ch->join_ref, ref, ch->topic, ok ? "ok" : "error", resp);
    json_decref(resp);
    if (old) {
        control(s, old->join_ref, old->topic, "phx_close");
        phx_channel_unref(old);
    }
    if (!ok) {
        retire_channel(s, ch);
        phx_channel_unref(ch);
        return;
    }
    size_t pi = topic_prefix(ch->topic);
    metrics_inc(m_joins[pi]);
    metrics_gauge_add(m_joined[pi], 1);
    if (ch->h->after_join) ch->h->after_join(ch);
}

static void do_join(phx_socket *s, phx_msg *m)
{
    const channel_handler *h = channel_find(m->topic);
    if (!h) {
        json_t *r = json_pack("{s:s}", "reason", "unmatched topic");
        reply(s, NULL, m->ref, m->topic, "error", r);
        json_decref(r);
        return;
    }
    size_t tl = strlen(m->topic);
    /* the topic right after the last field (not sizeof, which pads) */
    size_t sz = offsetof(phx_channel, topic) + tl + 1;
    phx_channel *ch = calloc(1, sz < sizeof *ch ? sizeof *ch : sz);
    if (!ch) {
        s->ops->close(s->t, 1011);
        return;
    }
    memcpy(ch->topic, m->topic, tl + 1);
    ch->sock = s;
    s->refs++;
    ch->h = h;
    ch->refs = 1; /* the socket's channel list */
    ch->join_ref = join_ref_intern(m->join_ref);
    ch->status = CH_JOINING;
    phx_channel *old = find_channel(s, m->topic);
    if (old) {
        retire_channel(s, old);
        ch->replaced = old; /* its phx_close follows the new join's reply */
    }
    ch->next = s->channels;
    s->channels = ch;
    json_t *resp = NULL;
    int rc = h->join(ch, m->payload ? m->payload : NULL, &resp);
    if (rc == PHX_ASYNC) {
        ch->join_msg_ref = json_incref(m->ref);
        s->busy = true;
        return;
    }
    finish_join(ch, rc == PHX_OK, resp, m->ref);
}

void phx_join_done(phx_channel *ch, bool ok, json_t *resp)
{
    phx_socket *s = ch->sock;
    if (s->closed || ch->status != CH_JOINING) {
        json_decref(resp);
        return;
    }
    json_t *ref = json_incref(ch->join_msg_ref);
    finish_join(ch, ok, resp, ref);
    json_decref(ref);
    s->busy = false;
    /* run what arrived while the join was pending, in order */
    s->refs++;
    uint32_t i = 0;
    while (i < s->inq_len && !s->busy && !s->closed) {
        phx_msg m = s->inq[i++];
        process(s, &m);
        phx_msg_clear(&m);
    }
    if (i) {
        memmove(s->inq, s->inq + i, (s->inq_len - i) * sizeof *s->inq);
        s->inq_len -= i;
    }
    socket_unref(s);
}

static void leave(phx_socket *s, phx_msg *m, phx_channel *ch)
{
    if (!ch) {
        reply(s, m->join_ref, m->ref, m->topic, "ok", NULL);
        return;
    }
    json_t *jr = json_incref(ch->join_ref);
    reply(s, jr, m->ref, ch->topic, "ok", NULL);
    control(s, jr, ch->topic, "phx_close");
    json_decref(jr);
    retire_channel(s, ch);
    phx_channel_unref(ch);
}

static void crash(phx_socket *s, phx_channel *ch)
{
    control(s, ch->join_ref, ch->topic, "phx_error");
    retire_channel(s, ch);
    phx_channel_unref(ch);
}

static void process(phx_socket *s, phx_msg *m)
{
    if (strcmp(m->topic, "phoenix") == 0 && strcmp(m->event, "heartbeat") == 0) {
        reply(s, m->join_ref, m->ref, "phoenix", "ok", NULL);
        return;
    }
    phx_channel *ch = find_channel(s, m->topic);
    if (strcmp(m->event, "phx_join") == 0) {
        do_join(s, m);
        return;
    }
    if (strcmp(m->event, "phx_leave") == 0) {
        /* a leave for an older join of this topic raced a server close:
         * Phoenix neither replies nor leaves (socket.ex) */
        if (ch && ch->join_ref && !json_equal(ch->join_ref, m->join_ref)) return;
        leave(s, m, ch);
        return;
    }
    if (!ch || ch->status != CH_JOINED) {
        json_t *r = json_pack("{s:s}", "reason", "unmatched topic");
        reply(s, NULL, m->ref, m->topic, "error", r);
        json_decref(r);
        return;
    }
    if (!ch->h->handle_in) {
        crash(s, ch);
        return;
    }
    json_t *resp = NULL;
    phx_channel_ref(ch);
    int rc = ch->h->handle_in(ch, m, &resp);
    if (rc == PHX_OK || rc == PHX_ERROR) {
        if (ch->status == CH_JOINED)
            reply(s, ch->join_ref, m->ref, ch->topic, rc == PHX_OK ? "ok" : "error", resp);
        json_decref(resp);
    } else if (rc == PHX_CRASH && ch->status == CH_JOINED) {
        json_decref(resp);
        crash(s, ch);
    } else {
        json_decref(resp);
    }
    phx_channel_unref(ch);
}

void phx_socket_handle(phx_socket *s, phx_msg *m)
{
    if (s->closed) {
        phx_msg_clear(m);
        return;
    }
    if (s->busy) {
        if (s->inq_len == MAX_INQ) {
            phx_msg_clear(m);
            s->ops->close(s->t, 1013);
            return;
        }
        if (s->inq_len == s->inq_cap) {
            uint32_t ncap = s->inq_cap ? s->inq_cap * 2 : 8;
            phx_msg *nq = realloc(s->inq, ncap * sizeof *nq);
            if (!nq) {
                phx_msg_clear(m);
                s->ops->close(s->t, 1011);
                return;
            }
            s->inq = nq;
            s->inq_cap = ncap;
        }
        s->inq[s->inq_len++] = *m;
        memset(m, 0, sizeof *m);
        return;
    }
    s->refs++;
    process(s, m);
    phx_msg_clear(m);
    socket_unref(s);
}

void phx_socket_closed(phx_socket *s)
{
    if (s->closed) return;
    s->closed = true;
    while (s->channels) {
        phx_channel *ch = s->channels;
        if (ch->replaced) {
            phx_channel_unref(ch->replaced);
            ch->replaced = NULL;
        }
        retire_channel(s, ch);
        phx_channel_unref(ch);
    }
    if (s->all_prev) s->all_prev->all_next = s->all_next;
    else t_sockets = s->all_next;
    if (s->all_next) s->all_next->all_prev = s->all_prev;
    phx_fanout_socket_removed(s->vsn);
    socket_unref(s);
}

void phx_push(phx_channel *ch, const char *event, json_t *payload)
{
    if (ch->status != CH_JOINED) return;
    sb_buf *b = phx_encode(ch->sock->vsn, ch->join_ref, NULL, ch->topic, event, payload);
    phx_socket_send(ch->sock, b);
    sb_buf_unref(b);
}

phx_deferred *phx_defer(phx_channel *ch, const phx_msg *m)
{
    phx_deferred *d = malloc(sizeof *d);
    if (!d) return NULL;
    phx_channel_ref(ch);
    d->ch = ch;
    d->ref = json_incref(m->ref);
    return d;
}

bool phx_deferred_alive(const phx_deferred *d)
{
    return d->ch->status == CH_JOINED && !d->ch->sock->closed;
}

void phx_deferred_reply(phx_deferred *d, const char *status, json_t *response)
{
    phx_channel *ch = d->ch;
    if (phx_deferred_alive(d)) reply(ch->sock, ch->join_ref, d->ref, ch->topic, status, response);
    json_decref(response);
    json_decref(d->ref);
    phx_channel_unref(ch);
    free(d);
}

void phx_reply_binary(phx_channel *ch, const phx_msg *m, const char *status, const void *data,
                      size_t len)
{
    sb_buf *b = phx_encode_reply_binary(ch->join_ref, m->ref, ch->topic, status, data, len);
    phx_socket_send(ch->sock, b);
    sb_buf_unref(b);
}

/* ---- disconnects across reactors ---- */

typedef struct disconnect_task {
    atomic_int pending;
    bool by_session;
    int code;
    char id[TOKEN_MAX_ID + 1];
} disconnect_task;

static void disconnect_on_reactor(void *arg)
{
    disconnect_task *t = arg;
    for (phx_socket *s = t_sockets, *next; s; s = next) {
        next = s->all_next;
        const char *id = t->by_session ? s->claims.session_id : s->claims.user_id;
        if (!s->closed && strcmp(id, t->id) == 0) s->ops->close(s->t, t->code);
    }
    if (atomic_fetch_sub(&t->pending, 1) == 1) free(t);
}

void phx_socket_disconnect(const char *id, bool by_session, int code)
{
    if (!id || strlen(id) > TOKEN_MAX_ID || reactor_count == 0) return;
    disconnect_task *t = calloc(1, sizeof *t);
    if (!t) return;
    atomic_init(&t->pending, reactor_count);
    t->by_session = by_session;
    t->code = code;
    strcpy(t->id, id);
    for (int i = 0; i < reactor_count; i++)
        if (reactor_post(&reactor_all[i], disconnect_on_reactor, t) != 0 &&
            atomic_fetch_sub(&t->pending, 1) == 1)
            free(t);
}

/* ---- pushes to every channel of a prefix (admin broadcast) ---- */

typedef struct push_task {
    atomic_int pending;
    char prefix[32];
    char event[64];
    json_t *payload;
} push_task;

static void push_task_done(push_task *t)
{
    if (atomic_fetch_sub(&t->pending, 1) == 1) {
        json_decref(t->payload);
        free(t);
    }
}

static void push_on_reactor(void *arg)
{
    push_task *t = arg;
    size_t n = strlen(t->prefix);
    for (phx_socket *s = t_sockets; s; s = s->all_next) {
        if (s->closed) continue;
        for (phx_channel *ch = s->channels; ch; ch = ch->next) {
            if (ch->status != CH_JOINED || strncmp(ch->topic, t->prefix, n) != 0) continue;
            sb_buf *b = phx_encode(s->vsn, NULL, NULL, ch->topic, t->event, t->payload);
            if (b) {
                phx_socket_send(s, b);
                sb_buf_unref(b);
            }
        }
    }
    push_task_done(t);
}

void phx_socket_push_prefix(const char *prefix, const char *event, const char *payload_json)
{
    if (!prefix || !event || strlen(prefix) >= 32 || strlen(event) >= 64 || reactor_count == 0) return;
    push_task *t = calloc(1, sizeof *t);
    if (!t) return;
    t->payload = json_loads(payload_json, 0, NULL);
    if (!json_is_object(t->payload)) {
        json_decref(t->payload);
        free(t);
        return;
    }
    atomic_init(&t->pending, reactor_count);
    strcpy(t->prefix, prefix);
    strcpy(t->event, event);
    for (int i = 0; i < reactor_count; i++)
        if (reactor_post(&reactor_all[i], push_on_reactor, t) != 0) push_task_done(t);
}
