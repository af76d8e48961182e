/* sbload.h — shared types of the sbload load generator.
 *
 * Process layout: the parent process parses options, forks --procs worker
 * processes and aggregates what they report over one socketpair each
 * (ipc.h). Each worker runs one libuv loop holding a contiguous slice of the
 * global connection indices [lo, hi) (net.c), and the scenario's worker
 * hooks drive what those connections do once joined. The parent runs the
 * scenario's parent hooks: phase changes (connect -> run -> stop), server
 * RSS readings, cross-process aggregation (e.g. "last subscriber" latency
 * of a broadcast), and the final report. */
#ifndef SBL_SBLOAD_H
#define SBL_SBLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/types.h>
#include <uv.h>

#include "hist.h"
#include "phx.h"

#define SBL_MAX_PORTS 64
#define SBL_MAX_SOURCES 256
#define SBL_MAX_PIDS 64
#define SBL_FD_PER_PROC 19000 /* sockets a worker may hold (limit 20,000) */
#define SBL_SECS 4096         /* per-second join counts kept for the first SBL_SECS s */

/* ---- options ------------------------------------------------------------ */

typedef struct sbl_opts {
    const char *scenario;
    /* target */
    char host[256];
    char path[512];  /* path + query from --url, without the token/vsn */
    int ports[SBL_MAX_PORTS];
    int nports;
    struct sockaddr_in dst[SBL_MAX_PORTS];
    struct sockaddr_in src[SBL_MAX_SOURCES];
    int nsrc;
    const char *vsn;
    /* TLS (wss:// URL): trust anchors (PEM), no verification, TLS 1.3 suites,
     * key-exchange groups, resume the worker's last session (tickets) */
    bool tls;
    const char *tls_ca;
    bool tls_insecure;
    const char *tls_ciphersuites;
    const char *tls_groups;
    bool tls_resume;
    /* load shape */
    uint32_t conns;
    double rate;        /* connects per second over all workers, 0 = unpaced */
    int procs;
    uint32_t inflight;  /* max connects+handshakes+joins in progress per worker */
    double duration;    /* hard stop, seconds */
    double run;         /* measured phase length (hold / publish / send), seconds */
    double drain;       /* fanout: wait for in-flight deliveries, seconds */
    double connect_timeout;
    double heartbeat;   /* seconds */
    int retries;
    /* phoenix */
    const char *topic;        /* pattern with {id} */
    const char *event;
    const char *payload;      /* JSON */
    const char *join_payload; /* JSON */
    uint64_t id_offset;
    const char *user_pattern;
    const char *token_secret;
    const char *token;
    double token_ttl;
    const char *sid;
    /* fanout */
    uint32_t window;
    uint64_t count;     /* broadcasts (fanout) / sends per connection (sends), 0 = until --run */
    double pub_rate;    /* broadcasts per second, 0 = back to back */
    size_t pad;         /* extra payload bytes */
    /* sends */
    const char *conv_pattern;
    const char *conv_file;
    const char *body;
    double send_rate;   /* total sends per second, paced (open loop); 0 = closed loop */
    double warmup;      /* paced sends / calls: seconds run but not measured first */
    /* calls */
    double talk;        /* seconds a connected call is held before the hangup (0 = at once) */
    /* reporting */
    pid_t server_pids[SBL_MAX_PIDS];
    int nserver_pids;
    double progress;    /* seconds between progress lines, 0 = none */
    bool quiet;
    size_t max_frame;
    uint32_t wq_cap;    /* per-connection outbound bytes before it is dropped */
} sbl_opts;

extern sbl_opts g_opt;

/* ---- counters (summed over workers) ------------------------------------- */

#define SBL_COUNTERS(X)                                                                    \
    X(attempts) X(tcp_connected) X(upgraded) X(joined) X(join_errors) X(retries)           \
    X(failed) X(err_refused) X(err_timeout) X(err_emfile) X(err_addrnotavail)              \
    X(err_connect_other) X(err_http_status) X(err_handshake) X(err_ws_protocol)            \
    X(err_parse) X(err_write) X(err_overflow) X(closed_by_server) X(close_frames)          \
    X(close_1013) X(reset_by_server) X(hb_sent) X(hb_ok) X(hb_timeout) X(frames_in)        \
    X(bytes_in) X(frames_out) X(bytes_out) X(replies_ok) X(replies_error) X(pushes_in)     \
    X(phx_error) X(phx_close) X(published) X(pub_acked) X(pub_errors) X(deliveries)        \
    X(bad_deliveries) X(sends) X(acks) X(send_errors) X(msg_new) X(presence_diffs)         \
    X(presence_states) X(sends_late) X(sends_unanswered) X(acks_in_run)                     \
    X(calls_started) X(calls_connected) X(calls_done) X(calls_failed) X(call_errors)        \
    X(signals_sent) X(signals_recv) X(http_errors) X(err_tls) X(tls_full) X(tls_resumed)    \
    X(presence_in) X(calls_measured) X(live_sum) X(live_ticks)

enum {
#define X(n) CTR_##n,
    SBL_COUNTERS(X)
#undef X
        CTR__N
};
extern const char *const sbl_ctr_names[CTR__N];

/* Moments (CLOCK_MONOTONIC ns, shared by all processes; 0 = none). */
typedef struct sbl_times {
    uint64_t first_join, last_join;
    uint64_t first_pub, last_pub_ack;
    uint64_t first_delivery, last_delivery;
    uint64_t joined_now; /* gauge: connections currently joined */
    uint64_t worker_rss_kb;
} sbl_times;

/* Histograms every worker keeps (microseconds). */
enum {
    H_JOIN,  /* connect start -> join reply */
    H_LAT,   /* scenario latency: fanout per delivery, sends ack */
    H_ACK,   /* fanout: publish -> publisher's reply */
    H_LAG,   /* sends --send-rate: slot -> the send actually leaving */
    H_SIG,   /* calls: signal relay, sender's push -> the peer's receipt */
    /* calls: the setup's steps, each from the caller's POST leaving */
    H_C_POST,     /* the POST's answer */
    H_C_INCOMING, /* call:incoming at the callee */
    H_C_JOINED,   /* the caller's join reply of call:<id> */
    H_C_ACCEPTED, /* the callee's accept reply */
    H_C_OFFER,    /* the caller learns the accept (state connecting): offer sent */
    H_C_ANSWER,   /* the answer at the caller */
    H_C_ICE,      /* the caller's 10th ICE candidate in: connected pushed */
    H__N
};
extern const char *const sbl_hist_names[H__N];

/* ---- connections ---------------------------------------------------------- */

enum conn_state {
    CS_IDLE = 0,   /* not started / waiting for a retry */
    CS_CONNECTING, /* TCP connect in flight */
    CS_HANDSHAKE,  /* upgrade sent, waiting for 101 */
    CS_JOINING,    /* phx_join sent */
    CS_JOINED,
    CS_CLOSING,    /* uv_close called */
    CS_DONE,       /* closed for good (failed, dropped or stopped) */
};

enum {
    CF_JOINED_ONCE = 1, /* this connection has been joined: never retried */
    CF_INFLIGHT = 2,    /* counted in worker.inflight */
    CF_FRAG_BIN = 4,    /* the fragmented message being reassembled is binary */
};

typedef struct conn {
    uv_tcp_t tcp; /* first: a conn* is a uv_tcp_t* */
    uint32_t idx;  /* global connection index */
    uint8_t state;
    uint8_t attempts;
    uint8_t retry_after_close; /* on close: 1 = queue a retry */
    uint8_t flags;             /* CF_* */
    uint32_t next_ref;
    uint32_t join_ref;
    uint32_t hb_ref;       /* outstanding heartbeat ref, 0 = none */
    uint32_t last_hb_s;    /* worker clock seconds at the last heartbeat */
    uint32_t wq;           /* bytes queued in libuv writes */
    uint32_t req_ref;      /* scenario: ref of the outstanding request, 0 = none */
    uint32_t rlen, rcap;   /* partial input (handshake or frame cut by a read) */
    char *rbuf;
    char *frag;            /* fragmented message being reassembled */
    struct ctls *tls;      /* wss://: this connection's TLS state (net.c), NULL for ws:// */
    uint32_t fraglen;
    uint32_t nsent;        /* scenario: requests sent */
    uint64_t t_start;      /* ns: this attempt's connect start */
    uint64_t t_req;        /* ns: send time of the outstanding request */
} conn;

/* ---- worker --------------------------------------------------------------- */

enum { PH_CONNECT = 0, PH_READY, PH_RUN, PH_STOP };

typedef struct worker {
    uv_loop_t *loop;
    int id, nprocs;
    uint32_t lo, hi, n; /* global index range and its size */
    uint32_t total;     /* all connections, every worker */
    conn *conns;
    uint64_t ctr[CTR__N];
    sbl_times tm;
    hist h[H__N];
    char *rshared; /* the read buffer every connection of this worker shares */
    size_t rshared_cap;
    uint8_t *scratch; /* outbound frame encoding */
    size_t scratch_cap;
    /* pacing */
    uint32_t next_new;            /* next local index never started */
    uint32_t *retryq;             /* ring of local indices waiting for a retry */
    uint32_t rq_head, rq_len;
    uint32_t inflight;
    uint32_t dead;                /* settled without being joined */
    double tokens;
    uint64_t t_tokens;
    uint64_t backoff_until, backoff_ns;
    uint64_t t0;                  /* run start (parent's clock, ns) */
    uint64_t start_ns;            /* this worker's start */
    int phase;
    uint32_t joined_at_go;
    uv_timer_t pacer, tick;
    uv_poll_t ctl_poll;
    int ctl_fd;
    uint64_t rng;
    uint64_t last_status;
    uint32_t jps[SBL_SECS]; /* joins completed in each second since t0 */
    void *sdata; /* scenario state */
} worker;

extern worker *g_w;

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* net.c */
/* Builds the client TLS context from g_opt (wss:// only; in the parent,
 * before the workers fork). Returns 0, or -1 with a message on stderr. */
int net_tls_init(void);
int net_worker_init(worker *w);
void net_start(worker *w);            /* starts the connect pacer */
void net_pump(worker *w);             /* start connects as pacing allows */
void net_tick(worker *w, uint64_t now); /* timeouts, heartbeats */
void net_stop_all(worker *w);         /* close frames + close every socket */
/* Sends a Phoenix message on c (a new ref is taken when ref == 0 and
 * want_ref). Returns the ref used, or 0 on failure (c is then dropped). */
uint32_t conn_push(conn *c, const char *topic, const char *event, const char *payload,
                   size_t plen);
/* The topic of connection c (expanded pattern) into out. */
int conn_topic(const conn *c, char *out, size_t cap);
bool conn_is_joined(const conn *c);
/* Like conn_push on another topic of the same socket: join_ref is that
 * topic's join ref, or 0 for a phx_join (the new ref is then its own join
 * ref). Returns the ref used, or 0 on failure. */
uint32_t conn_push_topic(conn *c, uint32_t join_ref, const char *topic, const char *event,
                         const char *payload, size_t plen);

/* worker.c */
int worker_main(int id, int nprocs, int ctl_fd, uint64_t t0);
/* Sends one message to the parent (blocking, whole). */
int worker_send(worker *w, uint32_t type, const void *body, size_t len);
void worker_check_ready(worker *w);

/* ---- parent ---------------------------------------------------------------- */

typedef struct parent {
    int nprocs;
    struct pworker *pw;
    uint64_t t0;
    int phase;
    uint64_t t_ready, t_run_start, t_run_end_plan, t_stop;
    uint64_t ready_joined;
    sbl_times tm_ready; /* summed worker times when every worker was ready */
    uint64_t sum_ctr[CTR__N];
    sbl_times tm;
    hist h[H__N];
    /* server RSS (KiB), 0 = unknown */
    uint64_t rss_baseline, rss_ready, rss_end, rss_max;
    uint64_t rss_samples[4096];
    uint32_t nrss;
    double rss_sample_every;
    uint64_t t_last_rss;
    int timed_out;
    int interrupted;
    int stop_requested;
    uint64_t curve[2048][2];   /* (joined connections, server RSS KiB), every 0.25 s */
    uint32_t ncurve;
    uint64_t t_last_curve;
    double peak_join_rate;
    uint64_t jps[SBL_SECS];
    void *sdata;
} parent;

int parent_main(void);
void parent_request_stop(parent *p);
void parent_send_all(parent *p, char cmd);
uint64_t server_rss_kb(void);

/* ---- scenarios --------------------------------------------------------------- */

typedef struct scenario {
    const char *name;
    const char *targets;   /* e.g. "P1" */
    const char *summary;
    bool implemented;
    const char *why_not;   /* for stubs */
    const char *default_topic;
    const char *default_event;
    double default_run;
    /* Adjusts options after parsing; returns 0 or -1 with a message. */
    int (*check)(sbl_opts *o);
    /* worker side (all optional) */
    void (*w_init)(worker *w);
    void (*w_joined)(worker *w, conn *c);
    void (*w_go)(worker *w);
    void (*w_reply)(worker *w, conn *c, uint32_t ref, bool ok, span response);
    void (*w_push)(worker *w, conn *c, const phx_frame *f);
    void (*w_tick)(worker *w, uint64_t now);
    void (*w_stop)(worker *w);
    /* parent side */
    void (*p_init)(parent *p);
    void (*p_ready)(parent *p); /* every worker has settled its connects */
    void (*p_msg)(parent *p, int wid, uint32_t type, const void *body, size_t len);
    void (*p_tick)(parent *p, uint64_t now);
    void (*p_finish)(parent *p); /* after all workers reported FINAL */
    /* adds its fields to the RESULT object and prints its human lines */
    void (*p_result)(parent *p, void *json_obj);
} scenario;

extern const scenario *g_scen;
const scenario *scenario_find(const char *name);
void scenario_list(FILE *f);

/* Shared parent helpers for scenarios built on "connect, run for --run s, stop". */
void scen_common_ready(parent *p);
void scen_common_tick(parent *p, uint64_t now);

#endif
