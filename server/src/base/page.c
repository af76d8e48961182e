/* page.c — cursors and page bodies (see page.h). */
#include "base/page.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/token.h"
#include "base/b64url.h"

char *page_cursor_encode(const char *text)
{
    return b64url_encode(text, strlen(text));
}

char *page_cursor_decode(const char *opaque)
{
    size_t n = strlen(opaque);
    if (n == 0 || n > (PAGE_CURSOR_MAX * 4 + 2) / 3) return NULL;
    uint8_t buf[PAGE_CURSOR_MAX + 4];
    size_t outlen = sizeof buf - 1;
    if (b64url_decode(opaque, n, buf, &outlen) != 0 || outlen == 0 || outlen > PAGE_CURSOR_MAX)
        return NULL;
    for (size_t i = 0; i < outlen; i++)
        if (buf[i] < 0x20 || buf[i] > 0x7e) return NULL;
    char *s = malloc(outlen + 1);
    if (!s) return NULL;
    memcpy(s, buf, outlen);
    s[outlen] = 0;
    return s;
}

json_t *page_body(json_t *items, const char *next_cursor_text)
{
    json_t *o = json_object();
    json_object_set_new(o, "items", items ? items : json_array());
    char *c = next_cursor_text ? page_cursor_encode(next_cursor_text) : NULL;
    json_object_set_new(o, "next_cursor", c ? json_string(c) : json_null());
    free(c);
    return o;
}

char *page_body_text(const char *items_json, size_t items_len, const char *next_cursor_text, size_t *len)
{
    char *cur = next_cursor_text ? page_cursor_encode(next_cursor_text) : NULL;
    if (next_cursor_text && !cur) return NULL;
    size_t cap = items_len + (cur ? strlen(cur) : 0) + 40;
    char *s = malloc(cap);
    if (s)
        *len = (size_t)snprintf(s, cap, "{\"items\":%.*s,\"next_cursor\":%s%s%s}", (int)items_len,
                                items_json, cur ? "\"" : "", cur ? cur : "null", cur ? "\"" : "");
    free(cur);
    return s;
}
