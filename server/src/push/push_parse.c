/* push_parse.c — the pure parsers of push (push_parse.h). */
#include "push/push_parse.h"

#include <ctype.h>
#include <stdbool.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define KEY_FILE_MAX (64 * 1024)

/* Copies member `name` of o, a non-empty string shorter than cap, into dst.
 * Returns 0, or -1 with a message in err. */
static int get_str(json_t *o, const char *name, char *dst, size_t cap, bool required, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        if (!required) {
            dst[0] = '\0';
            return 0;
        }
        snprintf(err, errlen, "\"%s\" is missing", name);
        return -1;
    }
    const char *s = json_string_value(v);
    if (!s || !*s) {
        snprintf(err, errlen, "\"%s\" must be a non-empty string", name);
        return -1;
    }
    if (strlen(s) >= cap) {
        snprintf(err, errlen, "\"%s\" is longer than %zu bytes", name, cap - 1);
        return -1;
    }
    strcpy(dst, s);
    return 0;
}

int push_parse_key(const char *text, size_t len, push_parse_key_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len > KEY_FILE_MAX) {
        snprintf(err, errlen, "larger than %d bytes", KEY_FILE_MAX);
        return -1;
    }
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        snprintf(err, errlen, "not JSON (line %d: %s)", je.line, je.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object");
        goto done;
    }
    json_t *type = json_object_get(o, "type");
    if (type && (!json_is_string(type) || strcmp(json_string_value(type), "service_account") != 0)) {
        snprintf(err, errlen, "\"type\" is not \"service_account\"");
        goto done;
    }
    if (get_str(o, "project_id", out->project_id, sizeof out->project_id, true, err, errlen) ||
        get_str(o, "client_email", out->client_email, sizeof out->client_email, true, err, errlen) ||
        get_str(o, "private_key_id", out->private_key_id, sizeof out->private_key_id, false, err,
                errlen) ||
        get_str(o, "token_uri", out->token_uri, sizeof out->token_uri, true, err, errlen))
        goto done;
    for (const char *p = out->project_id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.' && *p != ':') {
            snprintf(err, errlen, "\"project_id\" has a character a URL path cannot carry as is");
            goto done;
        }
    if (strncmp(out->token_uri, "https://", 8) != 0 && strncmp(out->token_uri, "http://", 7) != 0) {
        snprintf(err, errlen, "\"token_uri\" is not an http(s) URL");
        goto done;
    }
    for (const char *p = out->token_uri; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
            snprintf(err, errlen, "\"token_uri\" has a space or control character");
            goto done;
        }
    const char *pem = json_string_value(json_object_get(o, "private_key"));
    if (!pem || !*pem) {
        snprintf(err, errlen, "\"private_key\" is missing or not a string");
        goto done;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
    if (!bio) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    BIO_free(bio);
    if (!k) {
        snprintf(err, errlen, "\"private_key\" is not a PEM private key");
        goto done;
    }
    if (EVP_PKEY_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_bits(k) < 2048) {
        EVP_PKEY_free(k);
        snprintf(err, errlen, "\"private_key\" is not an RSA key of at least 2048 bits (RS256)");
        goto done;
    }
    out->pkey = k;
    rc = 0;
done:
    json_decref(o);
    return rc;
}

void push_parse_key_free(push_parse_key_t *k)
{
    if (!k) return;
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
}

#define DAY_MS (86400 * 1000LL)

int64_t push_parse_retry_after(const char *v, size_t len, int64_t now_ms)
{
    while (len && (v[0] == ' ' || v[0] == '\t')) v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r' || v[len - 1] == '\n')) len--;
    if (!len || len > 64) return -1;
    if (isdigit((unsigned char)v[0])) {
        int64_t s = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)v[i])) return -1;
            if (s < DAY_MS) s = s * 10 + (v[i] - '0');
        }
        return s * 1000 > DAY_MS ? DAY_MS : s * 1000;
    }
    char buf[65];
    memcpy(buf, v, len);
    buf[len] = '\0';
    /* IMF-fixdate, the obsolete RFC 850 form, and asctime's */
    static const char *const fmts[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                       "%a %b %e %H:%M:%S %Y"};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(buf, fmts[i], &tm);
        if (!end || *end) continue;
        time_t t = timegm(&tm);
        if (t == (time_t)-1) return -1;
        int64_t d = (int64_t)t * 1000 - now_ms;
        return d < 0 ? 0 : d > DAY_MS ? DAY_MS : d;
    }
    return -1;
}

int push_parse_token_answer(const char *body, size_t len, char *tok, size_t cap,
                            int64_t *expires_in_s)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    int rc = -1;
    if (!json_is_object(o)) goto done;
    const char *t = json_string_value(json_object_get(o, "access_token"));
    json_t *e = json_object_get(o, "expires_in");
    if (!t || !*t || strlen(t) >= cap || !json_is_integer(e)) goto done;
    for (const char *p = t; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) goto done; /* goes in a header */
    json_int_t x = json_integer_value(e);
    if (x < 1 || x > 86400) goto done;
    strcpy(tok, t);
    *expires_in_s = x;
    rc = 0;
done:
    json_decref(o);
    return rc;
}

/* Copies s into code (cap bytes). */
static void set_code(char *code, size_t cap, const char *s)
{
    if (cap) snprintf(code, cap, "%s", s ? s : "");
}

/* True when an INVALID_ARGUMENT error is about the registration token: its
 * message names it, or a field violation is message.token. */
static bool names_token(json_t *err)
{
    const char *m = json_string_value(json_object_get(err, "message"));
    if (m && (strcasestr(m, "registration token") || strcasestr(m, "message.token"))) return true;
    size_t i, j;
    json_t *d, *fv;
    json_array_foreach(json_object_get(err, "details"), i, d) {
        json_array_foreach(json_object_get(d, "fieldViolations"), j, fv) {
            const char *f = json_string_value(json_object_get(fv, "field"));
            if (f && !strcmp(f, "message.token")) return true;
        }
    }
    return false;
}

push_parse_outcome push_parse_fcm_answer(long status, const char *body, size_t len, char *code,
                                         size_t cap)
{
    set_code(code, cap, "");
    json_t *o = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    push_parse_outcome r;
    if (status >= 200 && status < 300) {
        const char *name = json_string_value(json_object_get(o, "name"));
        r = json_is_object(o) && name && *name ? PUSH_OK : PUSH_MALFORMED;
        if (r == PUSH_MALFORMED) set_code(code, cap, "malformed_answer");
        json_decref(o);
        return r;
    }
    json_t *err = json_object_get(o, "error");
    const char *st = json_string_value(json_object_get(err, "status"));
    const char *ec = NULL;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(err, "details"), i, d) {
        const char *c = json_string_value(json_object_get(d, "errorCode"));
        if (c) {
            ec = c;
            break;
        }
    }
    set_code(code, cap, ec ? ec : st);
    if (status == 404 || (ec && !strcmp(ec, "UNREGISTERED")))
        r = PUSH_DEAD_TOKEN;
    else if (status == 400)
        r = ((ec && !strcmp(ec, "INVALID_ARGUMENT")) || (st && !strcmp(st, "INVALID_ARGUMENT"))) &&
                    names_token(err)
                ? PUSH_DEAD_TOKEN
                : PUSH_BAD_REQUEST;
    else if (status == 401)
        r = PUSH_AUTH;
    else if (status == 403)
        r = PUSH_FORBIDDEN;
    else if (status == 429 || (status >= 500 && status <= 599))
        r = PUSH_RETRY;
    else
        r = PUSH_OTHER;
    if (!code[0] && cap) snprintf(code, cap, "http_%ld", status);
    json_decref(o);
    return r;
}
