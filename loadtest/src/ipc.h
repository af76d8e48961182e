/* ipc.h — messages between the parent and its workers.
 *
 * One SOCK_STREAM socketpair per worker. Worker -> parent: a header
 * {type, len} then len bytes. Parent -> worker: single command bytes. */
#ifndef SBL_IPC_H
#define SBL_IPC_H

#include <stdint.h>

#include "sbload.h"

typedef struct ipc_hdr {
    uint32_t type;
    uint32_t len;
} ipc_hdr;

enum {
    M_STATUS = 1, /* ipc_status: periodic counters */
    M_READY,      /* ipc_status: every local connect settled (joined or given up) */
    M_DONE,       /* ipc_done: the worker's scenario part is finished */
    M_TRACK,      /* array of ipc_track */
    M_FINAL,      /* ipc_final: last report, the worker exits after it */
    M_LOG,        /* text line to show */
};

typedef struct ipc_status {
    uint64_t ctr[CTR__N];
    sbl_times tm;
} ipc_status;

typedef struct ipc_done {
    uint64_t published; /* fanout: broadcasts the publisher sent */
    uint64_t acked;
} ipc_done;

/* Aggregation record for "the last of N receivers" latencies: a worker's
 * partial view of one key (broadcast seq, presence join...). */
typedef struct ipc_track {
    uint64_t key;
    uint64_t origin_ns;   /* send time, 0 = unknown to this worker */
    uint64_t max_recv_ns; /* latest local receive, 0 = none */
    uint64_t count;       /* local receivers */
} ipc_track;

typedef struct ipc_final {
    ipc_status st;
    hist h[H__N];
    uint32_t jps[SBL_SECS];
} ipc_final;

/* Parent -> worker commands. */
enum { CMD_GO = 'G', CMD_STOP = 'S' };

#endif
