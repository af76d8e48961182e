/* config.c — settings from defaults, environment variables and flags.
 * The option table below is the single source of docs/configuration.md. */
#include "base/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

sb_config g_config;

typedef enum { T_STR, T_INT, T_I64, T_SIZE, T_U64, T_BOOL, T_DBL } opt_type;

typedef struct opt {
    const char *flag; /* --flag */
    const char *env;  /* SB_... */
    opt_type type;
    const char *def;
    void *ptr;
    size_t cap; /* for strings */
    const char *help;
} opt;

#define S(f) &g_config.f, sizeof g_config.f
#define N(f) &g_config.f, 0

static const opt opts[] = {
    {"host", "SB_HOST", T_STR, "0.0.0.0", S(host), "address the public HTTP/WebSocket listener binds"},
    {"port", "SB_PORT", T_INT, "4000", N(port), "public port (0 picks a free one, logged at start)"},
    {"admin-host", "SB_ADMIN_HOST", T_STR, "127.0.0.1", S(admin_host), "address of the admin listener (/healthz, /readyz, /metrics, /admin)"},
    {"admin-port", "SB_ADMIN_PORT", T_INT, "4001", N(admin_port), "admin port (0 picks a free one; -1 disables the admin listener)"},
    {"admin-token", "SB_ADMIN_TOKEN", T_STR, "", S(admin_token), "bearer token for /admin/* and /metrics (empty: admin actions refused)"},
    {"admin-web-root", "SB_ADMIN_WEB_ROOT", T_STR, "web-admin", S(admin_web_root), "folder of the admin dashboard served at /admin/ on the admin listener"},
    {"admin-audit-log", "SB_ADMIN_AUDIT_LOG", T_STR, "", S(admin_audit_log), "file the admin audit log is appended to (JSON lines); empty: the log stream, event \"admin_audit\""},
    {"metrics-open", "SB_METRICS_OPEN", T_BOOL, "0", N(metrics_open), "serve /metrics without the admin token (only on a trusted network)"},
    {"reactors", "SB_REACTORS", T_INT, "0", N(reactors), "event-loop threads (0 = number of cores)"},
    {"secret", "SB_SECRET", T_STR, "", S(secret), "key that signs access tokens, at least 32 bytes (required)"},
    {"database-url", "SB_DATABASE_URL", T_STR, "", S(database_url), "Postgres connection string (libpq URI); empty runs without a database"},
    {"db-pool", "SB_DB_POOL", T_INT, "4", N(db_pool_size), "Postgres connections per reactor"},
    {"search-db-conns", "SB_SEARCH_DB_CONNS", T_INT, "1", N(search_db_conns), "Postgres connections per reactor that searches may use, of SB_DB_POOL (0: all); more searches running at once than cores cost each more CPU and delay sends and calls"},
    {"db-pending-max", "SB_DB_PENDING_MAX", T_INT, "4096", N(db_pending_max), "Postgres queries queued or in flight per reactor; beyond, a query fails at once (\"unavailable\", 503)"},
    {"migrate", "SB_MIGRATE", T_BOOL, "0", N(migrate_on_start), "apply pending migrations at start"},
    {"migrations-dir", "SB_MIGRATIONS_DIR", T_STR, "migrations", S(migrations_dir), "folder of the numbered SQL migrations"},
    {"redis-url", "SB_REDIS_URL", T_STR, "", S(redis_url), "Redis for multi-node fan-out (redis://host:port); empty = single node, in-process bus"},
    {"node-id", "SB_NODE_ID", T_STR, "", S(node_id), "this node's name in a cluster, unique per node (default: hostname-pid-random)"},
    {"redis-prefix", "SB_REDIS_PREFIX", T_STR, "sb:", S(redis_prefix), "prefix of the Redis channels (clusters sharing one Redis need different prefixes)"},
    {"redis-queue-max", "SB_REDIS_QUEUE_MAX", T_SIZE, "16777216", N(redis_queue_max), "bytes of publications queued for Redis (in flight or held while it is down); beyond, publications are dropped and counted"},
    {"redis-queue-ms", "SB_REDIS_QUEUE_MS", T_U64, "5000", N(redis_queue_ms), "publications held while Redis is down are dropped after this many ms"},
    {"redis-heartbeat-ms", "SB_REDIS_HEARTBEAT_MS", T_U64, "1000", N(redis_heartbeat_ms), "period of this node's heartbeat on the Redis bus"},
    {"redis-node-timeout-ms", "SB_REDIS_NODE_TIMEOUT_MS", T_U64, "5000", N(redis_node_timeout_ms), "a node silent this long is considered gone (its presences are removed)"},
    {"redis-retry-max-ms", "SB_REDIS_RETRY_MAX_MS", T_U64, "2000", N(redis_retry_max_ms), "longest wait between Redis reconnect attempts (backoff from 100 ms)"},
    {"log-level", "SB_LOG_LEVEL", T_STR, "info", S(log_level), "debug, info, warn or error"},
    {"test-channels", "SB_TEST_CHANNELS", T_BOOL, "0", N(test_channels), "enable the echo:* protocol test channel (tests and benchmarks only)"},
    {"web-root", "SB_WEB_ROOT", T_STR, "web", S(web_root), "folder of the web client served at /"},
    {"access-ttl", "SB_ACCESS_TTL", T_I64, "900", N(access_ttl_s), "access token lifetime, seconds"},
    {"refresh-ttl", "SB_REFRESH_TTL", T_I64, "2592000", N(refresh_ttl_s), "refresh token lifetime, seconds"},
    {"http-max-header", "SB_HTTP_MAX_HEADER", T_SIZE, "16384", N(http_max_header), "largest request line + headers, bytes (431 beyond)"},
    {"http-max-body", "SB_HTTP_MAX_BODY", T_SIZE, "1048576", N(http_max_body), "largest JSON request body, bytes (413 beyond)"},
    {"http-idle-ms", "SB_HTTP_IDLE_MS", T_U64, "30000", N(http_idle_ms), "keep-alive idle time and request read time limit"},
    {"ws-max-message", "SB_WS_MAX_MESSAGE", T_SIZE, "1048576", N(ws_max_message), "largest WebSocket message, bytes (close 1009 beyond)"},
    {"outbound-max", "SB_OUTBOUND_MAX", T_SIZE, "1048576", N(outbound_max), "bytes queued to one client before it is closed with 1013"},
    {"idle-timeout-ms", "SB_IDLE_TIMEOUT_MS", T_U64, "60000", N(idle_timeout_ms), "a socket that sends nothing this long is closed (1000)"},
    {"longpoll-window-ms", "SB_LONGPOLL_WINDOW_MS", T_U64, "10000", N(longpoll_window_ms), "how long a long-poll GET is held when nothing is pending"},
    {"shutdown-ms", "SB_SHUTDOWN_MS", T_U64, "8000", N(shutdown_ms), "longest graceful shutdown before exit (SIGTERM/SIGINT): past it, what is left is closed at once. Keep it above SB_DRAIN_MS"},
    {"drain-ms", "SB_DRAIN_MS", T_U64, "5000", N(drain_ms), "on SIGTERM, sockets are closed with 1001 spread evenly over this many ms (after the listeners close), so their reconnects reach the other nodes as a wave, not a spike; 0 closes all at once. Capped at SB_SHUTDOWN_MS minus 1 s"},
    {"argon2-t", "SB_ARGON2_T", T_INT, "2", N(argon2_t_cost), "Argon2id passes"},
    {"argon2-m", "SB_ARGON2_M", T_INT, "19456", N(argon2_m_kib), "Argon2id memory, KiB"},
    {"tls-cert", "SB_TLS_CERT", T_STR, "", S(tls_cert), "PEM certificate chain for TLS (HTTPS/WSS, TLS 1.2+) on the public port; with SB_TLS_KEY, else plain HTTP. The admin port stays plain HTTP"},
    {"tls-key", "SB_TLS_KEY", T_STR, "", S(tls_key), "PEM private key of SB_TLS_CERT"},
    {"tls-handshake-ms", "SB_TLS_HANDSHAKE_MS", T_U64, "10000", N(tls_handshake_ms), "a TLS handshake not finished this long after the accept is closed"},
    {"tls-ciphers", "SB_TLS_CIPHERS", T_STR, "ECDHE+AESGCM:ECDHE+CHACHA20", S(tls_ciphers), "TLS 1.2 cipher list (OpenSSL syntax; forward-secret AEAD only by default). A list OpenSSL rejects stops the start"},
    {"tls-ciphersuites", "SB_TLS_CIPHERSUITES", T_STR, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", S(tls_ciphersuites), "TLS 1.3 cipher suites (OpenSSL syntax)"},
    {"tls-reload-check-s", "SB_TLS_RELOAD_CHECK_S", T_U64, "60", N(tls_reload_check_s), "every this many seconds the certificate and key files are checked (size, mtime, inode) and reloaded when they changed, e.g. after a certbot renewal (0: only on SIGHUP). A pair that does not load is refused with a log line and the one in use is kept"},
    {"tls-ticket-key-file", "SB_TLS_TICKET_KEY_FILE", T_STR, "", S(tls_ticket_key_file), "session-ticket keys shared by the nodes behind one balancer, so a client resumes on any node: a file of 80 random bytes per key (e.g. head -c 80 /dev/urandom), the first encrypts new tickets, all decrypt; re-read with the certificate (SIGHUP or SB_TLS_RELOAD_CHECK_S). Empty: random keys made per process and rotated every SB_TLS_TICKET_ROTATE_S"},
    {"tls-ticket-rotate-s", "SB_TLS_TICKET_ROTATE_S", T_U64, "3600", N(tls_ticket_rotate_s), "without SB_TLS_TICKET_KEY_FILE: a new random ticket key encrypts after this many seconds; the previous one still decrypts for as long again. A ticket resumes for twice this many seconds after it was issued (also with SB_TLS_TICKET_KEY_FILE)"},
    {"tls13-own-records", "SB_TLS13_OWN_RECORDS", T_BOOL, "1", N(tls13_own_records), "after a TLS 1.3 handshake (AES-GCM or ChaCha20-Poly1305 suite), the connection's records are sealed and opened by Switchboard's own record layer (libcrypto's AEAD, KeyUpdate both ways) and OpenSSL's SSL object is freed: ~13 KB less per idle WSS connection (docs/benchmarks.md, P13). 0: the SSL object stays for the whole connection (as TLS 1.2 connections always do)"},
    {"message-max-bytes", "SB_MESSAGE_MAX_BYTES", T_SIZE, "65536", N(message_max_bytes), "largest message body (text, caption or ciphertext), bytes"},
    {"ratelimit-send", "SB_RATELIMIT_SEND", T_STR, "200/20", S(ratelimit_send), "message sends per user: N at once, then N per S seconds (\"off\" = unlimited)"},
    {"ratelimit-login-ip", "SB_RATELIMIT_LOGIN_IP", T_STR, "30/60", S(ratelimit_login_ip), "login attempts per client address (IPv6: per /64): N at once, then N per S seconds"},
    {"ratelimit-login-account", "SB_RATELIMIT_LOGIN_ACCOUNT", T_STR, "10/300", S(ratelimit_login_account), "login attempts per account, N/S"},
    {"ratelimit-signup-ip", "SB_RATELIMIT_SIGNUP_IP", T_STR, "10/3600", S(ratelimit_signup_ip), "sign-ups per client address, N/S"},
    {"ratelimit-connect-ip", "SB_RATELIMIT_CONNECT_IP", T_STR, "1000/10", S(ratelimit_connect_ip), "socket connects (WebSocket upgrades and long-poll sessions) per client address, N/S; answered 429 with Retry-After (\"off\" = unlimited, e.g. for load tests from few addresses)"},
    {"allowed-origins", "SB_ALLOWED_ORIGINS", T_STR, "", S(allowed_origins), "which web pages may open a socket (WebSocket or long-poll), as Phoenix's check_origin: comma-separated origins (https://chat.example.com), //host (any scheme), https://*.example.com (subdomains), \"same\" (the same site), \"null\", or * (any). Empty: only the same site, an Origin whose host and port equal the request's Host (behind a trusted proxy its X-Forwarded-Host). A refused Origin gets 403; requests without an Origin (native apps) pass"},
    {"trusted-proxies", "SB_TRUSTED_PROXIES", T_STR, "", S(trusted_proxies), "reverse proxies whose X-Forwarded-For (or X-Real-IP) names the client: comma-separated IPv4/IPv6 addresses or CIDR blocks, e.g. 127.0.0.1,10.0.0.0/8,::1. A request from one of them is limited and logged as the rightmost X-Forwarded-For address that is not itself a trusted proxy (empty: the TCP peer is the client and those headers are ignored; docs/security.md S6)"},
    {"ratelimit-typing", "SB_RATELIMIT_TYPING", T_STR, "10/10", S(ratelimit_typing), "typing events per user and conversation, N/S"},
    {"sync-retention", "SB_SYNC_RETENTION", T_I64, "2592000", N(sync_retention_s), "seconds a sync cursor stays valid; older ones answer 410 cursor_expired, and events older than this may be pruned"},
    {"sync-prune-interval", "SB_SYNC_PRUNE_INTERVAL", T_I64, "3600", N(sync_prune_interval_s), "seconds between prunes of events older than the sync retention (0 = never prune)"},
    {"tailer-poll-ms", "SB_TAILER_POLL_MS", T_U64, "10", N(tailer_poll_ms), "event tailer poll interval, ms (writes made on this node wake it at once; this bounds the delay for writes made by other nodes)"},
    {"tailer-batch", "SB_TAILER_BATCH", T_INT, "500", N(tailer_batch), "events read per event tailer query"},
    {"sync-window-bytes", "SB_SYNC_WINDOW_BYTES", T_SIZE, "33554432", N(sync_window_bytes), "bytes of recent events (with their recipients) each node keeps in memory to answer GET /api/v1/sync without Postgres when the cursor is recent (0 = always read Postgres)"},
    {"call-ring-ms", "SB_CALL_RING_MS", T_U64, "45000", N(call_ring_ms), "a call nobody answers within this many ms ends missed"},
    {"call-connect-ms", "SB_CALL_CONNECT_MS", T_U64, "30000", N(call_connect_ms), "an accepted call whose media is not connected within this many ms ends failed"},
    {"call-grace-ms", "SB_CALL_GRACE_MS", T_U64, "20000", N(call_grace_ms), "a call participant with no socket on call:<id> for this many ms ends the call connection_lost (a rejoin within it resumes the call)"},
    {"call-tick-ms", "SB_CALL_TICK_MS", T_U64, "250", N(call_tick_ms), "period of each node's call timer poll (due calls are ended by whichever node sees them first)"},
    {"fcm-credentials", "SB_FCM_CREDENTIALS", T_STR, "", S(fcm_credentials), "path of a Firebase service-account JSON key file; empty: push notifications off (docs/push.md)"},
    {"fcm-endpoint", "SB_FCM_ENDPOINT", T_STR, "https://fcm.googleapis.com", S(fcm_endpoint), "base URL of FCM HTTP v1 (an http:// URL speaks HTTP/2 in cleartext, for tests)"},
    {"fcm-ca-file", "SB_FCM_CA_FILE", T_STR, "", S(fcm_ca_file), "PEM CA bundle trusted for FCM and the token endpoint instead of the system's (tests, TLS-inspecting proxies); empty: the system's"},
    {"fcm-timeout-ms", "SB_FCM_TIMEOUT_MS", T_U64, "10000", N(fcm_timeout_ms), "a push (or token) request not answered within this many ms fails and is retried"},
    {"fcm-concurrency", "SB_FCM_CONCURRENCY", T_INT, "200", N(fcm_concurrency), "push requests in flight at once (multiplexed over SB_FCM_CONNECTIONS HTTP/2 connections)"},
    {"fcm-connections", "SB_FCM_CONNECTIONS", T_INT, "4", N(fcm_connections), "HTTP/2 connections to FCM at most; each carries up to SB_FCM_CONCURRENCY / SB_FCM_CONNECTIONS streams (libcurl 7.88 runs every transfer of a connection on each of its socket events: fewer streams per connection cost less CPU per push)"},
    {"fcm-queue-max", "SB_FCM_QUEUE_MAX", T_SIZE, "20000", N(fcm_queue_max), "pending pushes kept; beyond it the oldest message push is dropped (call pushes are kept)"},
    {"fcm-max-tries", "SB_FCM_MAX_TRIES", T_INT, "5", N(fcm_max_tries), "tries of a push FCM answers 429 or 5xx to (or that gets no answer)"},
    {"fcm-retry-base-ms", "SB_FCM_RETRY_BASE_MS", T_U64, "1000", N(fcm_retry_base_ms), "first retry backoff, doubled each try (with jitter, at most 60 s) unless FCM gives Retry-After"},
    {"fcm-retry-window-ms", "SB_FCM_RETRY_WINDOW_MS", T_U64, "120000", N(fcm_retry_window_ms), "a push not delivered within this many ms of its decision is given up"},
    {"fcm-alert-interval-ms", "SB_FCM_ALERT_INTERVAL_MS", T_U64, "5000", N(fcm_alert_interval_ms), "one message push per conversation and device per this many ms: the first of a burst alerts at once, the newest of the rest goes silently when the interval ends (0: every message pushed)"},
    {"ratelimit-call", "SB_RATELIMIT_CALL", T_STR, "20/60", S(ratelimit_call), "calls started (POST /calls) per user, N/S (\"off\" = unlimited)"},
    {"ratelimit-report", "SB_RATELIMIT_REPORT", T_STR, "20/3600", S(ratelimit_report), "reports filed (POST /reports) per user, N/S (\"off\" = unlimited)"},
    {"account-username-grace", "SB_ACCOUNT_USERNAME_GRACE", T_I64, "2592000", N(account_username_grace_s), "seconds the username of a deleted account stays reserved before anyone may sign up with it"},
    {"turn-secret", "SB_TURN_SECRET", T_STR, "", S(turn_secret), "coturn's static-auth-secret (use-auth-secret): signs the ephemeral TURN credentials of GET /api/v1/turn and of calls (required when SB_TURN_URIS has turn: or turns: URIs; never logged)"},
    {"turn-uris", "SB_TURN_URIS", T_STR, "", S(turn_uris), "ICE servers handed to clients: comma-separated turn:, turns:, stun: or stuns: URIs, e.g. turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349 (empty: no STUN/TURN, clients use host candidates only)"},
    {"turn-ttl", "SB_TURN_TTL", T_I64, "86400", N(turn_ttl_s), "lifetime of a TURN credential, seconds (1..31536000); the expiry is part of the username coturn checks"},
    {"prekey-low", "SB_PREKEY_LOW", T_INT, "10", N(prekey_low), "a user whose stored one-time prekeys drop below this many gets a prekeys_low event (once per crossing)"},
    {"ratelimit-keys-fetch", "SB_RATELIMIT_KEYS_FETCH", T_STR, "10/200", S(ratelimit_keys_fetch), "key bundle fetches (GET /api/v1/keys/:user_id) per requester and target user, N/S: N at once, then N per S seconds, per node (\"off\" = unlimited)"},
    {"presence-group-max", "SB_PRESENCE_GROUP_MAX", T_INT, "64", N(presence_group_max), "online/offline `presence` events go to direct contacts and to co-members of groups of at most this many members; members of larger groups read online state on demand (member list, GET /users/:id)"},
    {"media-dir", "SB_MEDIA_DIR", T_STR, "media", S(media_dir), "folder of uploaded media files: content-addressed by SHA-256 (<dir>/ab/<sha256>), temp files in <dir>/tmp; shared by every node of a cluster"},
    {"media-max-bytes", "SB_MEDIA_MAX_BYTES", T_U64, "104857600", N(media_max_bytes), "largest media upload, bytes (413 payload_too_large: at once from Content-Length, or when a chunked body passes it)"},
    {"media-quota-bytes", "SB_MEDIA_QUOTA_BYTES", T_U64, "1073741824", N(media_quota_bytes), "bytes of media one user may upload per 24 hours (429 rate_limited past it; 0 = unlimited)"},
    {"media-orphan-hours", "SB_MEDIA_ORPHAN_HOURS", T_DBL, "24", N(media_orphan_hours), "media referenced by no message or avatar this many hours after its upload is deleted (may be fractional)"},
    {"media-sweep-ms", "SB_MEDIA_SWEEP_MS", T_U64, "600000", N(media_sweep_ms), "period of the orphan media sweep (one node at a time; 0 = never sweep)"},
    {"export-page", "SB_EXPORT_PAGE", T_SIZE, "500", N(export_page), "messages read per query while streaming a conversation export (each page is one short query; the next is read only after the client took the previous one)"},
};

static int set_opt(const opt *o, const char *v)
{
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case T_STR:
        if (strlen(v) >= o->cap) return -1;
        strcpy((char *)o->ptr, v);
        return 0;
    case T_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
            *(bool *)o->ptr = true;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !*v)
            *(bool *)o->ptr = false;
        else
            return -1;
        return 0;
    case T_DBL: {
        double d = strtod(v, &end);
        if (errno || !*v || *end || !(d >= 0) || d > 1e9) return -1;
        *(double *)o->ptr = d;
        return 0;
    }
    default: {
        long long x = strtoll(v, &end, 10);
        if (errno || !*v || *end) return -1;
        if (o->type == T_INT) {
            if (x < -1 || x > 1000000000) return -1;
            *(int *)o->ptr = (int)x;
        } else if (o->type == T_I64) {
            *(int64_t *)o->ptr = x;
        } else {
            if (x < 0) return -1;
            if (o->type == T_SIZE) *(size_t *)o->ptr = (size_t)x;
            else *(uint64_t *)o->ptr = (uint64_t)x;
        }
        return 0;
    }
    }
}

int config_load(int argc, char **argv)
{
    memset(&g_config, 0, sizeof g_config);
    size_t n = sizeof opts / sizeof opts[0];
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(opts[i].env);
        if (set_opt(&opts[i], opts[i].def) != 0) abort();
        if (v && set_opt(&opts[i], v) != 0) {
            fprintf(stderr, "switchboard: bad value for %s: %s\n", opts[i].env, v);
            return -1;
        }
    }
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0) continue;
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = NULL;
        for (size_t i = 0; i < n; i++)
            if (strlen(opts[i].flag) == nl && !strncmp(opts[i].flag, name, nl)) o = &opts[i];
        if (!o) continue; /* subcommand-specific flags are read by the subcommand */
        const char *v = eq ? eq + 1 : (o->type == T_BOOL ? "1" : (a + 1 < argc ? argv[++a] : ""));
        if (set_opt(o, v) != 0) {
            fprintf(stderr, "switchboard: bad value for --%s: %s\n", o->flag, v);
            return -1;
        }
    }
    if (g_config.reactors <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        g_config.reactors = c > 0 ? (int)c : 1;
    }
    if (g_config.reactors > 64) g_config.reactors = 64;
    if (!g_config.node_id[0]) {
        char hn[40] = "node";
        gethostname(hn, sizeof hn - 1);
        unsigned rnd = 0;
        FILE *ur = fopen("/dev/urandom", "rb");
        if (ur) {
            if (fread(&rnd, sizeof rnd, 1, ur) != 1) rnd = 0;
            fclose(ur);
        }
        snprintf(g_config.node_id, sizeof g_config.node_id, "%.40s-%d-%04x", hn, (int)getpid(), rnd & 0xffff);
    }
    g_config.secret_len = strlen(g_config.secret);
    char err[256];
    if (cidr_list_parse(g_config.trusted_proxies, &g_config.trusted_nets, err, sizeof err) != 0) {
        fprintf(stderr, "switchboard: bad value for SB_TRUSTED_PROXIES (--trusted-proxies): %s\n", err);
        return -1;
    }
    return 0;
}

void config_print_help(void)
{
    printf("| flag | variable | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        printf("| `--%s` | `%s` | `%s` | %s |\n", opts[i].flag, opts[i].env,
               opts[i].def[0] ? opts[i].def : "(empty)", opts[i].help);
}
