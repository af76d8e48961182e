/* pgval.h — columns of a libpq result as JSON values. */
#ifndef SB_PGVAL_H
#define SB_PGVAL_H

#include <jansson.h>
#include <libpq-fe.h>

/* The time column (row, col) of res, selected as epoch milliseconds (an
 * int8: `(extract(epoch from t) * 1000)::int8`), as an RFC 3339 JSON string
 * (util_format_rfc3339_ms), or JSON null when SQL NULL. */
json_t *pgval_time(const PGresult *res, int row, int col);
/* Column (row, col) as a JSON string, or null when SQL NULL. */
json_t *pgval_str(const PGresult *res, int row, int col);

#endif
