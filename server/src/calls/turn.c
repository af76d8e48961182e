/* turn.c — coturn REST-API ephemeral credentials (use-auth-secret): the
 * username is "<expiry>:<user_id>", the password base64(HMAC-SHA1(secret,
 * username)); coturn recomputes it with the same static-auth-secret and
 * refuses it after the expiry. Nothing is stored: any node can hand out
 * credentials, and they need no revocation beyond their short lifetime. */
#include "calls/turn.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include "base/config.h"
#include "base/id.h"
#include "base/util.h"

typedef struct uri_list {
    int n;
    char uri[TURN_URIS_MAX][256];
    bool turn[TURN_URIS_MAX]; /* turn: or turns: (needs credentials) */
} uri_list;

/* Splits s at commas, trimming blanks. Returns 0, or -1 with err set. */
static int parse_uris(const char *s, uri_list *l, char *err, size_t errsz)
{
    static const char *const schemes[] = {"turn:", "turns:", "stun:", "stuns:"};
    l->n = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
        size_t len = (size_t)(e - p);
        if (len == 0) {
            snprintf(err, errsz, "an empty URI (stray comma)");
            return -1;
        }
        if (l->n == TURN_URIS_MAX) {
            snprintf(err, errsz, "more than %d URIs", TURN_URIS_MAX);
            return -1;
        }
        if (len >= sizeof l->uri[0]) {
            snprintf(err, errsz, "a URI longer than %zu bytes", sizeof l->uri[0] - 1);
            return -1;
        }
        size_t sl = 0;
        for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
            if (len > strlen(schemes[i]) && !strncmp(p, schemes[i], strlen(schemes[i]))) sl = strlen(schemes[i]);
        if (!sl || p[sl] == '/' || p[sl] == ':' || p[sl] == '?') {
            snprintf(err, errsz, "'%.*s' is not a turn:, turns:, stun: or stuns: URI with a host", (int)(len > 80 ? 80 : len), p);
            return -1;
        }
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f || p[i] == '"' || p[i] == '\\') {
                snprintf(err, errsz, "'%.*s' has a character a URI cannot have", (int)(len > 80 ? 80 : len), p);
                return -1;
            }
        memcpy(l->uri[l->n], p, len);
        l->uri[l->n][len] = '\0';
        l->turn[l->n] = p[0] == 't';
        l->n++;
        p = *end ? end + 1 : end;
        if (*end && !*p) {
            snprintf(err, errsz, "an empty URI (stray comma)");
            return -1;
        }
    }
    return 0;
}

int turn_config_check(char *err, size_t errsz)
{
    uri_list l;
    if (parse_uris(g_config.turn_uris, &l, err, errsz) != 0) return -1;
    bool any_turn = false;
    for (int i = 0; i < l.n; i++) any_turn |= l.turn[i];
    if (any_turn && !g_config.turn_secret[0]) {
        snprintf(err, errsz, "turn: URIs need SB_TURN_SECRET (coturn's static-auth-secret)");
        return -1;
    }
    if (g_config.turn_ttl_s < 1 || g_config.turn_ttl_s > TURN_TTL_MAX) {
        snprintf(err, errsz, "SB_TURN_TTL must be 1..%d seconds", TURN_TTL_MAX);
        return -1;
    }
    return 0;
}

int turn_username(int64_t expiry_unix, const char *user_id, char *out, size_t outsz)
{
    if (!id_parse(user_id)) return -1;
    int n = snprintf(out, outsz, "%lld:%s", (long long)expiry_unix, user_id);
    return n > 0 && (size_t)n < outsz ? 0 : -1;
}

int turn_credential(const uint8_t *secret, size_t secret_len, const char *username, char *out,
                    size_t outsz)
{
    if (outsz < TURN_CREDENTIAL_LEN + 1 || secret_len > 0x7fffffff) return -1;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha1(), secret, (int)secret_len, (const uint8_t *)username, strlen(username), mac, &n) || n != 20)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, mac, 20) == TURN_CREDENTIAL_LEN ? 0 : -1;
}

/* Builds the ICE server list; *username / *credential receive the TURN
 * credentials (empty when there is no turn(s): URI or no valid user id). */
static json_t *build(const char *user_id, int64_t now_unix, json_t **turn_uris, char *username,
                     size_t usz, char *credential, size_t csz)
{
    json_t *servers = json_array();
    json_t *stun = json_array(), *turn = json_array();
    username[0] = credential[0] = '\0';
    uri_list l;
    char err[160];
    if (parse_uris(g_config.turn_uris, &l, err, sizeof err) != 0) l.n = 0; /* refused at start */
    for (int i = 0; i < l.n; i++) json_array_append_new(l.turn[i] ? turn : stun, json_string(l.uri[i]));
    if (json_array_size(stun)) json_array_append_new(servers, json_pack("{s:O}", "urls", stun));
    int64_t ttl = g_config.turn_ttl_s > 0 ? g_config.turn_ttl_s : 1;
    if (json_array_size(turn) && g_config.turn_secret[0] &&
        turn_username(now_unix + ttl, user_id, username, usz) == 0 &&
        turn_credential((const uint8_t *)g_config.turn_secret, strlen(g_config.turn_secret), username, credential, csz) == 0) {
        json_array_append_new(servers, json_pack("{s:O,s:s,s:s}", "urls", turn, "username", username,
                                                 "credential", credential));
    } else {
        username[0] = credential[0] = '\0';
    }
    json_decref(stun);
    if (turn_uris) *turn_uris = turn;
    else json_decref(turn);
    return servers;
}

json_t *turn_ice_servers_at(const char *user_id, int64_t now_unix)
{
    char u[64], c[TURN_CREDENTIAL_LEN + 1];
    return build(user_id, now_unix, NULL, u, sizeof u, c, sizeof c);
}

json_t *turn_ice_servers(const char *user_id)
{
    return turn_ice_servers_at(user_id, util_now_unix_ms() / 1000);
}

json_t *turn_answer(const char *user_id, int64_t now_unix)
{
    char u[64], c[TURN_CREDENTIAL_LEN + 1];
    json_t *uris = NULL;
    json_t *servers = build(user_id, now_unix, &uris, u, sizeof u, c, sizeof c);
    return json_pack("{s:o,s:I,s:o,s:o,s:o}", "ice_servers", servers, "ttl",
                     (json_int_t)(g_config.turn_ttl_s > 0 ? g_config.turn_ttl_s : 1), "uris", uris,
                     "username", u[0] ? json_string(u) : json_null(), "credential",
                     c[0] ? json_string(c) : json_null());
}
