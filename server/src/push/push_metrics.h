/* push_metrics.h — push's figures on /metrics (docs/operations.md). */
#ifndef SB_PUSH_METRICS_H
#define SB_PUSH_METRICS_H

/* Registers push's series with the metrics registry (read from push_stats at
 * scrape time; zeros while push is off). Call once before the reactors start. */
void push_metrics_register(void);

#endif
