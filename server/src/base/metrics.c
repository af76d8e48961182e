/* metrics.c — the metrics registry and its Prometheus text exposition
 * (metrics.h). */
#include "base/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { M_COUNTER, M_GAUGE, M_GAUGE_FN, M_HIST, M_COUNTER_FN };

typedef struct series {
    char *labels;            /* "" or k="v",... */
    metrics_id id;           /* first slot */
    int nb;                  /* histograms: finite bounds */
    int64_t *bounds;
    double scale;
    double (*fn)(void *);
    void *arg;
    struct series *next;
} series;

typedef struct family {
    char *name, *help;
    int type;
    series *first, *last;
    struct family *next;
} family;

typedef struct collector {
    metrics_collect_fn fn;
    void *arg;
    struct collector *next;
} collector;

_Thread_local _Atomic uint64_t *metrics_tls;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t *shards[METRICS_SHARDS];
static _Atomic int nshards;
static _Atomic uint64_t discard[METRICS_SLOTS]; /* shared sink past METRICS_SHARDS */
static _Atomic int dropped_threads;
static uint32_t next_slot = 1;
static family *families, *families_last;
static collector *collectors, *collectors_last;
static int64_t start_unix;

_Atomic uint64_t *metrics_shard_claim(void)
{
    pthread_mutex_lock(&mu);
    _Atomic uint64_t *s = NULL;
    int n = atomic_load(&nshards);
    if (n < METRICS_SHARDS) {
        void *p = NULL;
        /* page-aligned: no shard shares a cache line with another */
        if (posix_memalign(&p, 4096, sizeof(_Atomic uint64_t) * METRICS_SLOTS) == 0) {
            memset(p, 0, sizeof(_Atomic uint64_t) * METRICS_SLOTS);
            s = p;
            shards[n] = s;
            atomic_store(&nshards, n + 1);
        }
    }
    pthread_mutex_unlock(&mu);
    if (!s) {
        atomic_fetch_add(&dropped_threads, 1);
        s = discard;
    }
    metrics_tls = s;
    return s;
}

static family *family_get(const char *name, const char *help, int type)
{
    for (family *f = families; f; f = f->next)
        if (strcmp(f->name, name) == 0) return f;
    family *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (!f->name || !f->help) {
        free(f->name);
        free(f->help);
        free(f);
        return NULL;
    }
    if (families_last) families_last->next = f;
    else families = f;
    families_last = f;
    return f;
}

/* Under mu: the series (name, labels), made with `nslots` slots if new. */
static series *series_get(const char *name, const char *help, int type, const char *labels,
                          int nslots, bool *fresh)
{
    family *f = family_get(name, help, type);
    if (!f) return NULL;
    const char *l = labels ? labels : "";
    for (series *s = f->first; s; s = s->next)
        if (strcmp(s->labels, l) == 0) {
            *fresh = false;
            return s;
        }
    series *s = calloc(1, sizeof *s);
    if (!s || !(s->labels = strdup(l))) {
        free(s);
        return NULL;
    }
    if (nslots > 0) {
        if (next_slot + (uint32_t)nslots <= METRICS_SLOTS) {
            s->id = next_slot;
            next_slot += (uint32_t)nslots;
        } /* else id 0: counted on the scratch slot, shown as 0 */
    }
    if (f->last) f->last->next = s;
    else f->first = s;
    f->last = s;
    *fresh = true;
    return s;
}

metrics_id metrics_counter(const char *name, const char *help, const char *labels)
{
    pthread_mutex_lock(&mu);
    bool fresh;
    series *s = series_get(name, help, M_COUNTER, labels, 1, &fresh);
    metrics_id id = s ? s->id : 0;
    pthread_mutex_unlock(&mu);
    return id;
}

metrics_id metrics_gauge(const char *name, const char *help, const char *labels)
{
    pthread_mutex_lock(&mu);
    bool fresh;
    series *s = series_get(name, help, M_GAUGE, labels, 1, &fresh);
    metrics_id id = s ? s->id : 0;
    pthread_mutex_unlock(&mu);
    return id;
}

void metrics_gauge_fn(const char *name, const char *help, const char *labels,
                      double (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&mu);
    bool fresh;
    series *s = series_get(name, help, M_GAUGE_FN, labels, 0, &fresh);
    if (s) {
        s->fn = fn;
        s->arg = arg;
    }
    pthread_mutex_unlock(&mu);
}

void metrics_counter_fn(const char *name, const char *help, const char *labels,
                        double (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&mu);
    bool fresh;
    series *s = series_get(name, help, M_COUNTER_FN, labels, 0, &fresh);
    if (s) {
        s->fn = fn;
        s->arg = arg;
    }
    pthread_mutex_unlock(&mu);
}

void metrics_histogram(metrics_hist *h, const char *name, const char *help, const char *labels,
                       const int64_t *bounds, int nb, double scale)
{
    if (nb > METRICS_MAX_BUCKETS) nb = METRICS_MAX_BUCKETS;
    pthread_mutex_lock(&mu);
    bool fresh;
    series *s = series_get(name, help, M_HIST, labels, nb + 2, &fresh);
    if (s && fresh) {
        s->bounds = malloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
        if (s->bounds) memcpy(s->bounds, bounds, sizeof(int64_t) * (size_t)nb);
        s->nb = s->bounds ? nb : 0;
        s->scale = scale > 0 ? scale : 1;
    }
    h->base = s ? s->id : 0;
    h->nb = s ? s->nb : 0;
    h->bounds = s ? s->bounds : NULL;
    pthread_mutex_unlock(&mu);
}

void metrics_collector_add(metrics_collect_fn fn, void *arg)
{
    collector *c = calloc(1, sizeof *c);
    if (!c) return;
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&mu);
    if (collectors_last) collectors_last->next = c;
    else collectors = c;
    collectors_last = c;
    pthread_mutex_unlock(&mu);
}

uint64_t metrics_sum(metrics_id id)
{
    if (id == 0 || id >= METRICS_SLOTS) return 0;
    uint64_t v = 0;
    int n = atomic_load(&nshards);
    for (int i = 0; i < n; i++) v += atomic_load_explicit(&shards[i][id], memory_order_relaxed);
    return v;
}

void metrics_hist_read(const metrics_hist *h, uint64_t *counts, uint64_t *sum)
{
    for (int i = 0; i <= h->nb; i++) counts[i] = h->base ? metrics_sum(h->base + (metrics_id)i) : 0;
    *sum = h->base ? metrics_sum(h->base + (metrics_id)h->nb + 1) : 0;
}

static family *family_find(const char *name)
{
    for (family *f = families; f; f = f->next)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

double metrics_value(const char *name)
{
    pthread_mutex_lock(&mu);
    family *f = family_find(name);
    double v = 0;
    for (series *s = f ? f->first : NULL; s; s = s->next) {
        if (f->type == M_COUNTER) v += (double)metrics_sum(s->id);
        else if (f->type == M_GAUGE) v += (double)(int64_t)metrics_sum(s->id);
        else if (f->type == M_GAUGE_FN || f->type == M_COUNTER_FN) v += s->fn(s->arg);
    }
    pthread_mutex_unlock(&mu);
    return v;
}

int metrics_hist_value(const char *name, double *bounds, uint64_t *counts, int max)
{
    pthread_mutex_lock(&mu);
    family *f = family_find(name);
    series *s = f && f->type == M_HIST ? f->first : NULL;
    int nb = -1;
    if (s) {
        nb = s->nb < max ? s->nb : max;
        for (int i = 0; i < nb; i++) bounds[i] = (double)s->bounds[i] / s->scale;
        for (int i = 0; i <= nb; i++) counts[i] = s->id ? metrics_sum(s->id + (metrics_id)i) : 0;
        if (nb < s->nb) /* the rest folds into the last bucket */
            for (int i = nb + 1; i <= s->nb; i++) counts[nb] += s->id ? metrics_sum(s->id + (metrics_id)i) : 0;
    }
    pthread_mutex_unlock(&mu);
    return nb;
}

/* A float in the exposition's syntax (Go's ParseFloat accepts %.17g). */
static void fmt_num(char *out, size_t n, double v)
{
    if (v == (double)(int64_t)v && v < 9e15 && v > -9e15) {
        snprintf(out, n, "%lld", (long long)v);
        return;
    }
    for (int prec = 6; prec <= 17; prec++) { /* the shortest text that reads back the same */
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static const char *type_name(int t)
{
    return t == M_COUNTER || t == M_COUNTER_FN ? "counter" : t == M_HIST ? "histogram" : "gauge";
}

static void sample(strbuf *out, const char *name, const char *suffix, const char *labels,
                   const char *extra, double v)
{
    char num[40];
    fmt_num(num, sizeof num, v);
    bool l = labels && *labels, e = extra && *extra;
    strbuf_addf(out, "%s%s%s%s%s%s%s %s\n", name, suffix, l || e ? "{" : "", l ? labels : "",
                l && e ? "," : "", e ? extra : "", l || e ? "}" : "", num);
}

int metrics_text(strbuf *out)
{
    pthread_mutex_lock(&mu);
    for (family *f = families; f; f = f->next) {
        strbuf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, type_name(f->type));
        for (series *s = f->first; s; s = s->next) {
            if (f->type == M_COUNTER) sample(out, f->name, "", s->labels, NULL, (double)metrics_sum(s->id));
            else if (f->type == M_GAUGE)
                sample(out, f->name, "", s->labels, NULL, (double)(int64_t)metrics_sum(s->id));
            else if (f->type == M_GAUGE_FN || f->type == M_COUNTER_FN) sample(out, f->name, "", s->labels, NULL, s->fn(s->arg));
            else {
                uint64_t cum = 0;
                char le[64], num[40];
                for (int i = 0; i <= s->nb; i++) {
                    cum += s->id ? metrics_sum(s->id + (metrics_id)i) : 0;
                    if (i < s->nb) {
                        fmt_num(num, sizeof num, (double)s->bounds[i] / s->scale);
                        snprintf(le, sizeof le, "le=\"%s\"", num);
                    } else {
                        snprintf(le, sizeof le, "le=\"+Inf\"");
                    }
                    sample(out, f->name, "_bucket", s->labels, le, (double)cum);
                }
                double sum = s->id ? (double)metrics_sum(s->id + (metrics_id)s->nb + 1) / s->scale : 0;
                sample(out, f->name, "_sum", s->labels, NULL, sum);
                sample(out, f->name, "_count", s->labels, NULL, (double)cum);
            }
        }
    }
    collector *c = collectors;
    pthread_mutex_unlock(&mu);
    for (; c; c = c->next) c->fn(out, c->arg);
    return out->p || out->len == 0 ? 0 : -1;
}

/* ---- process figures (Linux /proc) ---- */

static double proc_rss(void *arg)
{
    (void)arg;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static double proc_fds(void *arg)
{
    (void)arg;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static double proc_max_fds(void *arg)
{
    (void)arg;
    return (double)sysconf(_SC_OPEN_MAX);
}

static double proc_start(void *arg)
{
    (void)arg;
    return (double)start_unix;
}

static double threads_dropped(void *arg)
{
    (void)arg;
    return (double)atomic_load(&dropped_threads);
}

void metrics_register_process(void)
{
    start_unix = (int64_t)time(NULL);
    metrics_gauge_fn("process_resident_memory_bytes", "Resident memory size in bytes.", NULL, proc_rss, NULL);
    metrics_gauge_fn("process_open_fds", "Number of open file descriptors.", NULL, proc_fds, NULL);
    metrics_gauge_fn("process_max_fds", "Maximum number of open file descriptors.", NULL, proc_max_fds, NULL);
    metrics_gauge_fn("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                     NULL, proc_start, NULL);
    metrics_gauge_fn("sb_metrics_unsharded_threads", "Threads past the shard limit whose counts are dropped.",
                     NULL, threads_dropped, NULL);
}
