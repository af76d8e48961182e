/* main.c — the switchboard binary: `serve` (default), `migrate`, `token`,
 * `config`. What `serve` registers (routes, channels, hooks, per-reactor
 * modules) is app.c's; main.c checks the settings, migrates, starts and
 * stops. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "app.h"
#include "accounts/accounts.h"
#include "base/config.h"
#include "base/log.h"
#include "base/token.h"
#include "base/util.h"
#include "bus/bus.h"
#include "calls/call_store.h"
#include "calls/turn.h"
#include "net/reactor.h"
#include "net/tls.h"
#include "phoenix/phx_origin.h"
#include "store/migrate.h"
#include "sync/tailer.h"

#define SB_VERSION "0.1.0"

static void on_signal(uv_signal_t *h, int signum)
{
    static bool once;
    if (once) return;
    once = true;
    log_msg(LOG_INFO, "shutting_down", "signal", json_integer(signum), NULL);
    reactor_shutdown_all(); /* the bus says goodbye once the drain is over (reactor_set_drained_hook) */
    uv_close((uv_handle_t *)h, NULL);
    uv_signal_t *other = h->data;
    if (other && !uv_is_closing((uv_handle_t *)other)) uv_close((uv_handle_t *)other, NULL);
    uv_signal_t *hup = uv_default_loop()->data;
    if (hup && !uv_is_closing((uv_handle_t *)hup)) uv_close((uv_handle_t *)hup, NULL);
    tls_watch_stop();
}

/* SIGHUP: the TLS certificate and key are read again (net/tls.h). */
static void on_hup(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    tls_reload("sighup");
}

static void *watchdog(void *arg)
{
    usleep((useconds_t)((g_config.shutdown_ms + 1500) * 1000));
    log_msg(LOG_WARN, "shutdown_forced", NULL);
    _exit(0);
    return NULL;
}

static int cmd_serve(int argc, char **argv)
{
    if (config_load(argc, argv) != 0) return 2;
    log_set_level(g_config.log_level);
    if (g_config.secret_len < 32) {
        fprintf(stderr, "switchboard: SB_SECRET (or --secret) must be at least 32 bytes\n");
        return 2;
    }
    if (tls_init() != 0) return 2; /* SB_TLS_CERT / SB_TLS_KEY */
    char origin_err[256];
    if (phx_origin_list_check(g_config.allowed_origins, origin_err, sizeof origin_err) != 0) {
        fprintf(stderr, "switchboard: bad SB_ALLOWED_ORIGINS: %s\n", origin_err);
        return 2;
    }
    char turn_err[256];
    if (turn_config_check(turn_err, sizeof turn_err) != 0) {
        fprintf(stderr, "switchboard: bad TURN settings (SB_TURN_URIS, SB_TURN_SECRET, SB_TURN_TTL): %s\n", turn_err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (g_config.database_url[0] && g_config.migrate_on_start) {
        char err[512] = "";
        if (migrate_run(g_config.database_url, g_config.migrations_dir, err, sizeof err) != 0) {
            log_msg(LOG_ERROR, "migrate_failed", "error", json_string(err), NULL);
            return 1;
        }
    }
    /* routes, channels, hooks and per-reactor modules: app.c (the fuzz
     * harnesses register the same) */
    int arc = app_register();
    if (arc != 0) return arc;
    if (g_config.database_url[0]) accounts_load_revoked(g_config.database_url);
    if (app_register_modules() != 0) return 1;
    reactor_set_drained_hook(bus_redis_shutdown);
    if (bus_redis_start() != 0) return 2;
    int port = 0, admin_port = -1;
    int rc = reactor_start_all(g_config.reactors, g_config.host, g_config.port, g_config.admin_host,
                               g_config.admin_port, &port, &admin_port);
    if (rc != 0) {
        log_msg(LOG_ERROR, "listen_failed", "error", json_string(uv_strerror(rc)), "port",
                json_integer(g_config.port), NULL);
        return 1;
    }
    tailer_start();
    call_store_timers_start();
    bus_redis_run();
    log_msg(LOG_INFO, "listening", "host", json_string(g_config.host), "port", json_integer(port),
            "admin_port", json_integer(admin_port), "reactors", json_integer(g_config.reactors),
            "node", json_string(g_config.node_id), "cluster", json_boolean(bus_is_cluster()), "version", json_string(SB_VERSION), NULL);

    uv_loop_t *loop = uv_default_loop();
    uv_signal_t sterm, sint;
    uv_signal_init(loop, &sterm);
    uv_signal_init(loop, &sint);
    sterm.data = &sint;
    sint.data = &sterm;
    uv_signal_start(&sterm, on_signal, SIGTERM);
    uv_signal_start(&sint, on_signal, SIGINT);
    uv_signal_t shup;
    uv_signal_init(loop, &shup);
    uv_signal_start(&shup, on_hup, SIGHUP);
    loop->data = &shup;
    tls_watch_start(loop);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);
    reactor_join_all();
    log_msg(LOG_INFO, "stopped", NULL);
    return 0;
}

static int cmd_migrate(int argc, char **argv)
{
    if (config_load(argc, argv) != 0) return 2;
    if (!g_config.database_url[0]) {
        fprintf(stderr, "switchboard migrate: SB_DATABASE_URL is not set\n");
        return 2;
    }
    char err[512] = "";
    if (migrate_run(g_config.database_url, g_config.migrations_dir, err, sizeof err) != 0) {
        fprintf(stderr, "switchboard migrate: %s\n", err);
        return 1;
    }
    return 0;
}

static int cmd_token(int argc, char **argv)
{
    const char *user = NULL, *session = "cli";
    long long ttl = 900;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc) ttl = atoll(argv[++i]);
        else if (strncmp(argv[i], "--ttl=", 6) == 0) ttl = atoll(argv[i] + 6);
        else if (strcmp(argv[i], "--session") == 0 && i + 1 < argc) session = argv[++i];
        else if (argv[i][0] != '-' && !user) user = argv[i];
    }
    if (config_load(0, NULL) != 0) return 2;
    if (!user || g_config.secret_len < 32) {
        fprintf(stderr, "usage: SB_SECRET=<32+ bytes> switchboard token <user_id> [--ttl seconds] [--session id]\n");
        return 2;
    }
    char *t = token_mint((const uint8_t *)g_config.secret, g_config.secret_len, user, session,
                         util_now_unix_ms() / 1000 + ttl);
    if (!t) {
        fprintf(stderr, "switchboard token: invalid user id\n");
        return 2;
    }
    printf("%s\n", t);
    free(t);
    return 0;
}

static void usage(void)
{
    printf("switchboard %s — chat and calls backend speaking Phoenix Channels\n\n"
           "usage: switchboard [serve] [--flag=value ...]   run the server\n"
           "       switchboard migrate                       apply pending migrations\n"
           "       switchboard token <user_id> [--ttl s]     mint an access token (SB_SECRET)\n"
           "       switchboard config                        print every setting\n\n",
           SB_VERSION);
    config_print_help();
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (cmd[0] == '-' && strcmp(cmd, "--help") != 0 && strcmp(cmd, "-h") != 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc > 1 ? argc - 2 : 0, argv + 2);
    if (strcmp(cmd, "migrate") == 0) return cmd_migrate(argc - 2, argv + 2);
    if (strcmp(cmd, "token") == 0) return cmd_token(argc - 2, argv + 2);
    if (strcmp(cmd, "config") == 0) {
        config_print_help();
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage();
        return 0;
    }
    fprintf(stderr, "switchboard: unknown command '%s' (try --help)\n", cmd);
    return 2;
}
