/* json_depth.c — the JSON nesting pre-scan (see json_depth.h). */
#include "base/json_depth.h"

int json_depth_max(const char *s, size_t n, int limit)
{
    int depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) {
                max = depth;
                if (max > limit) return limit + 1;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

bool json_depth_ok(const char *s, size_t n, int limit)
{
    return json_depth_max(s, n, limit) <= limit;
}
