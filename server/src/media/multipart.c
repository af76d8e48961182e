/* multipart.c — streaming multipart/form-data parser (multipart.h).
 *
 * The delimiter "\r\n--boundary" is matched byte by byte across pieces;
 * since a boundary cannot contain CR, a failed partial match can only
 * restart at the current byte, so the bytes held back are always a prefix
 * of the delimiter and are emitted from it. The body is treated as if it
 * began with CRLF, so a first boundary at offset 0 matches too. */
#include "media/multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

enum { S_PRE, S_AFTER, S_DASH, S_CR, S_HEAD, S_BODY, S_DONE, S_ERR };

static bool bchar(int c)
{
    return isalnum(c) || strchr("'()+_,-./:=? ", c) != NULL;
}

int multipart_param(const char *v, const char *param, char *out, size_t cap)
{
    size_t pl = strlen(param);
    const char *s = strchr(v, ';');
    while (s) {
        s++;
        while (*s == ' ' || *s == '\t') s++;
        if (strncasecmp(s, param, pl) == 0) {
            const char *e = s + pl;
            while (*e == ' ' || *e == '\t') e++;
            if (*e == '=') {
                e++;
                while (*e == ' ' || *e == '\t') e++;
                size_t o = 0;
                if (*e == '"') {
                    e++;
                    while (*e && *e != '"') {
                        if (*e == '\\' && e[1]) e++;
                        if (o + 1 >= cap) return -1;
                        out[o++] = *e++;
                    }
                    if (*e != '"') return -1;
                } else {
                    while (*e && *e != ';' && *e != ' ' && *e != '\t') {
                        if (o + 1 >= cap) return -1;
                        out[o++] = *e++;
                    }
                }
                out[o] = 0;
                return 0;
            }
        }
        s = strchr(s, ';');
    }
    return -1;
}

int multipart_init(multipart *m, const char *ct, const multipart_cb *cb, void *arg)
{
    memset(m, 0, sizeof *m);
    if (!ct) return -1;
    while (*ct == ' ') ct++;
    if (strncasecmp(ct, "multipart/form-data", 19) != 0 || (ct[19] && ct[19] != ';' && ct[19] != ' '))
        return -1;
    char b[MULTIPART_BOUNDARY_MAX + 2];
    if (multipart_param(ct, "boundary", b, sizeof b) != 0) return -1;
    size_t bl = strlen(b);
    if (bl < 1 || bl > MULTIPART_BOUNDARY_MAX || b[bl - 1] == ' ') return -1;
    for (size_t i = 0; i < bl; i++)
        if (!bchar((unsigned char)b[i])) return -1;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, b, bl + 1);
    m->dlen = 4 + bl;
    m->match = 2; /* as if the body began with CRLF */
    m->state = S_PRE;
    m->cb = cb;
    m->arg = arg;
    return 0;
}

bool multipart_done(const multipart *m) { return m->state == S_DONE; }

/* The header section of a part is complete: report the part. */
static int head_done(multipart *m)
{
    m->head[m->hlen] = 0;
    char name[256] = "", filename[512] = "", ctype[256] = "";
    bool disp = false;
    char *line = m->head;
    while (*line) {
        char *eol = strstr(line, "\r\n");
        if (!eol) break;
        *eol = 0;
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = 0;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            if (!strcasecmp(line, "content-disposition")) {
                if (strncasecmp(v, "form-data", 9) != 0) return -1;
                disp = true;
                if (multipart_param(v, "name", name, sizeof name) != 0) name[0] = 0;
                if (multipart_param(v, "filename", filename, sizeof filename) != 0) filename[0] = 0;
            } else if (!strcasecmp(line, "content-type")) {
                size_t l = strlen(v);
                if (l >= sizeof ctype) return -1;
                memcpy(ctype, v, l + 1);
            }
        } else if (*line) {
            return -1; /* a header line without a colon */
        }
        line = eol + 2;
    }
    if (!disp) return -1;
    return m->cb && m->cb->part ? m->cb->part(m->arg, name, filename, ctype) : 0;
}

static int emit(multipart *m, const uint8_t *p, size_t n)
{
    if (!n || m->state != S_BODY || !m->cb || !m->cb->data) return 0;
    return m->cb->data(m->arg, p, n);
}

int multipart_feed(multipart *m, const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        switch (m->state) {
        case S_ERR: return -1;
        case S_DONE: return 0; /* the epilogue is ignored */
        case S_PRE:
        case S_BODY: {
            size_t run = i;
            while (i < len) {
                uint8_t c = p[i];
                if (m->match > 0 || c == (uint8_t)m->delim[0]) {
                    if (c == (uint8_t)m->delim[m->match]) {
                        if (m->match == 0 && emit(m, p + run, i - run)) goto fail;
                        m->match++;
                        i++;
                        if (m->match == m->dlen) {
                            if (m->state == S_BODY && m->cb && m->cb->part_end && m->cb->part_end(m->arg))
                                goto fail;
                            m->state = S_AFTER;
                            m->match = 0;
                            break;
                        }
                        run = i;
                        continue;
                    }
                    /* not the delimiter after all: the held prefix is data */
                    if (emit(m, (const uint8_t *)m->delim, m->match)) goto fail;
                    m->match = 0;
                    run = i;
                    continue; /* c again, as a possible start */
                }
                i++;
            }
            if ((m->state == S_BODY || m->state == S_PRE) && m->match == 0 && emit(m, p + run, i - run))
                goto fail;
            break;
        }
        case S_AFTER: {
            uint8_t c = p[i++];
            if (c == '-') m->state = S_DASH;
            else if (c == '\r') m->state = S_CR;
            else if (c != ' ' && c != '\t') goto fail;
            break;
        }
        case S_DASH:
            if (p[i++] != '-') goto fail;
            m->state = S_DONE;
            break;
        case S_CR:
            if (p[i++] != '\n') goto fail;
            m->state = S_HEAD;
            m->hlen = 0;
            break;
        case S_HEAD: {
            if (m->hlen >= MULTIPART_HEAD_MAX) goto fail;
            m->head[m->hlen++] = (char)p[i++];
            bool end = (m->hlen == 2 && !memcmp(m->head, "\r\n", 2)) ||
                       (m->hlen >= 4 && !memcmp(m->head + m->hlen - 4, "\r\n\r\n", 4));
            if (end) {
                if (m->hlen == 2) m->hlen = 0; /* no header fields */
                else m->hlen -= 2;             /* keep one CRLF per line */
                m->state = S_BODY;             /* before the callback: data may follow */
                m->match = 0;
                if (head_done(m)) goto fail;
            }
            break;
        }
        }
    }
    return m->state == S_ERR ? -1 : 0;
fail:
    m->state = S_ERR;
    return -1;
}
