/* config.h — the server's settings, read once at start from environment
 * variables and command-line flags (a flag wins over its variable). The one
 * table of all settings is docs/configuration.md; config.c's option table is
 * its source. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/cidr.h"

typedef struct sb_config {
    char host[64];
    int port;
    char admin_host[64];
    int admin_port;
    char admin_token[256];
    char admin_web_root[512];
    char admin_audit_log[512];
    bool metrics_open;
    int reactors;
    char secret[512];         /* token signing key, >= 32 bytes */
    size_t secret_len;
    char database_url[512];
    int db_pool_size;         /* connections per reactor */
    int search_db_conns;      /* of them, the ones searches may use (0: all) */
    int db_pending_max;       /* queries queued or in flight per reactor's pool */
    bool migrate_on_start;
    char migrations_dir[512];
    char redis_url[256];
    char node_id[64];
    char redis_prefix[48];        /* Redis channel prefix */
    size_t redis_queue_max;       /* bytes of publications queued for Redis */
    uint64_t redis_queue_ms;      /* oldest publication held while Redis is down */
    uint64_t redis_heartbeat_ms;  /* node heartbeat period */
    uint64_t redis_node_timeout_ms; /* a silent node is down after this */
    uint64_t redis_retry_max_ms;  /* longest reconnect backoff */
    char log_level[16];
    bool test_channels;       /* enables the echo:* protocol test channel */
    char web_root[512];
    int64_t access_ttl_s;
    int64_t refresh_ttl_s;
    size_t http_max_header;
    size_t http_max_body;
    uint64_t http_idle_ms;
    size_t ws_max_message;
    size_t outbound_max;      /* bytes queued per connection before 1013 */
    uint64_t idle_timeout_ms; /* Phoenix socket idle timeout */
    uint64_t longpoll_window_ms;
    uint64_t shutdown_ms;
    uint64_t drain_ms;         /* SIGTERM: sockets closed with 1001 spread over this window */
    int argon2_t_cost;
    int argon2_m_kib;
    char tls_cert[512];        /* PEM chain: TLS on the public listener (with tls_key) */
    char tls_key[512];
    uint64_t tls_handshake_ms; /* longest TLS handshake */
    char tls_ciphers[1024];    /* TLS 1.2 cipher list (OpenSSL syntax) */
    char tls_ciphersuites[512];/* TLS 1.3 suites (OpenSSL syntax) */
    uint64_t tls_reload_check_s; /* seconds between checks of the cert/key files (0 = only SIGHUP) */
    char tls_ticket_key_file[512]; /* shared session-ticket keys (several nodes), else random per process */
    uint64_t tls_ticket_rotate_s;  /* lifetime of a random ticket key before a new one encrypts */
    bool tls13_own_records;        /* after a TLS 1.3 handshake: our record layer, the SSL object freed */
    char allowed_origins[4096];  /* Origins allowed to open sockets ("": the same site) */
    size_t message_max_bytes;  /* largest message body / caption, bytes */
    char ratelimit_send[32];   /* message sends per user, "N/S" */
    char ratelimit_typing[32]; /* typing events per user and conversation, "N/S" */
    char ratelimit_login_ip[32];      /* login attempts per client address, "N/S" */
    char ratelimit_login_account[32]; /* login attempts per account, "N/S" */
    char ratelimit_signup_ip[32];     /* sign-ups per client address, "N/S" */
    char ratelimit_connect_ip[32];    /* socket connects per client address, "N/S" */
    char trusted_proxies[4096];       /* reverse proxies whose X-Forwarded-For is believed */
    cidr_list trusted_nets;           /* trusted_proxies parsed (config_load) */
    int64_t sync_retention_s;      /* sync cursors older than this answer 410 cursor_expired */
    int64_t sync_prune_interval_s; /* seconds between prunes of events past retention (0 = never) */
    uint64_t tailer_poll_ms;       /* event tailer fallback poll when no NOTIFY arrives */
    int tailer_batch;              /* events read per event tailer query */
    size_t sync_window_bytes;      /* bytes of recent events kept in memory for sync (0 = off) */
    uint64_t call_ring_ms;         /* a call not answered this long ends missed */
    uint64_t call_connect_ms;      /* an accepted call not connected this long ends failed */
    uint64_t call_grace_ms;        /* a participant without sockets this long: connection_lost */
    uint64_t call_tick_ms;         /* period of each node's call timer poll */
    char ratelimit_call[32];       /* POST /calls per user, "N/S" */
    char ratelimit_report[32];     /* POST /reports per user, "N/S" */
    int64_t account_username_grace_s; /* a deleted account's username is reserved this long */
    char turn_secret[256];         /* coturn static-auth-secret (REST-API credentials) */
    char turn_uris[1024];          /* comma-separated turn:/turns:/stun:/stuns: URIs */
    int64_t turn_ttl_s;            /* TURN credential lifetime, seconds */
    int prekey_low;                /* prekeys_low below this many one-time prekeys */
    char ratelimit_keys_fetch[32]; /* key bundle fetches per (requester, target), "N/S" */
    size_t export_page;            /* messages read per export page query */
    char fcm_credentials[1024];    /* service-account key file; empty: push off */
    char fcm_endpoint[512];        /* FCM HTTP v1 base URL */
    char fcm_ca_file[1024];        /* CA bundle for FCM ("" = the system's) */
    uint64_t fcm_timeout_ms;       /* per push / token request */
    int fcm_concurrency;           /* push requests in flight */
    int fcm_connections;           /* HTTP/2 connections to FCM at most */
    size_t fcm_queue_max;          /* pending pushes kept */
    int fcm_max_tries;             /* tries on 429/5xx/no answer */
    uint64_t fcm_retry_base_ms;    /* first backoff */
    uint64_t fcm_retry_window_ms;  /* give up after this long */
    uint64_t fcm_alert_interval_ms;/* alert throttle per conversation and device */
    int presence_group_max;        /* presence pushes to co-members of groups up to this size */
    char media_dir[512];           /* where media files live (content-addressed) */
    uint64_t media_max_bytes;      /* largest upload, bytes */
    uint64_t media_quota_bytes;    /* bytes one user may upload per 24 hours */
    double media_orphan_hours;     /* unreferenced media older than this is deleted */
    uint64_t media_sweep_ms;       /* period of the orphan sweep */
} sb_config;

extern sb_config g_config;

/* Fills g_config from defaults, environment and argv flags (--name=value or
 * --name value, after the subcommand). Returns 0, or -1 with a message on
 * stderr for an unknown flag or a bad value. */
int config_load(int argc, char **argv);
/* Prints the option table (name, variable, default, meaning) to stdout. */
void config_print_help(void);

#endif
