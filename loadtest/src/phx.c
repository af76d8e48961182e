/* phx.c — Phoenix V2 frames and the JSON span scanner (see phx.h). */
#include "phx.h"

#include <stdio.h>
#include <string.h>

static inline const char *ws_skip(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p at the opening quote; returns the position after the closing quote. */
static const char *skip_string(const char *p, const char *e)
{
    p++;
    while (p < e) {
        const char *q = memchr(p, '"', (size_t)(e - p));
        if (!q) return NULL;
        /* Count the backslashes right before the quote. */
        const char *b = q;
        while (b > p && b[-1] == '\\') b--;
        if (((q - b) & 1) == 0) return q + 1;
        p = q + 1;
    }
    return NULL;
}

const char *json_skip(const char *p, const char *e)
{
    p = ws_skip(p, e);
    if (p >= e) return NULL;
    char c = *p;
    if (c == '"') return skip_string(p, e);
    if (c == '{' || c == '[') {
        char stack[PHX_MAX_DEPTH];
        int depth = 0;
        while (p < e) {
            c = *p;
            if (c == '"') {
                p = skip_string(p, e);
                if (!p) return NULL;
                continue;
            }
            if (c == '{' || c == '[') {
                if (depth == PHX_MAX_DEPTH) return NULL;
                stack[depth++] = c == '{' ? '}' : ']';
            } else if (c == '}' || c == ']') {
                if (depth == 0 || stack[depth - 1] != c) return NULL;
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    /* number, true, false, null */
    const char *s = p;
    while (p < e && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || *p == '-' ||
                     *p == '+' || *p == '.' || *p == 'E'))
        p++;
    return p > s ? p : NULL;
}

int json_obj_next(span obj, size_t *pos, span *key, span *val)
{
    const char *e = obj.p + obj.n;
    const char *p = obj.p + *pos;
    if (*pos == 0) {
        p = ws_skip(obj.p, e);
        if (p >= e || *p != '{') return 0;
        p++;
    }
    p = ws_skip(p, e);
    if (p < e && *p == ',') p = ws_skip(p + 1, e);
    if (p >= e || *p != '"') return 0;
    const char *ke = skip_string(p, e);
    if (!ke) return 0;
    key->p = p + 1;
    key->n = (size_t)(ke - p - 2);
    p = ws_skip(ke, e);
    if (p >= e || *p != ':') return 0;
    p = ws_skip(p + 1, e);
    const char *ve = json_skip(p, e);
    if (!ve) return 0;
    val->p = p;
    val->n = (size_t)(ve - p);
    *pos = (size_t)(ve - obj.p);
    return 1;
}

int json_obj_get(span obj, const char *key, span *val)
{
    size_t pos = 0, kl = strlen(key);
    span k, v;
    while (json_obj_next(obj, &pos, &k, &v)) {
        if (k.n == kl && memcmp(k.p, key, kl) == 0) {
            *val = v;
            return 1;
        }
    }
    return 0;
}

bool span_str_eq(span v, const char *s)
{
    size_t n = strlen(s);
    return v.n == n + 2 && v.p[0] == '"' && memcmp(v.p + 1, s, n) == 0 && v.p[n + 1] == '"';
}

bool span_is_null(span v) { return v.n == 4 && memcmp(v.p, "null", 4) == 0; }

int span_u64(span v, uint64_t *out)
{
    const char *p = v.p, *e = v.p + v.n;
    if (p < e && *p == '"') {
        p++;
        e--;
    }
    if (p >= e) return 0;
    uint64_t x = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9') return 0;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    *out = x;
    return 1;
}

int phx_parse(const char *buf, size_t len, phx_frame *f)
{
    const char *p = buf, *e = buf + len;
    span *slots[5] = {&f->join_ref, &f->ref, &f->topic, &f->event, &f->payload};
    p = ws_skip(p, e);
    if (p >= e || *p != '[') return -1;
    p++;
    for (int i = 0; i < 5; i++) {
        p = ws_skip(p, e);
        const char *ve = json_skip(p, e);
        if (!ve) return -1;
        slots[i]->p = p;
        slots[i]->n = (size_t)(ve - p);
        p = ws_skip(ve, e);
        if (p >= e) return -1;
        if (*p != (i < 4 ? ',' : ']')) return -1;
        p++;
    }
    if (f->topic.p[0] != '"' || f->event.p[0] != '"') return -1;
    return 0;
}

int json_escape(char *out, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 6 >= cap) return -1;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    if (o >= cap) return -1;
    out[o] = 0;
    return (int)o;
}

static int put_ref(char *out, size_t cap, uint32_t ref)
{
    int n = ref ? snprintf(out, cap, "\"%u\"", ref) : snprintf(out, cap, "null");
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int phx_build(char *out, size_t cap, uint32_t join_ref, uint32_t ref, const char *topic,
              const char *event, const char *payload, size_t plen)
{
    size_t o = 0;
    int n;
    if (cap < 2) return -1;
    out[o++] = '[';
    if ((n = put_ref(out + o, cap - o, join_ref)) < 0) return -1;
    o += (size_t)n;
    if (o + 1 >= cap) return -1;
    out[o++] = ',';
    if ((n = put_ref(out + o, cap - o, ref)) < 0) return -1;
    o += (size_t)n;
    const char *strs[2] = {topic, event};
    for (int i = 0; i < 2; i++) {
        if (o + 2 >= cap) return -1;
        out[o++] = ',';
        out[o++] = '"';
        if ((n = json_escape(out + o, cap - o, strs[i], strlen(strs[i]))) < 0) return -1;
        o += (size_t)n;
        if (o + 1 >= cap) return -1;
        out[o++] = '"';
    }
    if (o + plen + 3 > cap) return -1;
    out[o++] = ',';
    memcpy(out + o, payload, plen);
    o += plen;
    out[o++] = ']';
    out[o] = 0;
    return (int)o;
}

const char *const *g_pattern_users;
size_t g_pattern_nusers;

int pattern_expand(char *out, size_t cap, const char *pattern, uint64_t id)
{
    size_t o = 0;
    for (const char *p = pattern; *p;) {
        uint64_t v;
        size_t skip = 0;
        int peer = strncmp(p, "{peeruser}", 10) == 0;
        if (g_pattern_nusers && (peer || strncmp(p, "{user}", 6) == 0)) {
            const char *u = g_pattern_users[(peer ? id ^ 1 : id) % g_pattern_nusers];
            size_t ul = strlen(u);
            if (o + ul >= cap) return -1;
            memcpy(out + o, u, ul);
            o += ul;
            p += peer ? 10 : 6;
            continue;
        }
        if (strncmp(p, "{id}", 4) == 0) {
            v = id;
            skip = 4;
        } else if (strncmp(p, "{peer}", 6) == 0) {
            v = id ^ 1;
            skip = 6;
        }
        if (skip) {
            int n = snprintf(out + o, cap - o, "%llu", (unsigned long long)v);
            if (n < 0 || (size_t)n >= cap - o) return -1;
            o += (size_t)n;
            p += skip;
        } else {
            if (o + 1 >= cap) return -1;
            out[o++] = *p++;
        }
    }
    if (o >= cap) return -1;
    out[o] = 0;
    return (int)o;
}

int pattern_match(const char *pattern, const char *s, size_t n, uint64_t *id)
{
    const char *ph = strstr(pattern, "{id}");
    if (!ph) return 0;
    size_t pre = (size_t)(ph - pattern), suf = strlen(ph + 4);
    if (n < pre + suf + 1 || memcmp(s, pattern, pre) != 0 ||
        memcmp(s + n - suf, ph + 4, suf) != 0)
        return 0;
    span d = {s + pre, n - pre - suf};
    return span_u64(d, id);
}
