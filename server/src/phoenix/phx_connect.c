/* phx_connect.c — Phoenix's socket connect (see phx_connect.h). */
#include "phoenix/phx_connect.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "base/b64url.h"
#include "base/cidr.h"
#include "base/config.h"
#include "base/log.h"
#include "base/ratelimit.h"
#include "net/conn.h"
#include "phoenix/phx_origin.h"

#define TOKEN_MAX_TEXT 2048 /* a longer token is refused (ours are far shorter) */

static phx_connect_fn g_connect;

void phx_connect_set_handler(phx_connect_fn fn) { g_connect = fn; }

int phx_connect_rate_limited(const sb_req *req)
{
    char key[64];
    ratelimit_ip_key(req->client_ip, key, sizeof key);
    return ratelimit_hit(RL_CONNECT_IP, key);
}

/* Whether the request's TCP peer is one of SB_TRUSTED_PROXIES. */
static bool peer_trusted(const sb_req *req)
{
    if (g_config.trusted_nets.n == 0 || !req->conn) return false;
    char ip[64];
    cidr_addr a;
    conn_peer_ip(req->conn, ip, sizeof ip);
    return ip[0] && cidr_addr_parse(ip, strlen(ip), &a) == 0 && cidr_list_match(&g_config.trusted_nets, &a);
}

bool phx_connect_origin_ok(const sb_req *req)
{
    const char *origin = http_req_header(req, "origin");
    if (!origin) return true;
    const char *host = http_req_header(req, "host");
    char fwd[256];
    const char *xfh = peer_trusted(req) ? http_req_header(req, "x-forwarded-host") : NULL;
    if (xfh) { /* the first (client-facing) entry of a list */
        size_t n = strcspn(xfh, ",");
        while (n && (xfh[n - 1] == ' ' || xfh[n - 1] == '\t')) n--;
        while (n && (*xfh == ' ' || *xfh == '\t')) xfh++, n--;
        if (n < sizeof fwd) {
            memcpy(fwd, xfh, n);
            fwd[n] = 0;
            host = fwd;
        }
    }
    if (phx_origin_allowed(origin, host, g_config.allowed_origins)) return true;
    log_msg(LOG_INFO, "socket_origin_refused", "origin", json_string(origin), "host",
            json_string(host ? host : ""), "ip", json_string(req->client_ip), NULL);
    return false;
}

/* Finds "base64url.bearer.phx.<token>" among the offered subprotocols and
 * decodes the token into out (NUL-terminated). Returns true if found. */
static bool subprotocol_token(const char *hdr, char *out, size_t outlen)
{
    static const char pfx[] = "base64url.bearer.phx.";
    const char *p = hdr;
    while (p && *p) {
        while (*p == ' ' || *p == ',') p++;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && p[n - 1] == ' ') n--;
        if (n > sizeof pfx - 1 && strncmp(p, pfx, sizeof pfx - 1) == 0) {
            size_t olen = outlen - 1;
            if (b64url_decode(p + sizeof pfx - 1, n - (sizeof pfx - 1), (uint8_t *)out, &olen) != 0)
                return false;
            out[olen] = 0;
            return true;
        }
        p = end;
    }
    return false;
}

static int parse_vsn(const sb_req *req, phx_vsn *out)
{
    char *v = http_req_query(req, "vsn", false);
    int rc = 0;
    if (!v || strcmp(v, "1.0.0") == 0) *out = PHX_V1;
    else if (strcmp(v, "2.0.0") == 0) *out = PHX_V2;
    else rc = -1;
    free(v);
    return rc;
}

int phx_connect_run(const sb_req *req, const char *token, bool subprotocol, phx_connect_result *out)
{
    if (parse_vsn(req, &out->vsn) != 0) return -1;
    char tok[TOKEN_MAX_TEXT];
    out->via_subprotocol = false;
    if (token) {
        size_t n = strlen(token);
        if (n >= sizeof tok) n = 0;
        memcpy(tok, token, n);
        tok[n] = 0;
    } else {
        const char *sp = subprotocol ? http_req_header(req, "sec-websocket-protocol") : NULL;
        if (!sp || !subprotocol_token(sp, tok, sizeof tok)) return -1;
        out->via_subprotocol = true;
    }
    if (!tok[0] || !g_connect) return -1;
    return g_connect(tok, &out->claims) == 0 ? 0 : -1;
}
