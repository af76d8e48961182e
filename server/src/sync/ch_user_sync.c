/* ch_user_sync.c — catch-up on `user:<id>` join (see ch_user_sync.h and
 * docs/sync.md, "Join with cursor").
 *
 * With a cursor c the join is answered only after the first page of events
 * after c has been read (so an expired cursor can still refuse the join).
 * Then, in order: the channel is subscribed (live events start arriving and
 * are held, not sent), the first page is pushed, and further pages are read
 * and pushed until one reaches the horizon and either its query started
 * after the subscription or the tailer's position, read after the
 * subscription, is at or before the last position pushed (the floor). The
 * held live events are then released, except durable ones at or before the
 * floor, which the pages already carried. From then on, durable events at
 * or before the floor are still dropped (the tailer may lag behind).
 *
 * Why nothing is lost: an event the tailer handed out before the
 * subscription was stable before it, so every query started after the
 * subscription returns it (or it is at or before c), and its position is at
 * or before the tailer's position at the subscription. An event handed out
 * after the subscription is held. Held events are bounded: past SJ_HELD_MAX
 * (or SJ_HELD_MAX_BYTES) they are dropped and the round is repeated, since a
 * query started later returns every durable one of them again. Pages wait
 * for the client's queue to drain (pacing), so a long catch-up is never
 * closed as a slow consumer. At most SJ_INFLIGHT_MAX catch-up queries per
 * reactor are sent at a time; in a reconnect storm the others wait their
 * turn instead of filling the Postgres pool (admission, below). */
#include "sync/ch_user_sync.h"

#include <stdlib.h>
#include <string.h>
#include "base/metrics.h"
#include "base/config.h"
#include "sync/cursor.h"
#include "base/log.h"
#include "phoenix/phx_fanout.h"
#include "net/reactor.h"
#include "phoenix/phx_socket.h"
#include "sync/sync.h"
#include "sync/tailer.h"
#include "sync/sync_view.h"
#include "base/util.h"
#include "base/id.h"

#define SJ_PAGE 200        /* events per catch-up query */
#define SJ_HELD_MAX 4096   /* live messages held during catch-up */
#define SJ_MAX_PAGES 5000  /* a catch-up longer than this is cut (close 1013) */
#define SJ_HELD_MAX_BYTES (256 * 1024) /* and at most this many bytes */
#define SJ_PACE_HIGH (64 * 1024) /* the next page waits while more is queued to the client */
#define SJ_PACE_TICK_MS 10
/* catch-up queries in flight per reactor; the rest wait their turn */
#define SJ_INFLIGHT_MAX 64

typedef struct held_msg {
    sb_buf *b;
    bool has_pos;
    sync_pos pos;
} held_msg;

typedef struct sj_state {
    phx_channel *ch;
    const char *uid;     /* ch->sock->claims.user_id (st never outlives ch's socket) */
    sync_pos floor;      /* last position delivered */
    json_t *reply;       /* the join's ok response, until the join completes */
    bool joined;         /* the join was answered ok */
    bool catching;       /* catch-up in progress: live events are held */
    bool inflight;       /* a query is running (it owns a channel reference) */
    bool q_after_sub;    /* that query started after the subscription */
    bool overflow;       /* held messages were dropped this round */
    bool terminated;     /* the channel is gone */
    bool waiting;        /* on the pace list (it owns a channel reference) */
    bool counted;        /* counted by tailer_user_online */
    int pages;
    held_msg *held;
    uint32_t nheld, capheld;
    size_t held_bytes;
    struct sj_state *wait_next;
    /* next in the reactor's admission queue */
    struct sj_state *admit_next;
} sj_state;

/* ------------------------------------------------------------------------ */
/* Held messages                                                             */
/* ------------------------------------------------------------------------ */

static void held_clear(sj_state *st)
{
    for (uint32_t i = 0; i < st->nheld; i++) sb_buf_unref(st->held[i].b);
    st->nheld = 0;
    st->held_bytes = 0;
}

static void state_free(sj_state *st)
{
    if (st->counted) tailer_user_online(st->uid, -1);
    held_clear(st);
    free(st->held);
    json_decref(st->reply);
    free(st);
}

/* The position of a durable event from its payload text, which ends with
 * `"cursor":"<CURSOR_LEN chars>"}` (tailer_splice). */
static bool payload_pos(const char *p, size_t n, sync_pos *pos)
{
    static const char key[] = "\"cursor\":\"";
    size_t kl = sizeof key - 1;
    if (!p || n < kl + CURSOR_LEN + 2) return false;
    const char *k = p + n - 2 - CURSOR_LEN - kl;
    if (memcmp(p + n - 2, "\"}", 2) != 0 || memcmp(k, key, kl) != 0) return false;
    return cursor_peek(k + kl, CURSOR_LEN, pos) == 0;
}

/* The buffer deliver_local would send this socket for m, or NULL. */
static sb_buf *buf_for(const phx_socket *s, const pubsub_msg *m)
{
    return phx_fanout_buf(s->vsn, m);
}

/* This socket's own frame for m when the event view (sync_view.h) shows
 * it differently to this device, else NULL. */
static sb_buf *own_buf(const phx_channel *ch, const pubsub_msg *m)
{
    if (!m->payload_json || !sync_view_wants(m->event)) return NULL;
    size_t tl = 0;
    char *text = sync_view_apply(m->event, m->payload_json, strlen(m->payload_json),
                                 ch->sock->claims.session_id, &tl);
    if (!text) return NULL;
    sb_buf *b = phx_encode_raw(ch->sock->vsn, NULL, NULL, ch->topic, m->event, text, tl);
    free(text);
    return b;
}

bool ch_user_sync_handle_out(phx_channel *ch, const pubsub_msg *m)
{
    sj_state *st = ch->state;
    if (!st) return true;
    sync_pos p;
    bool has = m->payload_json && payload_pos(m->payload_json, strlen(m->payload_json), &p);
    sb_buf *own = own_buf(ch, m);
    if (own && !st->catching) { /* sent here, in place of the shared frame */
        if (!(has && sync_pos_cmp(p, st->floor) <= 0)) phx_socket_send(ch->sock, own);
        sb_buf_unref(own);
        return false;
    }
    if (st->catching) {
        sb_buf *b = own ? own : buf_for(ch->sock, m);
        if (!b || st->overflow) {
            sb_buf_unref(own);
            return false;
        }
        size_t held_cap = g_config.outbound_max ? g_config.outbound_max / 4 : SJ_HELD_MAX_BYTES;
        if (held_cap > SJ_HELD_MAX_BYTES) held_cap = SJ_HELD_MAX_BYTES;
        if (st->nheld == SJ_HELD_MAX || st->held_bytes + b->len > held_cap) {
            /* drop them all: the next round reads the durable ones again */
            held_clear(st);
            st->overflow = true;
            sb_buf_unref(own);
            return false;
        }
        if (st->nheld == st->capheld) {
            uint32_t nc = st->capheld ? st->capheld * 2 : 16;
            held_msg *nh = realloc(st->held, nc * sizeof *nh);
            if (!nh) {
                held_clear(st);
                st->overflow = true;
                sb_buf_unref(own);
                return false;
            }
            st->held = nh;
            st->capheld = nc;
        }
        st->held[st->nheld++] = (held_msg){sb_buf_ref(b), has, has ? p : (sync_pos){0, 0}};
        st->held_bytes += b->len;
        sb_buf_unref(own);
        return false;
    }
    return !(has && sync_pos_cmp(p, st->floor) <= 0);
}

/* Ends the catch-up: sends held messages after the floor, then goes live. */
static void release(sj_state *st)
{
    phx_socket *s = st->ch->sock;
    for (uint32_t i = 0; i < st->nheld; i++) {
        held_msg *h = &st->held[i];
        if (!h->has_pos || sync_pos_cmp(h->pos, st->floor) > 0) phx_socket_send(s, h->b);
    }
    held_clear(st);
    free(st->held);
    st->held = NULL;
    st->capheld = 0;
    st->catching = false;
}

/* ------------------------------------------------------------------------ */
/* Catch-up pages                                                            */
/* ------------------------------------------------------------------------ */

static void on_page(const sync_page *pg, const char *err, void *arg);

/* ---- admission: at most SJ_INFLIGHT_MAX catch-up queries per reactor ---- */

/* A reconnect storm brings every client of a node back at once, each with
 * a catch-up query. Sent all together they would fill the reactor's pool
 * (DB_MAX_PENDING) while Postgres is slow, and joins, sends and REST
 * requests would be refused "unavailable"; so the queries beyond
 * SJ_INFLIGHT_MAX wait here, in arrival order, and are sent as earlier
 * ones are answered. A waiting catch-up counts as in flight (it holds its
 * channel reference); one whose channel has gone meanwhile is freed
 * without a query. */
static _Thread_local sj_state *t_admit_head, *t_admit_tail;
static _Thread_local int t_sj_inflight;
static _Thread_local bool t_admitting;

/* Sends queued catch-up queries while fewer than SJ_INFLIGHT_MAX are in
 * flight. Not reentrant: a query answered at once (pool down) calls
 * on_page, whose admit() returns and leaves the rest to this loop. */
static void admit(void)
{
    if (t_admitting) return;
    t_admitting = true;
    while (t_admit_head && t_sj_inflight < SJ_INFLIGHT_MAX) {
        sj_state *st = t_admit_head;
        t_admit_head = st->admit_next;
        if (!t_admit_head) t_admit_tail = NULL;
        st->admit_next = NULL;
        phx_channel *ch = st->ch;
        if (st->terminated) {
            state_free(st);
            phx_channel_unref(ch);
            continue;
        }
        t_sj_inflight++;
        sync_fetch(db_of(ch->sock->r), st->uid, st->floor, SJ_PAGE, on_page, st);
    }
    t_admitting = false;
}

/* Queues st's next query (st->inflight set, a channel reference held). */
static void sj_query(sj_state *st)
{
    st->admit_next = NULL;
    if (t_admit_tail)
        t_admit_tail->admit_next = st;
    else
        t_admit_head = st;
    t_admit_tail = st;
    admit();
}

/* Reads the next page after the floor (holding a channel reference). */
static void fetch_next(sj_state *st)
{
    phx_channel_ref(st->ch);
    st->inflight = true;
    st->q_after_sub = st->joined;
    if (st->overflow) st->overflow = false; /* events handed out from now on are held again */
    st->pages++;
    sj_query(st);
}

/* ---- pacing: the next page waits until the client has taken the last ---- */

static uv_timer_t *g_pace_timer[64];         /* per reactor, made on first use */
static _Thread_local sj_state *t_waiting;    /* this reactor's waiting catch-ups */

/* Bytes queued to the socket and not yet written (0 if unknown or closed). */
static size_t sock_queued(const phx_socket *s)
{
    return !s->closed && s->ops->queued ? s->ops->queued(s->t) : 0;
}

/* Queued bytes under which the next page is read: SJ_PACE_HIGH, or a
 * quarter of the outbound cap if that is smaller. */
static size_t pace_high(void)
{
    size_t q = g_config.outbound_max ? g_config.outbound_max / 4 : SJ_PACE_HIGH;
    return q < SJ_PACE_HIGH ? q : SJ_PACE_HIGH;
}

/* Every SJ_PACE_TICK_MS while some catch-up waits: resumes those whose
 * client has drained its queue, frees those whose channel is gone. */
static void pace_tick(uv_timer_t *t)
{
    sj_state **pp = &t_waiting;
    while (*pp) {
        sj_state *st = *pp;
        phx_channel *ch = st->ch;
        if (st->terminated) {
            *pp = st->wait_next;
            state_free(st);
            phx_channel_unref(ch);
        } else if (sock_queued(ch->sock) <= pace_high()) {
            *pp = st->wait_next;
            st->waiting = false;
            fetch_next(st);
            phx_channel_unref(ch);
        } else {
            pp = &st->wait_next;
        }
    }
    if (!t_waiting) uv_timer_stop(t);
}

/* Reads the next page now, or once the client's queue has drained. */
static void continue_catchup(sj_state *st)
{
    phx_socket *s = st->ch->sock;
    if (sock_queued(s) <= pace_high() || s->r->id < 0 || s->r->id >= 64) {
        fetch_next(st);
        return;
    }
    uv_timer_t **tp = &g_pace_timer[s->r->id];
    if (!*tp) {
        uv_timer_t *t = malloc(sizeof *t);
        if (!t) {
            fetch_next(st);
            return;
        }
        uv_timer_init(&s->r->loop, t);
        uv_unref((uv_handle_t *)t);
        *tp = t;
    }
    phx_channel_ref(st->ch);
    st->waiting = true;
    st->wait_next = t_waiting;
    t_waiting = st;
    if (!uv_is_active((uv_handle_t *)*tp)) uv_timer_start(*tp, pace_tick, SJ_PACE_TICK_MS, SJ_PACE_TICK_MS);
}

/* Posted by ch_user_sync_join: sends the first query (the reference and
 * inflight were taken by ch_user_sync_join). */
static void first_fetch(void *arg)
{
    sj_state *st = arg;
    if (st->terminated) {
        phx_channel *ch = st->ch;
        state_free(st);
        phx_channel_unref(ch);
        return;
    }
    st->q_after_sub = false;
    st->pages++;
    sj_query(st);
}

/* Pushes a page's events in broadcast form and moves the floor. Stops
 * early (returns false, the floor at the last event pushed) when the
 * client's queue passes half the outbound cap, so a catch-up never gets
 * the socket closed as a slow consumer. */
static bool push_page(sj_state *st, const sync_page *pg)
{
    phx_channel *ch = st->ch;
    int64_t now_s = util_now_unix_ms() / 1000;
    size_t stop_at = g_config.outbound_max ? g_config.outbound_max / 2 : (size_t)-1;
    /* the page's cursors at once (one AES key, cursor.h); one at a time
     * when out of memory */
    sync_pos *pos = pg->n > 0 ? malloc((size_t)pg->n * sizeof *pos) : NULL;
    char *all = pg->n > 0 ? malloc((size_t)pg->n * CURSOR_LEN) : NULL;
    bool batch = pos && all;
    for (int i = 0; batch && i < pg->n; i++) pos[i] = pg->ev[i].pos;
    if (batch)
        batch = cursor_encode_many((const uint8_t *)g_config.secret, g_config.secret_len, st->uid, pos,
                                   (size_t)pg->n, now_s, all) == 0;
    free(pos);
    for (int i = 0; i < pg->n; i++) {
        const sync_event *e = &pg->ev[i];
        if (i > 0 && sock_queued(ch->sock) > stop_at) {
            free(all);
            return false;
        }
        char cur[CURSOR_LEN + 1];
        if (batch) {
            memcpy(cur, all + (size_t)i * CURSOR_LEN, CURSOR_LEN);
            cur[CURSOR_LEN] = 0;
        } else {
            cursor_encode((const uint8_t *)g_config.secret, g_config.secret_len, st->uid, e->pos, now_s,
                          cur);
        }
        size_t tl;
        char *text = tailer_splice(e->prefix, e->prefix_len, cur, &tl);
        size_t vl = 0;
        char *view = text ? sync_view_apply(e->type, text, tl, ch->sock->claims.session_id, &vl) : NULL;
        if (view) {
            free(text);
            text = view;
            tl = vl;
        }
        sb_buf *b = text ? phx_encode_raw(ch->sock->vsn, NULL, NULL, ch->topic, e->type, text, tl)
                         : NULL;
        free(text);
        if (b) phx_socket_send(ch->sock, b);
        sb_buf_unref(b);
        if (sync_pos_cmp(e->pos, st->floor) > 0) st->floor = e->pos;
    }
    free(all);
    if (sync_pos_cmp(pg->next, st->floor) > 0) st->floor = pg->next;
    return true;
}

/* Closes the socket: the client reconnects and rejoins with its cursor. */
static void give_up(sj_state *st, int code, const char *why)
{
    log_msg(LOG_WARN, "sync_catchup_failed", "user", json_string(st->uid), "error",
            json_string(why), NULL);
    st->ch->sock->ops->close(st->ch->sock->t, code);
}

/* After a page that reached the horizon: may the held events be released?
 * Yes if the query started after the subscription (it saw everything handed
 * out before), or if the tailer's published position, read now that the
 * channel is subscribed, is at or before the floor: every event handed out
 * before the subscription is then at or before the floor, so the pages
 * carried it. This spares a second query on most joins. */
static bool caught_up(const sj_state *st)
{
    if (st->q_after_sub) return true;
    bool ready = false;
    sync_pos p = tailer_position(&ready);
    return ready && sync_pos_cmp(p, st->floor) <= 0;
}

/* A catch-up page has been read (pg NULL: the query failed, err says why):
 * answers the join or pushes the page, then reads the next one or goes
 * live. */
static void page_done(const sync_page *pg, const char *err, void *arg)
{
    sj_state *st = arg;
    phx_channel *ch = st->ch;
    st->inflight = false;
    if (st->terminated) {
        state_free(st);
        phx_channel_unref(ch);
        return;
    }
    if (!st->joined) {
        if (!pg || pg->expired) {
            json_t *r = !pg ? json_pack("{s:s,s:s}", "reason", "unavailable", "message",
                                        "the event store is unavailable, retry later")
                            : json_pack("{s:s,s:s}", "reason", "cursor_expired", "message",
                                        "events after this cursor were pruned: bootstrap again");
            phx_join_done(ch, false, r); /* terminates the channel: frees st */
            phx_channel_unref(ch);
            return;
        }
        st->joined = true;
        st->catching = true;
        json_t *r = st->reply;
        st->reply = NULL;
        phx_join_done(ch, true, r);
        if (ch->status != CH_JOINED) { /* refused after all (st is gone) */
            phx_channel_unref(ch);
            return;
        }
    } else if (!pg || pg->expired) {
        give_up(st, 1011, pg ? "cursor expired during catch-up" : err);
        phx_channel_unref(ch);
        return;
    }
    bool whole = push_page(st, pg);
    if (!whole || pg->has_more || !caught_up(st) || st->overflow) {
        if (st->pages >= SJ_MAX_PAGES) give_up(st, 1013, "catch-up too long");
        else continue_catchup(st);
    } else {
        release(st);
    }
    phx_channel_unref(ch);
}

/* The answer to a query sent by admit(): frees its admission slot, handles
 * the page, then lets the next waiting query go. */
static void on_page(const sync_page *pg, const char *err, void *arg)
{
    t_sj_inflight--;
    page_done(pg, err, arg);
    admit();
}

/* ------------------------------------------------------------------------ */
/* Join                                                                      */
/* ------------------------------------------------------------------------ */

static metrics_id m_sync;
__attribute__((constructor)) static void ch_user_sync_metrics(void)
{
    m_sync = metrics_counter("sb_sync_requests_total", "Catch-up requests: GET /sync (rest) and user: channel joins, which catch up (join).",
                             "via=\"join\"");
}

int ch_user_sync_join(phx_channel *ch, json_t *payload, json_t *reply, json_t **err)
{
    metrics_inc(m_sync);
    const char *uid = ch->sock->claims.user_id;
    json_t *jc = json_is_object(payload) ? json_object_get(payload, "cursor") : NULL;
    bool has_cursor = jc && !json_is_null(jc);
    bool numeric = id_parse(uid) != 0;
    if (!has_cursor) {
        sj_state *st = numeric ? calloc(1, sizeof *st) : NULL;
        if (st) {
            st->ch = ch;
            st->uid = ch->sock->claims.user_id;
            tailer_user_online(uid, +1); /* before reading the position */
            st->counted = true;
            st->joined = true;
            ch->state = st;
        }
        bool ready = false;
        sync_pos p = tailer_position(&ready);
        if (st) st->floor = p;
        if (!numeric || !ready) {
            json_object_set_new(reply, "cursor", json_null());
            return PHX_OK;
        }
        char cur[CURSOR_LEN + 1];
        cursor_encode((const uint8_t *)g_config.secret, g_config.secret_len, uid, p,
                      util_now_unix_ms() / 1000, cur);
        json_object_set_new(reply, "cursor", json_string(cur));
        return PHX_OK;
    }
    sync_pos from;
    int rc = json_is_string(jc) && numeric
                 ? sync_cursor_check(uid, json_string_value(jc), json_string_length(jc), &from)
                 : SYNC_CUR_BAD;
    if (rc == SYNC_CUR_BAD) {
        *err = json_pack("{s:s,s:s}", "reason", "bad_request", "message",
                         "invalid cursor: not a cursor this server issued to you");
        return PHX_ERROR;
    }
    if (rc == SYNC_CUR_EXPIRED) {
        *err = json_pack("{s:s,s:s}", "reason", "cursor_expired", "message",
                         "this cursor is older than the retention window: bootstrap again");
        return PHX_ERROR;
    }
    sj_state *st = calloc(1, sizeof *st);
    if (!st) {
        *err = json_pack("{s:s}", "reason", "unavailable");
        return PHX_ERROR;
    }
    st->ch = ch;
    st->uid = ch->sock->claims.user_id;
    tailer_user_online(uid, +1); /* before the subscription */
    st->counted = true;
    st->floor = from;
    json_object_set(reply, "cursor", jc); /* catch-up starts after it */
    st->reply = json_incref(reply);
    ch->state = st;
    /* the first query is sent from the loop, after the join has been
     * recorded as pending: its answer may come at once (pool down) */
    phx_channel_ref(ch);
    st->inflight = true;
    if (reactor_post(ch->sock->r, first_fetch, st) != 0) {
        st->inflight = false;
        phx_channel_unref(ch);
        ch->state = NULL;
        state_free(st);
        json_object_del(reply, "cursor");
        *err = json_pack("{s:s}", "reason", "unavailable");
        return PHX_ERROR;
    }
    return PHX_ASYNC;
}

void ch_user_sync_terminate(phx_channel *ch)
{
    sj_state *st = ch->state;
    if (!st) return;
    ch->state = NULL;
    st->terminated = true;
    /* a query in flight or the pace list frees it later */
    if (!st->inflight && !st->waiting) state_free(st);
}
