/* id.c — decimal ids (see id.h). */
#include "base/id.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int64_t id_parse(const char *s)
{
    if (!s || !*s || *s == '0') return 0;
    size_t n = strlen(s);
    if (n > 19) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    errno = 0;
    long long x = strtoll(s, NULL, 10);
    if (errno || x <= 0) return 0;
    return (int64_t)x;
}
