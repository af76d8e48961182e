/* report.h — turning counters and histograms into the human summary and
 * the RESULT JSON. */
#ifndef SBL_REPORT_H
#define SBL_REPORT_H

#include <jansson.h>

#include "sbload.h"

/* Merges worker moments: earliest firsts, latest lasts, summed gauges. */
void times_merge(sbl_times *dst, const sbl_times *src);
uint64_t report_errors_total(const uint64_t *ctr);
/* {"count","mean_ms","p50_ms","p99_ms","p999_ms","max_ms"} of a histogram in µs. */
json_t *hist_json(const hist *h);
/* One human line "label: n=... p50 ... p99 ... p999 ... max ... ms". */
void hist_print(const char *label, const hist *h);
/* Fields and human lines every scenario shares (connect phase, errors,
 * counters, server RSS). */
void report_common(parent *p, json_t *res, uint64_t t_end);
/* {"value":v,"limit":l,"pass":bool} (pass when v >= l, or v <= l if !at_least). */
json_t *target_json(double v, double limit, int at_least);

#endif
