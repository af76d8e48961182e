/* chat_ops.c — the chat operations behind both the REST endpoints and the
 * user:<id> channel events (see chat.h): input validation, the send rate
 * limit, one sb_* statement per write, and answers through a chat_sink. */
#include "chat/chat.h"
#include "sync/tailer.h"
#include "chat/chat_send_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/config.h"
#include "store/db.h"
#include "base/log.h"
#include "bus/pubsub.h"
#include "base/ratelimit.h"
#include "net/reactor.h"
#include "base/util.h"
#include "base/id.h"
#include "base/page.h"
#include "base/verr.h"
#include "base/metrics.h"
#include "presence/presence.h"

#define CLIENT_ID_MAX 64
#define MEDIA_ID_MAX 64
#define EMOJI_MAX_BYTES 64
#define LOCATION_NAME_MAX 256
#define CONTACT_NAME_MAX 128
#define CONTACT_PHONE_MAX 64

struct chat_sink {
    const chat_sink_ops *ops; /* the edge's answers, */
    void *to;                 /* and what they answer (a request, a reply) */
    db_pool *db;
    int op;
    int limit;
    char mode; /* history: 'b' (before / latest) or 'a' (after) */
    char kick_conv[24]; /* a removal: the conversation, and */
    char kick_user[24]; /* the user removed ("" when none) */
    uint64_t t0_ns;     /* a send: when it was asked (uv_hrtime) */
};

/* metrics: messages stored, and the time from a send's request to its ack */
static metrics_id m_sent;
static metrics_hist m_send_latency;
static const int64_t k_send_bounds[] = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000};
__attribute__((constructor)) static void chat_ops_metrics(void)
{
    m_sent = metrics_counter("sb_messages_sent_total", "Messages stored (new sends; a retried client_id is not counted again).", NULL);
    metrics_histogram(&m_send_latency, "sb_message_send_seconds",
                      "Time from a send request (REST or channel) to its acknowledgement.", NULL, k_send_bounds,
                      (int)(sizeof k_send_bounds / sizeof k_send_bounds[0]), 1e6);
}

/* ------------------------------------------------------------------------ */
/* Sinks                                                                     */
/* ------------------------------------------------------------------------ */

chat_sink *chat_sink_new(const chat_sink_ops *ops, void *to, db_pool *db)
{
    chat_sink *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ops = ops;
    s->to = to;
    s->db = db;
    return s;
}

/* Answers success: body (stolen; NULL: {}) as `kind`. */
static void sink_ok(chat_sink *s, chat_reply kind, json_t *body)
{
    s->ops->ok(s->to, kind, body ? body : json_object());
    free(s);
}

/* Error with a retry hint (0: none); details stolen. */
static void sink_fail(chat_sink *s, const char *code, const char *message, json_t *details,
                      int retry_after_s)
{
    s->ops->fail(s->to, code, message, details, retry_after_s);
    free(s);
}

void chat_fail(chat_sink *s, const char *code, const char *message, json_t *details)
{
    sink_fail(s, code, message, details, 0);
}

void chat_fail_verr(chat_sink *s, verr *v)
{
    json_t *d = v->details;
    v->details = NULL;
    chat_fail(s, "validation_failed", "the request has invalid fields", d);
}

/* ------------------------------------------------------------------------ */
/* Running an sb_* statement                                                 */
/* ------------------------------------------------------------------------ */

/* Answers a failed query: unavailable (retry in 1 s) for connection
 * trouble, conflict for a unique violation, validation_failed for a value
 * out of range, else internal (logged). */
static void fail_db(chat_sink *s, const PGresult *res, const char *err)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!res || !st || !strcmp(err ? err : "", "unavailable") || !strncmp(st, "08", 2) ||
        !strncmp(st, "53", 2) || !strncmp(st, "57", 2) || !strcmp(st, "40001") ||
        !strcmp(st, "40P01")) {
        sink_fail(s, "unavailable", "the database is unavailable; nothing was done", NULL, 1);
        return;
    }
    if (!strcmp(st, "23505")) {
        chat_fail(s, "conflict", "conflicts with an existing record", NULL);
        return;
    }
    if (!strcmp(st, "22P02") || !strcmp(st, "22007") || !strcmp(st, "22008") ||
        !strcmp(st, "22003")) {
        chat_fail(s, "validation_failed", "a value is out of range", NULL);
        return;
    }
    log_msg(LOG_ERROR, "chat db error", "sqlstate", json_string(st), "error",
            json_string(err ? err : ""), NULL);
    chat_fail(s, "internal", "internal error", NULL);
}

/* Drops items past `limit` (from the end, or the front when `front`) and
 * returns the item that is now the last one kept, or NULL when nothing was
 * dropped. */
static json_t *trim_page(json_t *items, int limit, bool front)
{
    if ((int)json_array_size(items) <= limit) return NULL;
    if (front)
        while ((int)json_array_size(items) > limit) json_array_remove(items, 0);
    else
        while ((int)json_array_size(items) > limit) json_array_remove(items, json_array_size(items) - 1);
    return json_array_get(items, front ? 0 : (size_t)limit - 1);
}

/* Member list items: `online` from the live table (this node's and the
 * other nodes' users) and `last_seen_at` now while online, unless the SQL
 * marked the member's online state hidden from the caller ("_hidden",
 * sb_presence_hidden): then online false and last_seen_at null. */
static void members_online(json_t *items)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        bool hidden = json_is_true(json_object_get(it, "_hidden"));
        json_object_del(it, "_hidden");
        const char *uid = json_string_value(json_object_get(it, "user_id"));
        int64_t now_ms = 0;
        bool on = !hidden && uid && presence_user_online(uid, &now_ms);
        json_object_set_new(it, "online", json_boolean(on));
        if (on) {
            char ts[40];
            util_format_rfc3339_ms(now_ms, ts, sizeof ts);
            json_object_set_new(it, "last_seen_at", json_string(ts));
        } else if (!json_object_get(it, "last_seen_at")) {
            json_object_set_new(it, "last_seen_at", json_null());
        }
    }
}

/* GET /conversations/:id: adds `online_count` to the conversation, the
 * members online now (on any node) less those whose online state is hidden
 * from the caller (the "_hidden" id list the SQL gives, then removed). */
static void conversation_online(json_t *r)
{
    json_t *c = json_object_get(r, "conversation");
    json_t *hidden = json_object_get(r, "_hidden");
    size_t n = 0, i, k;
    json_t *m, *h;
    json_array_foreach(json_object_get(c, "members"), i, m) {
        const char *uid = json_string_value(json_object_get(m, "user_id"));
        if (!uid || !presence_user_online(uid, NULL)) continue;
        bool hide = false;
        json_array_foreach(hidden, k, h) if (json_is_string(h) && !strcmp(json_string_value(h), uid)) hide = true;
        if (!hide) n++;
    }
    if (json_is_object(c)) json_object_set_new(c, "online_count", json_integer((json_int_t)n));
    json_object_del(r, "_hidden");
}

/* Post-processes a successful result according to s->op and answers. */
static void answer(chat_sink *s, json_t *r)
{
    char next[96];
    json_t *items = json_object_get(r, "items");
    json_t *last;
    switch (s->op) {
    case CHAT_CREATED: {
        bool created = json_is_true(json_object_get(r, "created"));
        json_object_del(r, "created");
        sink_ok(s, created ? CHAT_REPLY_CREATED : CHAT_REPLY_OK, r);
        return;
    }
    case CHAT_SENT: {
        bool dup = json_is_true(json_object_get(r, "duplicate"));
        json_object_del(r, "duplicate");
        if (!dup) metrics_inc(m_sent);
        if (s->t0_ns) metrics_observe(&m_send_latency, (int64_t)((uv_hrtime() - s->t0_ns) / 1000));
        sink_ok(s, dup ? CHAT_REPLY_OK : CHAT_REPLY_CREATED, r);
        return;
    }
    case CHAT_EMPTY:
        /* a member left or was removed: their conversation: channels close */
        if (json_is_true(json_object_get(r, "kick")) && s->kick_user[0]) {
            char topic[64];
            snprintf(topic, sizeof topic, "conversation:%s", s->kick_conv);
            json_t *k = json_pack("{s:s}", "user_id", s->kick_user);
            pubsub_broadcast(topic, CHAT_KICK_EVENT, k, NULL);
            json_decref(k);
        }
        json_decref(r);
        sink_ok(s, CHAT_REPLY_NONE, json_object());
        return;
    case CHAT_ACK: /* REST: the result; channel: {} as api.md lists */
        sink_ok(s, CHAT_REPLY_ACK, r);
        return;
    case CHAT_CHATS: {
        last = trim_page(items, s->limit, false);
        const char *pos = last ? json_string_value(json_object_get(last, "_pos")) : NULL;
        if (pos) snprintf(next, sizeof next, "c:%s", pos);
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) json_object_del(it, "_pos");
        json_t *body = page_body(json_incref(items), pos ? next : NULL);
        json_decref(r);
        sink_ok(s, CHAT_REPLY_OK, body);
        return;
    }
    case CHAT_HISTORY: {
        last = trim_page(items, s->limit, s->mode == 'a');
        if (last)
            snprintf(next, sizeof next, "%c:%lld", s->mode,
                     (long long)json_integer_value(json_object_get(last, "seq")));
        json_t *body = page_body(json_incref(items), last ? next : NULL);
        json_decref(r);
        sink_ok(s, CHAT_REPLY_OK, body);
        return;
    }
    case CHAT_MEMBERS: {
        last = trim_page(items, s->limit, false);
        members_online(items);
        if (last)
            snprintf(next, sizeof next, "m:%s", json_string_value(json_object_get(last, "user_id")));
        json_t *body = page_body(json_incref(items), last ? next : NULL);
        json_decref(r);
        sink_ok(s, CHAT_REPLY_OK, body);
        return;
    }
    case CHAT_CONV:
        conversation_online(r);
        sink_ok(s, CHAT_REPLY_OK, r);
        return;
    default:
        sink_ok(s, CHAT_REPLY_OK, r);
    }
}

/* Answers s with one sb_* result (text of a jsonb value); kick: wake the
 * tailer after a successful write. */
static void answer_text(chat_sink *s, const char *text, bool kick)
{
    json_error_t je;
    json_t *r = json_loads(text, JSON_DECODE_ANY, &je);
    if (!r || !json_is_object(r)) {
        json_decref(r);
        chat_fail(s, "internal", "bad result", NULL);
        return;
    }
    json_t *e = json_object_get(r, "error");
    if (json_is_string(e)) {
        const char *code = json_string_value(e);
        const char *msg = json_string_value(json_object_get(r, "message"));
        json_t *details = json_object_get(r, "details");
        chat_fail(s, code, msg ? msg : code,
                  json_is_object(details) ? json_incref(details) : NULL);
        json_decref(r);
        return;
    }
    if (kick && s->op != CHAT_CHATS && s->op != CHAT_HISTORY && s->op != CHAT_MEMBERS)
        tailer_kick(); /* a write committed: wake this node's event tailer (sync.md) */
    answer(s, r);
}

static void run_done(const PGresult *res, const char *err, void *arg)
{
    chat_sink *s = arg;
    if (!res || err) {
        fail_db(s, res, err);
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        chat_fail(s, "not_found", "not found", NULL);
        return;
    }
    answer_text(s, PQgetvalue(res, 0, 0), true);
}

void chat_sink_answer_text(chat_sink *s, const char *text)
{
    s->op = CHAT_SENT;
    answer_text(s, text, false);
}

void chat_sink_fail_db(chat_sink *s, const PGresult *res, const char *err)
{
    fail_db(s, res, err);
}

db_pool *chat_sink_db(const chat_sink *s) { return s->db; }

void chat_sink_set_mode(chat_sink *s, char mode) { s->mode = mode; }

void chat_sink_set_kick(chat_sink *s, const char *conv_id, const char *user_id)
{
    snprintf(s->kick_conv, sizeof s->kick_conv, "%s", conv_id);
    snprintf(s->kick_user, sizeof s->kick_user, "%s", user_id);
}

void chat_run(chat_sink *s, int op, int limit, const char *sql, int n, const char *const *params)
{
    s->op = op;
    s->limit = limit;
    if (!s->db) {
        sink_fail(s, "unavailable", "no database is configured", NULL, 1);
        return;
    }
    db_query(s->db, sql, n, params, run_done, s);
}

/* ------------------------------------------------------------------------ */
/* Input helpers                                                             */
/* ------------------------------------------------------------------------ */

int chat_json_id(json_t *v, char out[24])
{
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 1) return -1;
        snprintf(out, 24, "%lld", (long long)x);
        return 1;
    }
    if (json_is_string(v) && json_string_length(v) < 21 && id_parse(json_string_value(v))) {
        snprintf(out, 24, "%s", json_string_value(v));
        return 1;
    }
    return -1;
}

/* Reads id field `f` of body into out, or takes `given` (a path segment).
 * Records an error when required and absent, or malformed. Returns 1 when
 * set. */
static int get_id(json_t *body, const char *f, const char *given, bool required, verr *v,
                  char out[24])
{
    out[0] = 0;
    if (given) {
        if (!id_parse(given) || strlen(given) > 20) return -2; /* not found */
        snprintf(out, 24, "%s", given);
        return 1;
    }
    int rc = chat_json_id(json_object_get(body, f), out);
    if (rc < 0) verr_add(v, f, "must be an id");
    else if (rc == 0 && required) verr_add(v, f, "is required");
    return rc;
}

/* The caller's id, checked (tokens minted outside sign-up may carry any
 * text). */
static bool caller_ok(chat_sink *s, const char *user_id)
{
    if (user_id && id_parse(user_id)) return true;
    chat_fail(s, "unauthorized", "this account no longer exists", NULL);
    return false;
}

/* The prologue of an operation on one record: checks the caller, then
 * reads the record's id (member f of body, or `given` from the path) into
 * out; errors of f go to v. False when answered: 401 for the caller, 404
 * `not_found` (e.g. "no such message") for a path id that names nothing.
 * Inlined: the send path does what it did before it was shared. */
static inline __attribute__((always_inline)) bool op_begin(chat_sink *s, const char *user_id,
                                                          json_t *body, const char *f,
                                                          const char *given, const char *not_found,
                                                          verr *v, char out[24])
{
    if (!caller_ok(s, user_id)) return false;
    if (get_id(body, f, given, true, v, out) != -2) return true;
    verr_clear(v);
    chat_fail(s, "not_found", not_found, NULL);
    return false;
}

/* True after answering validation_failed when v holds errors. */
static bool op_refused(chat_sink *s, verr *v)
{
    if (!verr_any(v)) return false;
    chat_fail_verr(s, v);
    return true;
}

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set)) return true;
    return false;
}

static bool media_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > MEDIA_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Reads the message body member: a string of at most message_max_bytes.
 * Returns 1 present, 0 absent/null, -1 error recorded. */
static int get_body(json_t *b, bool required, verr *v, const char **out)
{
    int rc = verr_get_string(b, "body", (required ? VERR_REQUIRED : 0) | VERR_NULLABLE,
                             required ? 1 : 0, (size_t)-1, v, out);
    if (rc == 1 && *out && strlen(*out) > g_config.message_max_bytes) {
        char msg[80];
        snprintf(msg, sizeof msg, "must be at most %zu bytes", g_config.message_max_bytes);
        verr_add(v, "body", msg);
        return -1;
    }
    if (rc == 1 && !*out) {
        if (required) {
            verr_add(v, "body", "is required");
            return -1;
        }
        return 0;
    }
    return rc;
}

/* Validates a location {latitude, longitude, name?} into a fresh object. */
static json_t *get_location(json_t *x, verr *v)
{
    if (!json_is_object(x)) {
        verr_add(v, "location", "must be an object {latitude, longitude, name?}");
        return NULL;
    }
    json_t *la = json_object_get(x, "latitude"), *lo = json_object_get(x, "longitude");
    if (!json_is_number(la) || !json_is_number(lo) || json_number_value(la) < -90 ||
        json_number_value(la) > 90 || json_number_value(lo) < -180 || json_number_value(lo) > 180) {
        verr_add(v, "location", "needs latitude (-90..90) and longitude (-180..180)");
        return NULL;
    }
    const char *name = NULL;
    verr tmp = {0};
    if (verr_get_string(x, "name", VERR_NULLABLE | VERR_NO_CTRL, 0, LOCATION_NAME_MAX, &tmp, &name) < 0) {
        verr_clear(&tmp);
        verr_add(v, "location", "name must be a string of at most 256 characters");
        return NULL;
    }
    json_t *o = json_pack("{s:f,s:f}", "latitude", json_number_value(la), "longitude",
                          json_number_value(lo));
    json_object_set_new(o, "name", name ? json_string(name) : json_null());
    return o;
}

/* Validates a contact {name, phone?, user_id?} into a fresh object. */
static json_t *get_contact(json_t *x, verr *v)
{
    if (!json_is_object(x)) {
        verr_add(v, "contact", "must be an object {name, phone?, user_id?}");
        return NULL;
    }
    verr tmp = {0};
    const char *name = NULL, *phone = NULL;
    char uid[24];
    int rn = verr_get_string(x, "name", VERR_REQUIRED | VERR_NO_CTRL, 1, CONTACT_NAME_MAX, &tmp, &name);
    int rp = verr_get_string(x, "phone", VERR_NULLABLE | VERR_NO_CTRL, 0, CONTACT_PHONE_MAX, &tmp, &phone);
    int ru = chat_json_id(json_object_get(x, "user_id"), uid);
    verr_clear(&tmp);
    if (rn < 0 || rp < 0 || ru < 0) {
        verr_add(v, "contact", "needs a name (1-128 characters), optional phone and user_id");
        return NULL;
    }
    json_t *o = json_pack("{s:s}", "name", name);
    json_object_set_new(o, "phone", phone ? json_string(phone) : json_null());
    json_object_set_new(o, "user_id", ru == 1 ? json_string(uid) : json_null());
    return o;
}

/* ------------------------------------------------------------------------ */
/* message:send / POST /conversations/:id/messages                           */
/* ------------------------------------------------------------------------ */

static ratelimit_table *g_send_rl;
static ratelimit_limit g_send_lim;

static const char *const KINDS[] = {"text",  "image",    "video",   "audio",      "voice",
                                    "file",  "location", "contact", "ciphertext", NULL};
static const char *const MEDIA_KINDS[] = {"image", "video", "audio", "voice", "file", NULL};

void chat_op_send(chat_sink *s, const char *user_id, const char *conv_id, json_t *body)
{
    s->t0_ns = uv_hrtime();
    verr v = {0};
    char conv[24], reply_to[24], forward_of[24];
    if (!op_begin(s, user_id, body, "conversation_id", conv_id, "no such conversation", &v, conv))
        return;
    const char *client_id = NULL, *kind = NULL, *text = NULL, *media = NULL;
    verr_get_string(body, "client_id", VERR_REQUIRED | VERR_NO_CTRL, 1, CLIENT_ID_MAX, &v, &client_id);
    if (verr_get_string(body, "kind", VERR_REQUIRED, 1, 16, &v, &kind) == 1 && !one_of(kind, KINDS))
        verr_add(&v, "kind",
                      "must be one of text, image, video, audio, voice, file, location, contact, "
                      "ciphertext");
    bool known = kind && one_of(kind, KINDS);
    bool is_media = known && one_of(kind, MEDIA_KINDS);
    get_body(body, known && (!strcmp(kind, "text") || !strcmp(kind, "ciphertext")), &v, &text);
    int rm = verr_get_string(body, "media_id", VERR_NULLABLE, 1, MEDIA_ID_MAX, &v, &media);
    if (rm == 1 && media && !media_id_ok(media)) verr_add(&v, "media_id", "is not a media id");
    if (known && is_media && !media) verr_add(&v, "media_id", "is required for this kind");
    if (known && !is_media && media) verr_add(&v, "media_id", "is only for media kinds");
    int rr = get_id(body, "reply_to", NULL, false, &v, reply_to);
    int rf = get_id(body, "forward_of", NULL, false, &v, forward_of);
    json_t *loc = NULL, *contact = NULL;
    json_t *lx = json_object_get(body, "location"), *cx = json_object_get(body, "contact");
    if (known && !strcmp(kind, "location")) loc = get_location(lx, &v);
    else if (lx && !json_is_null(lx)) verr_add(&v, "location", "is only for kind location");
    if (known && !strcmp(kind, "contact")) contact = get_contact(cx, &v);
    else if (cx && !json_is_null(cx)) verr_add(&v, "contact", "is only for kind contact");
    if (verr_any(&v)) {
        json_decref(loc);
        json_decref(contact);
        chat_fail_verr(s, &v);
        return;
    }
    if (g_send_rl) {
        int64_t wait = ratelimit_table_take(g_send_rl, user_id, &g_send_lim, util_now_unix_ms(), 1);
        if (wait > 0) {
            json_decref(loc);
            json_decref(contact);
            sink_fail(s, "rate_limited", "too many messages; slow down", NULL,
                      (int)((wait + 999) / 1000));
            return;
        }
    }
    /* one item of sb_message_send_batch (044), sent with the other sends of
     * this reactor's next batch (chat_send_batch.c) */
    json_t *item = json_pack("{s:s,s:s,s:s,s:s}", "u", user_id, "c", conv, "i", client_id, "k", kind);
    if (item) {
        if (text) json_object_set_new(item, "b", json_string(text));
        if (media) json_object_set_new(item, "m", json_string(media));
        if (rr == 1) json_object_set_new(item, "r", json_string(reply_to));
        if (rf == 1) json_object_set_new(item, "f", json_string(forward_of));
        if (loc) json_object_set(item, "l", loc);
        if (contact) json_object_set(item, "o", contact);
    }
    json_decref(loc);
    json_decref(contact);
    char *text_item = item ? json_dumps(item, JSON_COMPACT) : NULL;
    json_decref(item);
    if (!text_item) {
        chat_fail(s, "internal", "out of memory", NULL);
        return;
    }
    s->op = CHAT_SENT;
    if (!s->db) {
        free(text_item);
        sink_fail(s, "unavailable", "no database is configured", NULL, 1);
        return;
    }
    chat_send_batch_add(s, id_parse(conv), text_item); /* takes text_item */
}

/* ------------------------------------------------------------------------ */
/* message:edit / PATCH /messages/:id                                        */
/* ------------------------------------------------------------------------ */

void chat_op_edit(chat_sink *s, const char *user_id, const char *msg_id, json_t *body)
{
    verr v = {0};
    char id[24];
    if (!op_begin(s, user_id, body, "message_id", msg_id, "no such message", &v, id)) return;
    const char *text = NULL;
    get_body(body, true, &v, &text);
    if (op_refused(s, &v)) return;
    const char *p[3] = {user_id, id, text};
    chat_run(s, CHAT_PLAIN, 0, "SELECT sb_message_edit($1::int8, $2::int8, $3)::text", 3, p);
}

/* ------------------------------------------------------------------------ */
/* message:delete / DELETE /messages/:id?for=                                */
/* ------------------------------------------------------------------------ */

void chat_op_delete(chat_sink *s, const char *user_id, const char *msg_id, const char *for_,
                    json_t *body)
{
    verr v = {0};
    char id[24];
    if (!op_begin(s, user_id, body, "message_id", msg_id, "no such message", &v, id)) return;
    if (!for_) verr_get_string(body, "for", VERR_REQUIRED, 1, 16, &v, &for_);
    if (for_ && strcmp(for_, "me") && strcmp(for_, "everyone"))
        verr_add(&v, "for", "must be me or everyone");
    else if (!for_)
        verr_add(&v, "for", "is required");
    if (op_refused(s, &v)) return;
    const char *p[3] = {user_id, id, for_};
    chat_run(s, CHAT_EMPTY, 0, "SELECT sb_message_delete($1::int8, $2::int8, $3)::text", 3, p);
}

/* ------------------------------------------------------------------------ */
/* message:react / POST|DELETE /messages/:id/reactions                       */
/* ------------------------------------------------------------------------ */

/* An emoji: 1..64 bytes, no whitespace or control characters. */
static bool emoji_ok(const char *e)
{
    size_t n = strlen(e);
    if (n < 1 || n > EMOJI_MAX_BYTES) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)e[i] <= 0x20 || e[i] == 0x7f) return false;
    return util_utf8_valid((const uint8_t *)e, n);
}

void chat_op_react(chat_sink *s, const char *user_id, const char *msg_id, const char *emoji,
                   const char *op, json_t *body)
{
    verr v = {0};
    char id[24];
    if (!op_begin(s, user_id, body, "message_id", msg_id, "no such message", &v, id)) return;
    if (!emoji) verr_get_string(body, "emoji", VERR_REQUIRED, 1, EMOJI_MAX_BYTES, &v, &emoji);
    if (emoji && !emoji_ok(emoji)) verr_add(&v, "emoji", "must be one emoji (1-64 bytes, no spaces)");
    if (!op) {
        if (verr_get_string(body, "op", VERR_REQUIRED, 1, 16, &v, &op) == 1 && strcmp(op, "add") &&
            strcmp(op, "remove"))
            verr_add(&v, "op", "must be add or remove");
    }
    if (op_refused(s, &v)) return;
    const char *p[4] = {user_id, id, emoji, op};
    chat_run(s, CHAT_ACK, 0,
             "SELECT sb_message_react($1::int8, $2::int8, $3, $4)::text", 4, p);
}

/* ------------------------------------------------------------------------ */
/* receipt / POST /conversations/:id/read|delivered                          */
/* ------------------------------------------------------------------------ */

void chat_op_receipt(chat_sink *s, const char *user_id, const char *conv_id, const char *kind,
                     json_t *body)
{
    verr v = {0};
    char conv[24];
    if (!op_begin(s, user_id, body, "conversation_id", conv_id, "no such conversation", &v, conv))
        return;
    if (!kind) {
        if (verr_get_string(body, "kind", VERR_REQUIRED, 1, 16, &v, &kind) == 1 &&
            strcmp(kind, "read") && strcmp(kind, "delivered"))
            verr_add(&v, "kind", "must be delivered or read");
    }
    json_t *up = json_object_get(body, "up_to_seq");
    char seq[24] = "";
    if (!up) verr_add(&v, "up_to_seq", "is required");
    else if (!json_is_integer(up) || json_integer_value(up) < 0)
        verr_add(&v, "up_to_seq", "must be a non-negative integer");
    else snprintf(seq, sizeof seq, "%lld", (long long)json_integer_value(up));
    if (op_refused(s, &v)) return;
    const char *p[4] = {user_id, conv, kind, seq};
    chat_run(s, CHAT_ACK, 0, "SELECT sb_receipt($1::int8, $2::int8, $3, $4::int8)::text", 4, p);
}

void chat_ops_init(void)
{
    if (ratelimit_limit_parse(g_config.ratelimit_send, &g_send_lim) != 0) {
        log_msg(LOG_WARN, "bad SB_RATELIMIT_SEND (want N/seconds); using 200/20", NULL);
        ratelimit_limit_parse("200/20", &g_send_lim);
    }
    if (!g_send_rl && (g_send_rl = ratelimit_table_new(RL_TABLE_MAX))) ratelimit_table_set_kind(g_send_rl, "send");
}
