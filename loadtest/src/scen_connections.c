/* scen_connections.c — P1 (memory per idle joined connection) and P2
 * (connect + join rate).
 *
 * Opens --conns sockets (paced by --rate, 0 = as fast as accepted with at
 * most --inflight handshakes per worker), each joins its topic, then all are
 * held idle for --run (--hold) seconds, heartbeating every --heartbeat
 * seconds like phoenix.js. With --server-pid, the server's VmRSS is read
 * before any connection (baseline), when all are joined, and at the end of
 * the hold; bytes per connection = (end - baseline) / joined. */
#include <jansson.h>

#include "report.h"
#include "sbload.h"

static void p_result(parent *p, void *obj)
{
    json_t *res = obj;
    const sbl_times *tr = &p->tm_ready;
    double t_all = tr->last_join ? (double)(tr->last_join - p->t0) / 1e9 : 0;
    double jps = t_all > 0 ? (double)p->ready_joined / t_all : 0;
    double hold = p->t_stop > p->t_run_start ? (double)(p->t_stop - p->t_run_start) / 1e9 : 0;
    json_object_set_new(res, "hold_s", json_real(hold));
    json_t *t = json_object();
    json_object_set_new(t, "P2_joins_per_s", target_json(jps, 50000, 1));
    printf("  held %llu joined connections for %.1f s: heartbeats sent %llu, answered %llu, "
           "unanswered %llu, dropped by server %llu\n",
           (unsigned long long)p->tm.joined_now, hold,
           (unsigned long long)p->sum_ctr[CTR_hb_sent], (unsigned long long)p->sum_ctr[CTR_hb_ok],
           (unsigned long long)p->sum_ctr[CTR_hb_timeout],
           (unsigned long long)p->sum_ctr[CTR_closed_by_server]);
    if (p->rss_baseline && p->rss_end && p->ready_joined) {
        double per = ((double)p->rss_end - (double)p->rss_baseline) * 1024.0 /
                     (double)p->ready_joined;
        double per_ready = ((double)p->rss_ready - (double)p->rss_baseline) * 1024.0 /
                           (double)p->ready_joined;
        json_object_set_new(res, "server_bytes_per_conn", json_real(per));
        json_object_set_new(res, "server_bytes_per_conn_at_join", json_real(per_ready));
        json_object_set_new(t, "P1_bytes_per_conn", target_json(per, 1024, 0));
        printf("  server memory: %.0f bytes per joined connection above baseline "
               "(%.0f right after the joins)\n",
               per, per_ready);
    }
    json_object_set_new(res, "target_checks", t);
}

const scenario scen_connections = {
    .name = "connections",
    .targets = "P1,P2",
    .summary = "open --conns sockets, join, hold idle with heartbeats; joins/s, RSS/conn",
    .implemented = true,
    .default_topic = "user:{id}",
    .default_event = "ping",
    .default_run = 10,
    .p_result = p_result,
};
