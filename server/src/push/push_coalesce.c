/* push_coalesce.c — one release per key per interval (see
 * push_coalesce.h). Open windows are kept in a chained hash by key and in a
 * list ordered by their start: every window is as long as the others, so the
 * list's head is always the first to end and pushes are released in O(1). */
#include "push/push_coalesce.h"

#include <stdlib.h>
#include <string.h>

#define KEY_MAX 64

typedef struct win {
    struct win *hnext;       /* hash chain */
    struct win *prev, *next; /* by start, oldest first */
    uint64_t start;          /* when the window opened */
    void *item;              /* the held push, or NULL */
    char key[KEY_MAX];
} win;

struct push_coalesce {
    uint64_t interval;
    size_t max, n, held;
    size_t nb; /* buckets: a power of two */
    win **b;
    win *head, *tail;
};

/* FNV-1a of the key. */
static size_t hash(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++) h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return (size_t)(h ^ (h >> 32));
}

push_coalesce *push_coalesce_new(uint64_t interval_ms, size_t max_keys)
{
    push_coalesce *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->interval = interval_ms;
    c->max = max_keys ? max_keys : 1;
    c->nb = 64;
    c->b = calloc(c->nb, sizeof *c->b);
    if (!c->b) {
        free(c);
        return NULL;
    }
    return c;
}

void push_coalesce_free(push_coalesce *c, void (*drop)(void *item))
{
    if (!c) return;
    for (win *w = c->head, *nx; w; w = nx) {
        nx = w->next;
        if (w->item && drop) drop(w->item);
        free(w);
    }
    free(c->b);
    free(c);
}

static void list_unlink(push_coalesce *c, win *w)
{
    if (w->prev) w->prev->next = w->next;
    else c->head = w->next;
    if (w->next) w->next->prev = w->prev;
    else c->tail = w->prev;
    w->prev = w->next = NULL;
}

static void list_append(push_coalesce *c, win *w)
{
    w->prev = c->tail;
    w->next = NULL;
    if (c->tail) c->tail->next = w;
    else c->head = w;
    c->tail = w;
}

/* Doubles the buckets (best effort: on failure the chains just get longer). */
static void grow(push_coalesce *c)
{
    size_t nb = c->nb * 2;
    win **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < c->nb; i++)
        for (win *w = c->b[i], *nx; w; w = nx) {
            nx = w->hnext;
            size_t h = hash(w->key) & (nb - 1);
            w->hnext = b[h];
            b[h] = w;
        }
    free(c->b);
    c->b = b;
    c->nb = nb;
}

/* Removes w from the hash and the list and frees it. */
static void forget(push_coalesce *c, win *w)
{
    win **p = &c->b[hash(w->key) & (c->nb - 1)];
    while (*p && *p != w) p = &(*p)->hnext;
    if (*p) *p = w->hnext;
    list_unlink(c, w);
    c->n--;
    free(w);
}

/* The key as stored (cut to KEY_MAX - 1 bytes) and its bucket. */
static size_t norm_key(const push_coalesce *c, const char *key, char k[KEY_MAX])
{
    size_t kl = strlen(key);
    if (kl >= KEY_MAX) kl = KEY_MAX - 1;
    memcpy(k, key, kl);
    k[kl] = '\0';
    return hash(k) & (c->nb - 1);
}

static win *find(const push_coalesce *c, const char *k, size_t h)
{
    for (win *w = c->b[h]; w; w = w->hnext)
        if (strcmp(w->key, k) == 0) return w;
    return NULL;
}

int push_coalesce_offer(push_coalesce *c, const char *key, uint64_t now)
{
    if (!c || c->interval == 0) return 0;
    char k[KEY_MAX];
    size_t h = norm_key(c, key, k);
    win *w = find(c, k, h);
    if (w) {
        if (w->item || now < w->start + c->interval) return 1;
        /* ended with nothing held but not yet collected: a new window */
        w->start = now;
        list_unlink(c, w);
        list_append(c, w);
        return 0;
    }
    if (c->n >= c->max) return 0; /* untracked: bounded memory */
    w = calloc(1, sizeof *w);
    if (!w) return 0;
    memcpy(w->key, k, strlen(k) + 1);
    w->start = now;
    w->hnext = c->b[h];
    c->b[h] = w;
    list_append(c, w);
    if (++c->n > c->nb) grow(c);
    return 0;
}

void *push_coalesce_hold(push_coalesce *c, const char *key, void *item)
{
    if (!c || !item) return item;
    char k[KEY_MAX];
    size_t h = norm_key(c, key, k);
    win *w = find(c, k, h);
    if (!w) return item;
    void *old = w->item;
    w->item = item;
    if (!old) c->held++;
    return old;
}

void *push_coalesce_due(push_coalesce *c, uint64_t now)
{
    if (!c) return NULL;
    while (c->head && c->head->start + c->interval <= now) {
        win *w = c->head;
        if (!w->item) {
            forget(c, w);
            continue;
        }
        void *it = w->item;
        w->item = NULL;
        c->held--;
        w->start = now;
        list_unlink(c, w);
        list_append(c, w);
        return it;
    }
    return NULL;
}

uint64_t push_coalesce_next_ms(const push_coalesce *c)
{
    return c && c->head ? c->head->start + c->interval : UINT64_MAX;
}

size_t push_coalesce_keys(const push_coalesce *c) { return c ? c->n : 0; }

size_t push_coalesce_held(const push_coalesce *c) { return c ? c->held : 0; }
