/* presence_table.c — one topic's compact presence table and the Presence
 * payload encoders (see presence_table.h). */
#include "presence/presence_table.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pres pres;

typedef struct pkey { /* one key (user id) of the topic and its presences */
    struct pkey *hnext;
    pres *first;
    uint64_t hash;
    uint32_t n;
    char key[PTAB_KEY_MAX];
} pkey;

struct pres { /* one presence */
    pres *rnext; /* (node, ref) hash chain */
    pres *knext; /* the key's presences */
    pkey *k;
    int64_t online_at;
    uint16_t node;
    char ref[PTAB_REF_MAX];
};

struct ptab {
    pkey **kb;      /* key hash buckets */
    pres **rb;      /* (node, ref) hash buckets */
    uint32_t nkb, nrb;
    uint32_t nkeys, n;
    char *st;       /* encoded presence_state, valid when st_ok */
    size_t st_len, st_cap;
    bool st_ok;
};

/* ---- growable text ---- */

typedef struct tbuf {
    char *p;
    size_t len, cap;
    bool oom;
} tbuf;

/* Makes room for `more` bytes (sets oom on failure). */
static bool tb_room(tbuf *b, size_t more)
{
    if (b->oom) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + more + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = nc;
    return true;
}

static void tb_add(tbuf *b, const char *s, size_t n)
{
    if (!tb_room(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void tb_lit(tbuf *b, const char *s) { tb_add(b, s, strlen(s)); }

/* Appends s as a JSON string (quotes, backslashes and control characters
 * escaped; the rest, valid UTF-8 from a parsed payload or digits, as is). */
static void tb_str(tbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (!tb_room(b, n * 6 + 2)) return;
    char *o = b->p + b->len;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        } else if (*c < 0x20) {
            o += sprintf(o, "\\u%04x", *c);
        } else {
            *o++ = (char)*c;
        }
    }
    *o++ = '"';
    *o = 0;
    b->len = (size_t)(o - b->p);
}

/* {"online_at":N,"phx_ref":"ref"} */
static void tb_meta(tbuf *b, int64_t online_at, const char *ref)
{
    char num[64];
    int k = snprintf(num, sizeof num, "{\"online_at\":%" PRId64 ",\"phx_ref\":", online_at);
    tb_add(b, num, (size_t)k);
    tb_str(b, ref);
    tb_add(b, "}", 1);
}

/* ---- table ---- */

static uint64_t hash_s(const char *s, uint64_t h)
{
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}
#define H0 1469598103934665603ull

static uint64_t ref_hash(uint16_t node, const char *ref) { return hash_s(ref, H0 ^ node); }

ptab *presence_table_new(void)
{
    ptab *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->nkb = t->nrb = 4;
    t->kb = calloc(t->nkb, sizeof *t->kb);
    t->rb = calloc(t->nrb, sizeof *t->rb);
    if (!t->kb || !t->rb) {
        presence_table_free(t);
        return NULL;
    }
    return t;
}

void presence_table_free(ptab *t)
{
    if (!t) return;
    for (uint32_t i = 0; t->kb && i < t->nkb; i++)
        for (pkey *k = t->kb[i], *kn; k; k = kn) {
            kn = k->hnext;
            for (pres *p = k->first, *pn; p; p = pn) {
                pn = p->knext;
                free(p);
            }
            free(k);
        }
    free(t->kb);
    free(t->rb);
    free(t->st);
    free(t);
}

size_t presence_table_count(const ptab *t) { return t ? t->n : 0; }

/* Doubles the key buckets (keeps them when out of memory). */
static void grow_keys(ptab *t)
{
    uint32_t nn = t->nkb * 2;
    pkey **nb = calloc(nn, sizeof *nb);
    if (!nb) return;
    for (uint32_t i = 0; i < t->nkb; i++)
        for (pkey *k = t->kb[i], *kn; k; k = kn) {
            kn = k->hnext;
            k->hnext = nb[k->hash & (nn - 1)];
            nb[k->hash & (nn - 1)] = k;
        }
    free(t->kb);
    t->kb = nb;
    t->nkb = nn;
}

/* Doubles the (node, ref) buckets (keeps them when out of memory). */
static void grow_refs(ptab *t)
{
    uint32_t nn = t->nrb * 2;
    pres **nb = calloc(nn, sizeof *nb);
    if (!nb) return;
    for (uint32_t i = 0; i < t->nrb; i++)
        for (pres *p = t->rb[i], *pn; p; p = pn) {
            pn = p->rnext;
            uint64_t h = ref_hash(p->node, p->ref) & (nn - 1);
            p->rnext = nb[h];
            nb[h] = p;
        }
    free(t->rb);
    t->rb = nb;
    t->nrb = nn;
}

/* The presence (node, ref) and the link pointing at it. */
static pres **find_ref(const ptab *t, uint16_t node, const char *ref)
{
    pres **pp = &t->rb[ref_hash(node, ref) & (t->nrb - 1)];
    while (*pp && ((*pp)->node != node || strcmp((*pp)->ref, ref) != 0)) pp = &(*pp)->rnext;
    return pp;
}

int presence_table_add(ptab *t, const pmeta *m)
{
    size_t kl = strnlen(m->key, PTAB_KEY_MAX), rl = strnlen(m->ref, PTAB_REF_MAX);
    if (kl >= PTAB_KEY_MAX || rl >= PTAB_REF_MAX || rl == 0) return -1;
    if (*find_ref(t, m->node, m->ref)) return 1;
    pres *p = malloc(sizeof *p);
    if (!p) return -1;
    uint64_t kh = hash_s(m->key, H0);
    pkey *k = t->kb[kh & (t->nkb - 1)];
    while (k && (k->hash != kh || strcmp(k->key, m->key) != 0)) k = k->hnext;
    bool new_key = !k;
    if (new_key) {
        if (!(k = calloc(1, sizeof *k))) {
            free(p);
            return -1;
        }
        memcpy(k->key, m->key, kl + 1);
        k->hash = kh;
        if (t->nkeys >= t->nkb) grow_keys(t);
        k->hnext = t->kb[kh & (t->nkb - 1)];
        t->kb[kh & (t->nkb - 1)] = k;
        t->nkeys++;
    }
    memcpy(p->ref, m->ref, rl + 1);
    p->online_at = m->online_at;
    p->node = m->node;
    p->k = k;
    p->knext = k->first;
    k->first = p;
    k->n++;
    if (t->n >= t->nrb) grow_refs(t);
    pres **rb = &t->rb[ref_hash(p->node, p->ref) & (t->nrb - 1)];
    p->rnext = *rb;
    *rb = p;
    t->n++;
    /* the cached state: a new key is appended in place, anything else
     * makes it rebuilt when next asked for */
    if (t->st_ok && new_key && t->st_len >= 2) {
        tbuf b = {t->st, t->st_len - 1, t->st_cap, false}; /* drop the closing } */
        if (t->nkeys > 1) tb_add(&b, ",", 1);
        tb_str(&b, k->key);
        tb_lit(&b, ":{\"metas\":[");
        tb_meta(&b, p->online_at, p->ref);
        tb_lit(&b, "]}}");
        t->st = b.p;
        t->st_cap = b.cap;
        t->st_len = b.len;
        t->st_ok = !b.oom;
    } else {
        t->st_ok = false;
    }
    return 0;
}

/* Unlinks and frees presence *pp (from the ref chain link pp). */
static void remove_at(ptab *t, pres **pp, pmeta *out)
{
    pres *p = *pp;
    *pp = p->rnext;
    pkey *k = p->k;
    if (out) {
        memcpy(out->key, k->key, sizeof out->key);
        memcpy(out->ref, p->ref, sizeof out->ref);
        out->online_at = p->online_at;
        out->node = p->node;
    }
    pres **kp = &k->first;
    while (*kp != p) kp = &(*kp)->knext;
    *kp = p->knext;
    free(p);
    t->n--;
    t->st_ok = false;
    if (--k->n == 0) {
        pkey **hp = &t->kb[k->hash & (t->nkb - 1)];
        while (*hp != k) hp = &(*hp)->hnext;
        *hp = k->hnext;
        free(k);
        t->nkeys--;
    }
}

int presence_table_del(ptab *t, uint16_t node, const char *ref, pmeta *out)
{
    pres **pp = find_ref(t, node, ref);
    if (!*pp) return -1;
    remove_at(t, pp, out);
    return 0;
}

size_t presence_table_del_node(ptab *t, uint16_t node, void (*fn)(const pmeta *m, void *arg),
                               void *arg)
{
    size_t n = 0;
    for (uint32_t i = 0; i < t->nrb; i++)
        for (pres **pp = &t->rb[i]; *pp;) {
            if ((*pp)->node != node) {
                pp = &(*pp)->rnext;
                continue;
            }
            pmeta m;
            remove_at(t, pp, &m);
            if (fn) fn(&m, arg);
            n++;
        }
    return n;
}

void presence_table_foreach(const ptab *t, void (*fn)(const pmeta *m, void *arg), void *arg)
{
    for (uint32_t i = 0; i < t->nkb; i++)
        for (pkey *k = t->kb[i]; k; k = k->hnext)
            for (pres *p = k->first; p; p = p->knext) {
                pmeta m;
                memcpy(m.key, k->key, sizeof m.key);
                memcpy(m.ref, p->ref, sizeof m.ref);
                m.online_at = p->online_at;
                m.node = p->node;
                fn(&m, arg);
            }
}

const char *presence_table_state(ptab *t, size_t *len)
{
    if (!t->st_ok) {
        tbuf b = {t->st, 0, t->st_cap, false};
        tb_add(&b, "{", 1);
        bool first = true;
        for (uint32_t i = 0; i < t->nkb; i++)
            for (pkey *k = t->kb[i]; k; k = k->hnext) {
                if (!first) tb_add(&b, ",", 1);
                first = false;
                tb_str(&b, k->key);
                tb_lit(&b, ":{\"metas\":[");
                for (pres *p = k->first; p; p = p->knext) {
                    if (p != k->first) tb_add(&b, ",", 1);
                    tb_meta(&b, p->online_at, p->ref);
                }
                tb_lit(&b, "]}");
            }
        tb_add(&b, "}", 1);
        t->st = b.p;
        t->st_cap = b.cap;
        t->st_len = b.len;
        t->st_ok = !b.oom;
        if (b.oom) return NULL;
    }
    *len = t->st_len;
    return t->st;
}

/* ---- diffs ---- */

typedef struct ixent {
    const pmeta *m;
    size_t i;
} ixent;

static int ix_cmp(const void *a, const void *b)
{
    const ixent *x = a, *y = b;
    int c = strcmp(x->m->key, y->m->key);
    return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

/* Appends {key:{"metas":[..]},..} for v[0..n), metas grouped by key. */
static void tb_side(tbuf *b, const pmeta *v, size_t n)
{
    tb_add(b, "{", 1);
    ixent *ix = n > 1 ? malloc(n * sizeof *ix) : NULL;
    if (n > 1 && !ix) {
        b->oom = true;
        return;
    }
    for (size_t i = 0; ix && i < n; i++) ix[i] = (ixent){&v[i], i};
    if (ix) qsort(ix, n, sizeof *ix, ix_cmp);
    for (size_t i = 0; i < n; i++) {
        const pmeta *m = ix ? ix[i].m : &v[i];
        const pmeta *prev = i ? (ix ? ix[i - 1].m : &v[i - 1]) : NULL;
        bool same = prev && !strcmp(prev->key, m->key);
        if (same) {
            tb_add(b, ",", 1);
        } else {
            if (prev) tb_lit(b, "]},");
            tb_str(b, m->key);
            tb_lit(b, ":{\"metas\":[");
        }
        tb_meta(b, m->online_at, m->ref);
    }
    if (n) tb_lit(b, "]}");
    tb_add(b, "}", 1);
    free(ix);
}

char *presence_table_diff_encode(const pmeta *joins, size_t nj, const pmeta *leaves, size_t nl,
                        size_t *len)
{
    tbuf b = {0};
    tb_lit(&b, "{\"joins\":");
    tb_side(&b, joins, nj);
    tb_lit(&b, ",\"leaves\":");
    tb_side(&b, leaves, nl);
    tb_add(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
