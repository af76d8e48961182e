/* fuzz_search.c — libFuzzer target: the search query parser
 * (search_parse_query). Whatever it accepts must be tsquery text made only
 * of quoted words (no quote, backslash or ASCII punctuation inside a word)
 * joined by " & ", the last maybe ":*", within SEARCH_TSQUERY_MAX. The same
 * input as a page cursor (search_cursor_id): an id is only ever digits
 * inside it. */
#include <stdlib.h>
#include <string.h>
#include "fuzz_env.h"
#include "search/search.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char out[SEARCH_TSQUERY_MAX];
    const char *err = NULL;
    if (search_parse_query(s, out, &err) == 0) {
        size_t n = strlen(out);
        if (n == 0 || n >= SEARCH_TSQUERY_MAX || out[0] != '\'') abort();
        int quotes = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)out[i];
            if (c == '\'') quotes++;
            else if (quotes % 2 == 1 && c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) abort();
            else if (quotes % 2 == 0 && !strchr(" &:*", c)) abort();
        }
        if (quotes % 2 || quotes / 2 > SEARCH_WORDS_MAX) abort();
    } else if (!err) {
        abort();
    }
    const char *id = search_cursor_id(s);
    if (id && (id < s || id >= s + size || !*id || strspn(id, "0123456789") != strlen(id))) abort();
    free(s);
    return 0;
}
