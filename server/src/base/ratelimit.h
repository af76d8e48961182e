/* ratelimit.h — in-process token buckets (targets S6).
 *
 * A limit "N/S" lets N events through at once and refills at N per S seconds
 * (so N per S sustained). Buckets live in a bounded, mutex-protected table
 * keyed by string: when it is full the least recently used bucket is
 * forgotten, so memory stays bounded whatever keys an attacker sends. Keys
 * are hashed with SipHash under a random key (no hash flooding).
 *
 * The accounts limits (login per IP, login per account, sign-up per IP) are
 * named kinds in one shared table; other modules may make tables of their
 * own with ratelimit_table_new. */
#ifndef SB_RATELIMIT_H
#define SB_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ratelimit_limit {
    double burst;    /* bucket size; <= 0 means unlimited */
    double period_s; /* seconds to refill a whole bucket */
} ratelimit_limit;

typedef struct ratelimit_bucket {
    double tokens;
    int64_t last_ms; /* when tokens was last brought up to date; 0 = new */
} ratelimit_bucket;

/* Brings b up to now_ms (never above burst; a new bucket starts full) and
 * takes `cost` tokens if that many are there. Returns 0 when taken, else the
 * milliseconds until they will be (>= 1; nothing is taken then). A limit
 * whose burst is <= 0 always returns 0. Pure: no locking. */
int64_t ratelimit_bucket_take(ratelimit_bucket *b, const ratelimit_limit *lim, int64_t now_ms, double cost);

/* Parses "N/S" (N events per S seconds, both > 0; decimals allowed) or "0"
 * / "off" (unlimited) into *out. Returns 0, or -1 if malformed. */
int ratelimit_limit_parse(const char *spec, ratelimit_limit *out);

typedef struct ratelimit_table ratelimit_table;

/* A table of at most max_entries buckets (>= 1). Returns NULL when out of
 * memory. */
ratelimit_table *ratelimit_table_new(size_t max_entries);
void ratelimit_table_free(ratelimit_table *t);
/* ratelimit_bucket_take on the bucket of `key` (NUL-terminated; only its first 128
 * bytes count), creating it if needed. Thread-safe. Returns 0 when allowed,
 * else the milliseconds to wait. When out of memory it allows. */
int64_t ratelimit_table_take(ratelimit_table *t, const char *key, const ratelimit_limit *lim, int64_t now_ms,
                      double cost);
/* Names the table's refusals in sb_rate_limited_total{kind} (a table not
 * named counts as kind "other"). Call once, at start. */
void ratelimit_table_set_kind(ratelimit_table *t, const char *kind);
/* Buckets currently held. Thread-safe. */
size_t ratelimit_table_size(ratelimit_table *t);

/* ---- the named limits of the accounts endpoints ---- */
enum { RL_LOGIN_IP = 0, RL_LOGIN_ACCOUNT, RL_SIGNUP_IP, RL_CONNECT_IP, RL_NKINDS };

#define RL_DEFAULT_LOGIN_IP "30/60"       /* 30 attempts, then one per 2 s */
#define RL_DEFAULT_LOGIN_ACCOUNT "10/300" /* 10 attempts, then one per 30 s */
#define RL_DEFAULT_SIGNUP_IP "10/3600"    /* 10 sign-ups, then one per 6 min */
#define RL_DEFAULT_CONNECT_IP "1000/10"   /* 1,000 socket connects, then 100/s */
#define RL_TABLE_MAX 65536                /* buckets kept for the named limits */

/* Sets the limit of one kind (thread-safe; normally once at start). */
void ratelimit_set(int kind, ratelimit_limit lim);
/* Sets each kind from its spec string ("N/S"; NULL or "" keeps the current
 * value). Returns 0, or -1 (with nothing changed) if one is malformed. */
int ratelimit_configure(const char *login_ip, const char *login_account, const char *signup_ip,
                        const char *connect_ip);
/* The rate-limit key of a client address (text) into out: IPv4 as is, IPv6
 * per /64 (one subscriber usually holds a whole /64). */
void ratelimit_ip_key(const char *ip, char *out, size_t outlen);
/* Counts one event of `kind` for `key` at the current wall time. Returns 0
 * when allowed, else the whole seconds the client should wait (>= 1), which
 * is what Retry-After carries. Thread-safe. */
int ratelimit_hit(int kind, const char *key);

#endif
