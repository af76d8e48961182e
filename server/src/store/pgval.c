/* pgval.c — result columns as JSON (see pgval.h). */
#include "store/pgval.h"

#include <stdlib.h>
#include "base/util.h"

json_t *pgval_time(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) return json_null();
    char buf[40];
    util_format_rfc3339_ms(strtoll(PQgetvalue(res, row, col), NULL, 10), buf, sizeof buf);
    return json_string(buf);
}

json_t *pgval_str(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) return json_null();
    return json_string(PQgetvalue(res, row, col));
}
