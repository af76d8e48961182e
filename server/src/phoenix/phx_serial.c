/* phx_serial.c — Phoenix Channels serializers (see phx_serial.h).
 *
 * Text output is what Phoenix 1.7 (Jason) produces: compact JSON, UTF-8 left
 * unescaped, only '"', '\\' and control characters escaped (\b \t \n \f \r,
 * else \u00XX uppercase), envelope keys in Jason's sorted order. JSON values
 * are written by a small writer of our own instead of json_dumpb so that the
 * text goes straight into the outgoing sb_buf and floats are printed the way
 * Erlang's shortest form does (1.1, 100.0, 1.0e-4, 1.0e20) rather than
 * jansson's %.17g (1.1000000000000001). Object keys keep insertion order. */
#include "phoenix/phx_serial.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/json_depth.h"

#define WRITE_MAX_DEPTH 2048 /* values nested deeper (or cyclic) are not encoded */
#define BIN_FIELD_MAX 255    /* a binary frame stores each field size in one byte */

/* ---------------------------------------------------------------- helpers */

/* True when s[0..n) is strict UTF-8 (no overlongs, surrogates or code points
 * above U+10FFFF) and holds no NUL byte. */
static bool text_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0) return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* Formats a finite double the way Erlang's io_lib_format:fwrite_g/1 does
 * (what Jason uses): shortest digits that read back to the same double, then
 * plain or scientific notation, whichever OTP's insert_decimal picks.
 * Writes a NUL-terminated string into out (>= 40 bytes); returns its length,
 * or 0 for NaN/infinity (which JSON cannot carry). */
static size_t fmt_real(double v, char *out)
{
    if (!isfinite(v)) return 0;
    size_t o = 0;
    if (signbit(v)) out[o++] = '-';
    double a = fabs(v);
    if (a == 0) {
        memcpy(out + o, "0.0", 4);
        return o + 3;
    }
    char sci[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(sci, sizeof sci, "%.*e", p - 1, a);
        if (p == 17 || strtod(sci, NULL) == a) break;
    }
    /* sci is "D[.DDD]e[+-]XX": collect the digits and the exponent. */
    char dig[24];
    size_t L = 0;
    const char *q = sci;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') dig[L++] = *q;
    int exp10 = atoi(q + 1);
    while (L > 1 && dig[L - 1] == '0')
        L--;
    int place = exp10 - (int)(L - 1); /* value = digits * 10^place */
    char expl[8];
    int expl_len = snprintf(expl, sizeof expl, "%d", exp10);
    int exp_cost = expl_len + 2;
    bool use_exp = false;
    if (place < 0) {
        if (exp10 >= 0) { /* decimal point inside the digits */
            size_t ip = (size_t)((int)L + place);
            memcpy(out + o, dig, ip);
            o += ip;
            out[o++] = '.';
            memcpy(out + o, dig + ip, L - ip);
            o += L - ip;
        } else if (2 - place - (int)L <= exp_cost) { /* 0.000DDD */
            out[o++] = '0';
            out[o++] = '.';
            for (int z = 0; z < -place - (int)L; z++)
                out[o++] = '0';
            memcpy(out + o, dig, L);
            o += L;
        } else {
            use_exp = true;
        }
    } else {
        int dot = L == 1 ? 1 : 0;
        if (exp_cost + dot >= place + 2 && a < 9007199254740992.0) { /* DDD000.0 */
            memcpy(out + o, dig, L);
            o += L;
            for (int z = 0; z < place; z++)
                out[o++] = '0';
            out[o++] = '.';
            out[o++] = '0';
        } else {
            use_exp = true;
        }
    }
    if (use_exp) { /* D.DDDeX, or D.0eX for one digit */
        out[o++] = dig[0];
        out[o++] = '.';
        if (L == 1) {
            out[o++] = '0';
        } else {
            memcpy(out + o, dig + 1, L - 1);
            o += L - 1;
        }
        out[o++] = 'e';
        memcpy(out + o, expl, (size_t)expl_len);
        o += (size_t)expl_len;
    }
    out[o] = 0;
    return o;
}

/* ----------------------------------------------------------------- writer */

/* Appends into one sb_buf; on the first failure the buffer is gone (b NULL)
 * and every later call is a no-op, so callers check once at the end. */
typedef struct wr {
    sb_buf *b;
    bool bad; /* a value could not be encoded (b is freed by wr_finish) */
} wr;

static void put(wr *w, const void *p, size_t n)
{
    if (w->b && n) w->b = sb_buf_append(w->b, p, n);
}

static void put_lit(wr *w, const char *s)
{
    put(w, s, strlen(s));
}

/* A JSON string literal with Jason's escaping. */
static void put_str(wr *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char short_esc[] = {['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\t'] = 't',
                                     ['\n'] = 'n', ['\f'] = 'f',  ['\r'] = 'r'};
    put(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(w, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', (char)(c < sizeof short_esc ? short_esc[c] : 0)};
        size_t en = 2;
        if (!e[1]) {
            memcpy(e + 1, "u00", 3);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            en = 6;
        }
        put(w, e, en);
    }
    put(w, s + run, n - run);
    put(w, "\"", 1);
}

/* A C string that must be valid UTF-8 (topic, event, status). */
static void put_cstr(wr *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!s || !text_ok((const uint8_t *)s, n)) {
        w->bad = true;
        return;
    }
    put_str(w, s, n);
}

static void put_value(wr *w, const json_t *v, int depth)
{
    char num[48];
    if (depth > WRITE_MAX_DEPTH) {
        w->bad = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        put(w, "{", 1);
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it && w->b && !w->bad;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first) put(w, ",", 1);
            first = false;
            put_str(w, json_object_iter_key(it), json_object_iter_key_len(it));
            put(w, ":", 1);
            put_value(w, json_object_iter_value(it), depth + 1);
        }
        put(w, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        put(w, "[", 1);
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n && w->b && !w->bad; i++) {
            if (i) put(w, ",", 1);
            put_value(w, json_array_get(v, i), depth + 1);
        }
        put(w, "]", 1);
        break;
    }
    case JSON_STRING:
        put_str(w, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put(w, num,
            (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
        break;
    case JSON_REAL: {
        size_t n = fmt_real(json_real_value(v), num);
        if (!n) w->bad = true;
        put(w, num, n);
        break;
    }
    case JSON_TRUE:
        put(w, "true", 4);
        break;
    case JSON_FALSE:
        put(w, "false", 5);
        break;
    case JSON_NULL:
        put(w, "null", 4);
        break;
    }
}

/* A ref: NULL is JSON null. */
static void put_ref(wr *w, const json_t *r)
{
    if (!r)
        put(w, "null", 4);
    else
        put_value(w, r, 1);
}

static wr wr_start(size_t guess)
{
    wr w = {sb_buf_new(guess), false};
    return w;
}

/* Frames the buffer (opcode 1 text, 2 binary) and returns it, or NULL after a
 * failure. */
static sb_buf *wr_finish(wr *w, int opcode)
{
    if (w->b && w->bad) {
        sb_buf_unref(w->b);
        w->b = NULL;
    }
    if (w->b) sb_buf_frame(w->b, opcode);
    return w->b;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* The text form of a ref in a binary frame: "" for null, the string itself,
 * or a number in decimal (Elixir's to_string/1). Returns false when the ref
 * cannot be written (other JSON types, over 255 bytes, bad UTF-8). tmp must
 * hold 48 bytes. */
static bool ref_text(const json_t *r, char *tmp, const char **p, size_t *n)
{
    if (!r || json_is_null(r)) {
        *p = "";
        *n = 0;
    } else if (json_is_string(r)) {
        *p = json_string_value(r);
        *n = json_string_length(r);
    } else if (json_is_integer(r)) {
        *n = (size_t)snprintf(tmp, 48, "%" JSON_INTEGER_FORMAT, json_integer_value(r));
        *p = tmp;
    } else if (json_is_real(r)) {
        *n = fmt_real(json_real_value(r), tmp);
        *p = tmp;
        if (!*n) return false;
    } else {
        return false;
    }
    return *n <= BIN_FIELD_MAX && text_ok((const uint8_t *)*p, *n);
}

/* A topic, event or status for a binary frame: non-NULL, at most 255 bytes,
 * valid UTF-8 without NUL. */
static bool field_ok(const char *s, size_t *n)
{
    if (!s) return false;
    *n = strlen(s);
    return *n <= BIN_FIELD_MAX && text_ok((const uint8_t *)s, *n);
}

/* ----------------------------------------------------------------- decode */

/* A ref as sent: JSON null maps to NULL, string and number are kept. */
static bool ref_ok(const json_t *r)
{
    return !r || json_is_null(r) || json_is_string(r) || json_is_number(r);
}

static json_t *ref_take(json_t *r)
{
    return (!r || json_is_null(r)) ? NULL : json_incref(r);
}

static char *str_dup(const json_t *s)
{
    size_t n = json_string_length(s);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, json_string_value(s), n);
        p[n] = 0;
    }
    return p;
}

static char *mem_dup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n) memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int decode_binary(const char *data, size_t len, phx_msg *out)
{
    const uint8_t *u = (const uint8_t *)data;
    if (len < 5 || u[0] != 0) return -1;
    size_t jl = u[1], rl = u[2], tl = u[3], el = u[4];
    if (len - 5 < jl + rl + tl + el) return -1;
    const char *jr = data + 5, *ref = jr + jl, *topic = ref + rl, *event = topic + tl;
    const char *body = event + el;
    size_t bl = len - 5 - jl - rl - tl - el;
    if (!text_ok((const uint8_t *)jr, jl) || !text_ok((const uint8_t *)ref, rl) ||
        !text_ok((const uint8_t *)topic, tl) || !text_ok((const uint8_t *)event, el))
        return -1;
    out->binary = true;
    out->join_ref = json_stringn_nocheck(jr, jl);
    out->ref = json_stringn_nocheck(ref, rl);
    out->topic = mem_dup(topic, tl);
    out->event = mem_dup(event, el);
    out->bin = malloc(bl ? bl : 1); /* non-NULL even for empty data */
    out->bin_len = bl;
    if (!out->join_ref || !out->ref || !out->topic || !out->event || !out->bin) {
        phx_msg_clear(out);
        return -1;
    }
    if (bl) memcpy(out->bin, body, bl);
    return 0;
}

/* See phx_serial.h. Text frames: V2 exactly [join_ref, ref, topic, event,
 * payload]; V1 an object with "topic", "event", "payload", "ref" and optional
 * "join_ref" (other keys ignored, as Phoenix does). \u0000 is accepted in
 * payload strings (valid JSON, echoed as sent) but not in a topic or event.
 * Binary frames only on V2, kind 0. */
int phx_decode(phx_vsn vsn, bool binary, const char *data, size_t len, phx_msg *out)
{
    memset(out, 0, sizeof *out);
    if (!data || !len) return -1;
    if (binary) return vsn == PHX_V2 ? decode_binary(data, len, out) : -1;
    if (vsn != PHX_V1 && vsn != PHX_V2) return -1;
    /* the nesting pre-scan runs before jansson, so that hostile nesting
     * never recurses (the frame's own array or object is level 1) */
    if (!json_depth_ok(data, len, PHX_MAX_DEPTH)) return -1;

    json_error_t err;
    json_t *root = json_loadb(data, len, JSON_ALLOW_NUL, &err);
    if (!root) return -1;
    json_t *jr, *ref, *topic, *event, *payload;
    if (vsn == PHX_V2) {
        if (!json_is_array(root) || json_array_size(root) != 5) goto bad;
        jr = json_array_get(root, 0);
        ref = json_array_get(root, 1);
        topic = json_array_get(root, 2);
        event = json_array_get(root, 3);
        payload = json_array_get(root, 4);
    } else {
        if (!json_is_object(root)) goto bad;
        jr = json_object_get(root, "join_ref"); /* optional */
        ref = json_object_get(root, "ref");
        topic = json_object_get(root, "topic");
        event = json_object_get(root, "event");
        payload = json_object_get(root, "payload");
        if (!ref || !payload) goto bad; /* required, though they may be null */
    }
    if (!json_is_string(topic) || !json_is_string(event) || !ref_ok(jr) || !ref_ok(ref)) goto bad;
    if (strlen(json_string_value(topic)) != json_string_length(topic) ||
        strlen(json_string_value(event)) != json_string_length(event))
        goto bad;
    out->topic = str_dup(topic);
    out->event = str_dup(event);
    if (!out->topic || !out->event) goto bad;
    out->join_ref = ref_take(jr);
    out->ref = ref_take(ref);
    out->payload = json_incref(payload);
    json_decref(root);
    return 0;
bad:
    phx_msg_clear(out);
    json_decref(root);
    return -1;
}

/* Releases everything phx_decode filled in and zeroes *m; safe on a zeroed or
 * already cleared message. */
void phx_msg_clear(phx_msg *m)
{
    json_decref(m->join_ref);
    json_decref(m->ref);
    json_decref(m->payload);
    free(m->topic);
    free(m->event);
    free(m->bin);
    memset(m, 0, sizeof *m);
}

/* ----------------------------------------------------------------- encode */

/* Writes a text message around a payload put by `body` (a json_t, raw text,
 * or a reply envelope). V2: [jr,ref,"topic","event",P]; V1:
 * {"event":E,"payload":P,"ref":R,"topic":T}. */
enum body_kind { BODY_VALUE, BODY_RAW, BODY_REPLY };
typedef struct body {
    enum body_kind kind;
    const json_t *value; /* VALUE: payload; REPLY: response (NULL = {}) */
    const char *raw;     /* RAW */
    size_t raw_len;
    const char *status; /* REPLY */
} body;

static void put_body(wr *w, const body *bd)
{
    switch (bd->kind) {
    case BODY_VALUE:
        if (bd->value)
            put_value(w, bd->value, 1);
        else
            put(w, "{}", 2);
        break;
    case BODY_RAW:
        if (bd->raw && bd->raw_len)
            put(w, bd->raw, bd->raw_len);
        else
            put(w, "{}", 2);
        break;
    case BODY_REPLY: /* Jason sorts map keys: response before status */
        put_lit(w, "{\"response\":");
        if (bd->value)
            put_value(w, bd->value, 2);
        else
            put(w, "{}", 2);
        put_lit(w, ",\"status\":");
        put_cstr(w, bd->status);
        put(w, "}", 1);
        break;
    }
}

static sb_buf *encode_text(phx_vsn vsn, const json_t *join_ref, const json_t *ref,
                           const char *topic, const char *event, const body *bd)
{
    size_t guess = 64 + slen(topic) + slen(event) + (bd->kind == BODY_RAW ? bd->raw_len : 192);
    wr w = wr_start(guess);
    if (vsn == PHX_V1) {
        put_lit(&w, "{\"event\":");
        put_cstr(&w, event);
        put_lit(&w, ",\"payload\":");
        put_body(&w, bd);
        put_lit(&w, ",\"ref\":");
        put_ref(&w, ref);
        put_lit(&w, ",\"topic\":");
        put_cstr(&w, topic);
        put(&w, "}", 1);
    } else {
        put(&w, "[", 1);
        put_ref(&w, join_ref);
        put(&w, ",", 1);
        put_ref(&w, ref);
        put(&w, ",", 1);
        put_cstr(&w, topic);
        put(&w, ",", 1);
        put_cstr(&w, event);
        put(&w, ",", 1);
        put_body(&w, bd);
        put(&w, "]", 1);
    }
    return wr_finish(&w, 1);
}

/* Text frame for any message; payload NULL is {}. NULL when out of memory or
 * when topic/event are NULL or not valid UTF-8. */
sb_buf *phx_encode(phx_vsn vsn, json_t *join_ref, json_t *ref, const char *topic, const char *event,
                   json_t *payload)
{
    body bd = {.kind = BODY_VALUE, .value = payload};
    return encode_text(vsn, join_ref, ref, topic, event, &bd);
}

/* Text frame with payload_json copied verbatim (NULL or empty is {}). */
sb_buf *phx_encode_raw(phx_vsn vsn, json_t *join_ref, json_t *ref, const char *topic,
                       const char *event, const char *payload_json, size_t payload_len)
{
    body bd = {.kind = BODY_RAW, .raw = payload_json, .raw_len = payload_len};
    return encode_text(vsn, join_ref, ref, topic, event, &bd);
}

sb_buf *phx_encode_push_shared(phx_vsn vsn, const char *topic, const char *event,
                               const char *payload_json, size_t payload_len)
{
    if (vsn == PHX_V1) return phx_encode_raw(vsn, NULL, NULL, topic, event, payload_json, payload_len);
    body bd = {.kind = BODY_RAW, .raw = payload_json, .raw_len = payload_len};
    wr w = wr_start(payload_len + 3);
    put_body(&w, &bd);
    put(&w, "]", 1);
    if (w.b && w.bad) {
        sb_buf_unref(w.b);
        return NULL;
    }
    if (w.b) sb_buf_piece(w.b);
    return w.b;
}

sb_buf *phx_encode_push_head(json_t *join_ref, const char *topic, const char *event,
                             const sb_buf *shared)
{
    wr w = wr_start(64 + slen(topic) + slen(event));
    put(&w, "[", 1);
    put_ref(&w, join_ref);
    put_lit(&w, ",null,");
    put_cstr(&w, topic);
    put(&w, ",", 1);
    put_cstr(&w, event);
    put(&w, ",", 1);
    if (w.b && w.bad) {
        sb_buf_unref(w.b);
        return NULL;
    }
    if (w.b) sb_buf_frame_total(w.b, 1, (uint64_t)w.b->len + shared->len);
    return w.b;
}

/* Text phx_reply: payload {"response":R,"status":S}; response NULL is {}. */
sb_buf *phx_encode_reply(phx_vsn vsn, json_t *join_ref, json_t *ref, const char *topic,
                         const char *status, json_t *response)
{
    body bd = {.kind = BODY_REPLY, .value = response, .status = status};
    return encode_text(vsn, join_ref, ref, topic, "phx_reply", &bd);
}

/* Binary reply (kind 1). NULL when out of memory or when a field does not fit
 * in 255 bytes (Phoenix raises there too), or a ref is not null/string/number. */
sb_buf *phx_encode_reply_binary(json_t *join_ref, json_t *ref, const char *topic,
                                const char *status, const void *data, size_t len)
{
    char t1[48], t2[48];
    const char *jp, *rp;
    size_t jl, rl, tl, sl;
    if (!ref_text(join_ref, t1, &jp, &jl) || !ref_text(ref, t2, &rp, &rl) ||
        !field_ok(topic, &tl) || !field_ok(status, &sl) || (len && !data))
        return NULL;
    uint8_t h[5] = {1, (uint8_t)jl, (uint8_t)rl, (uint8_t)tl, (uint8_t)sl};
    wr w = wr_start(5 + jl + rl + tl + sl + len);
    put(&w, h, 5);
    put(&w, jp, jl);
    put(&w, rp, rl);
    put(&w, topic, tl);
    put(&w, status, sl);
    put(&w, data, len);
    return wr_finish(&w, 2);
}

/* Binary server push (kind 0, no ref). NULL as for the reply. */
sb_buf *phx_encode_push_binary(json_t *join_ref, const char *topic, const char *event,
                               const void *data, size_t len)
{
    char t1[48];
    const char *jp;
    size_t jl, tl, el;
    if (!ref_text(join_ref, t1, &jp, &jl) || !field_ok(topic, &tl) || !field_ok(event, &el) ||
        (len && !data))
        return NULL;
    uint8_t h[4] = {0, (uint8_t)jl, (uint8_t)tl, (uint8_t)el};
    wr w = wr_start(4 + jl + tl + el + len);
    put(&w, h, 4);
    put(&w, jp, jl);
    put(&w, topic, tl);
    put(&w, event, el);
    put(&w, data, len);
    return wr_finish(&w, 2);
}

/* Binary broadcast (kind 2). NULL as for the reply. */
sb_buf *phx_encode_broadcast_binary(const char *topic, const char *event, const void *data,
                                    size_t len)
{
    size_t tl, el;
    if (!field_ok(topic, &tl) || !field_ok(event, &el) || (len && !data)) return NULL;
    uint8_t h[3] = {2, (uint8_t)tl, (uint8_t)el};
    wr w = wr_start(3 + tl + el + len);
    put(&w, h, 3);
    put(&w, topic, tl);
    put(&w, event, el);
    put(&w, data, len);
    return wr_finish(&w, 2);
}
