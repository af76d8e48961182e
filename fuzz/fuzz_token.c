/* fuzz_token.c — libFuzzer target: the access-token verifier, base64url and
 * the bearer-header and cursor readers.
 * Input: byte 0 selects what the rest is:
 *   0: a token as received (token_verify; a MAC mismatch stops it early);
 *   1: claims JSON that the harness signs with the secret, so the claims
 *      parser behind the MAC check is reached (token_verify must then never
 *      accept ids outside [A-Za-z0-9_.:-]{1,64});
 *   2: an Authorization header value (rest_auth_check);
 *   3: an opaque pagination cursor (page_cursor_decode);
 *   4: a sync cursor (cursor_decode for user u1, cursor_peek; whatever
 *      decodes must re-encode to the same text), and cursor_parse_u64;
 *   5: 20 bytes of position (tx, id, issued_at) for the cursor round trip;
 *   6: an Authorization header value for the admin listener
 *      (admin_auth_check: accepted only when it carries exactly the token);
 *   other: base64url text (b64url_decode, then the encoding round trip). */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include "sync/cursor.h"
#include "fuzz_env.h"
#include "http/http.h"
#include "http/rest.h"
#include "base/token.h"
#include "base/page.h"
#include "base/b64url.h"
#include "admin/admin_auth.h"
#include <strings.h>

static const uint8_t *S = (const uint8_t *)FZ_SECRET;
#define SLEN (sizeof FZ_SECRET - 1)

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TOKEN_MAX_ID) return false;
    for (; *s; s++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-", *s))
            return false;
    return true;
}

static void verify(const char *tok, size_t len)
{
    token_claims c;
    memset(&c, 0x55, sizeof c);
    int rc = token_verify(S, SLEN, tok, len, 1700000000, &c);
    if (rc != TOKEN_OK && rc != TOKEN_BAD && rc != TOKEN_EXPIRED) abort();
    if (rc == TOKEN_OK && (!id_ok(c.user_id) || !id_ok(c.session_id) || c.exp <= 1700000000))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fz_init();
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char *z = malloc(n + 1); /* NUL-terminated copy */
    if (!z) abort();
    memcpy(z, p, n);
    z[n] = 0;
    switch (data[0]) {
    case 0:
        verify(p, n);
        break;
    case 1: {
        char *body = b64url_encode(p, n);
        unsigned char mac[32];
        unsigned int ml = 0;
        if (body && HMAC(EVP_sha256(), S, (int)SLEN, (unsigned char *)body, strlen(body), mac, &ml)) {
            char *sig = b64url_encode(mac, ml);
            size_t bl = strlen(body), sl = sig ? strlen(sig) : 0;
            char *tok = sig ? malloc(bl + 1 + sl + 1) : NULL;
            if (tok) {
                memcpy(tok, body, bl);
                tok[bl] = '.';
                memcpy(tok + bl + 1, sig, sl + 1);
                verify(tok, bl + 1 + sl);
            }
            free(tok);
            free(sig);
        }
        free(body);
        break;
    }
    case 2: {
        sb_req req = {0};
        sb_header h = {"authorization", z};
        req.headers = &h;
        req.nheaders = strlen(z) == n ? 1 : 0;
        req.query = "";
        (void)rest_auth_check(&req);
        break;
    }
    case 6: {
        static const char admin_token[] = "fuzz-admin-token";
        int rc = admin_auth_check(z, admin_token);
        if (rc == ADMIN_AUTH_OK) {
            /* "Bearer" (any case), blanks, the exact token, blanks */
            const char *t = strstr(z, admin_token);
            if (!t || strncasecmp(z + strspn(z, " \t"), "bearer", 6) != 0) abort();
            const char *e = t + strlen(admin_token);
            if (e[strspn(e, " \t")] != 0) abort();
        }
        if (admin_auth_check(z, "") != ADMIN_AUTH_DISABLED) abort();
        break;
    }
    case 3: {
        char *c = page_cursor_decode(z);
        if (c) {
            size_t cl = strlen(c);
            if (cl == 0 || cl > PAGE_CURSOR_MAX) abort();
            char *again = page_cursor_encode(c);
            if (!again || strcmp(again, z) != 0) abort(); /* one encoding per cursor */
            free(again);
        }
        free(c);
        break;
    }
    case 4: {
        sync_pos pos, peek;
        int64_t issued = 0;
        if (cursor_decode(S, SLEN, "u1", p, n, &pos, &issued) == CURSOR_OK) {
            char again[CURSOR_LEN + 1];
            cursor_encode(S, SLEN, "u1", pos, issued, again);
            if (strlen(again) != n || memcmp(again, p, n) != 0) abort();
            if (cursor_peek(p, n, &peek) != 0 || sync_pos_cmp(pos, peek) != 0) abort();
        }
        (void)cursor_peek(p, n, &peek);
        uint64_t u;
        if (cursor_parse_u64(z, &u) == 0 && strlen(z) == 0) abort();
        break;
    }
    case 5: {
        if (n < 20) break;
        uint64_t tx = 0, id = 0;
        uint32_t at = 0;
        memcpy(&tx, p, 8);
        memcpy(&id, p + 8, 8);
        memcpy(&at, p + 16, 4);
        sync_pos pos = {tx, (int64_t)(id & INT64_MAX)}, back;
        int64_t issued = -1;
        char text[CURSOR_LEN + 1];
        cursor_encode(S, SLEN, "u1", pos, at, text);
        if (strlen(text) != CURSOR_LEN) abort();
        if (cursor_decode(S, SLEN, "u1", text, CURSOR_LEN, &back, &issued) != CURSOR_OK) abort();
        if (sync_pos_cmp(pos, back) != 0 || issued != (int64_t)at) abort();
        if (cursor_decode(S, SLEN, "u2", text, CURSOR_LEN, &back, NULL) == CURSOR_OK) abort();
        break;
    }
    default: {
        uint8_t out[4096];
        size_t ol = sizeof out;
        if (b64url_decode(p, n, out, &ol) == 0) {
            if (ol > sizeof out) abort();
            char *e = b64url_encode(out, ol);
            if (!e || strlen(e) != n || memcmp(e, p, n) != 0) abort(); /* canonical */
            free(e);
        }
        break;
    }
    }
    free(z);
    return 0;
}
