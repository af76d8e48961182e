/* scenarios.c — the scenario table, the shared "run for --run seconds"
 * parent logic, and the scenarios not written yet. */
#include <string.h>

#include "ipc.h"
#include "sbload.h"

extern const scenario scen_connections, scen_fanout, scen_soak, scen_sends, scen_presence, scen_calls;

static const scenario scen_cluster = {
    .name = "cluster",
    .targets = "P5",
    .summary = "senders on one node, recipients on the others (needs message:send + Redis bus)",
    .implemented = false,
    .why_not = "not a scenario of its own: P5 is `fanout` with --ports A,B,C over three nodes "
               "bridged by Redis (publisher on A, subscribers on every node), as scripts/bench.sh "
               "runs it; for durable sends across nodes run `sends` against the sender node's "
               "port and `connections` for the recipients against the others.",
    .default_topic = "user:{id}",
    .default_event = "message:send",
};

static const scenario scen_sync = {
    .name = "sync",
    .targets = "P6",
    .summary = "GET /api/v1/sync throughput (HTTP, not the socket)",
    .implemented = false,
    .why_not = "P6 is plain HTTP: scripts/bench.sh provisions a user with pending events "
               "(scripts/bench_provision.py sync) and measures GET /api/v1/sync with wrk "
               "against wrk on /healthz.",
    .default_topic = "user:{id}",
    .default_event = "ping",
};

static const scenario *const all[] = {&scen_connections, &scen_fanout, &scen_sends,
                                      &scen_presence,    &scen_soak,   &scen_cluster,
                                      &scen_sync,        &scen_calls};

const scenario *scenario_find(const char *name)
{
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0) return all[i];
    return NULL;
}

void scenario_list(FILE *f)
{
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        fprintf(f, "  %-12s %-6s %s%s\n", all[i]->name, all[i]->targets, all[i]->summary,
                all[i]->implemented ? "" : " [not implemented]");
}

void scen_common_ready(parent *p)
{
    p->t_run_start = now_ns();
    p->t_run_end_plan = p->t_run_start + (uint64_t)(g_opt.run * 1e9);
    parent_send_all(p, CMD_GO);
}

void scen_common_tick(parent *p, uint64_t now)
{
    if (now >= p->t_run_end_plan) parent_request_stop(p);
}
