/* app.c — see app.h. */
#include "app.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <llhttp.h>
#include "accounts/accounts.h"
#include "accounts/accounts_connect.h"
#include "admin/admin.h"
#include "base/config.h"
#include "base/log.h"
#include "bus/bus.h"
#include "bus/bus_control.h"
#include "bus/pubsub.h"
#include "calls/call_store.h"
#include "calls/call_view.h"
#include "calls/calls.h"
#include "calls/turn.h"
#include "chat/chat.h"
#include "chat/chat_push.h"
#include "export/export.h"
#include "http/http_conn.h"
#include "http/rest.h"
#include "http/router.h"
#include "http/static_files.h"
#include "keys/keys.h"
#include "media/media.h"
#include "moderation/moderation.h"
#include "net/conn.h"
#include "net/reactor.h"
#include "net/tls.h"
#include "phoenix/channels.h"
#include "phoenix/longpoll.h"
#include "phoenix/phx_connect.h"
#include "phoenix/phx_fanout.h"
#include "phoenix/phx_socket.h"
#include "phoenix/phx_websocket.h"
#include "presence/presence_cluster.h"
#include "push/push.h"
#include "push/push_metrics.h"
#include "search/search.h"
#include "store/db.h"
#include "sync/sync.h"
#include "sync/sync_view.h"
#include "ws/ws.h"

static void healthz(sb_req *req) { http_respond_json(req, 200, json_pack("{s:s}", "status", "ok")); }

/* Ready when every reactor's database pool has a live connection (or no
 * database is configured). Redis is reported ("ok", "down",
 * "not_configured") but does not make the node unready: without it the node
 * still serves its own users ("status":"degraded"), and taking every node
 * out of a load balancer during a Redis outage would serve nobody. */
static void readyz(sb_req *req)
{
    bool db_ok = true;
    if (g_config.database_url[0])
        for (int i = 0; i < reactor_count; i++)
            if (!db_of(&reactor_all[i]) || !db_pool_ready(db_of(&reactor_all[i])))
                db_ok = false;
    const char *redis = bus_status();
    bool redis_ok = strcmp(redis, "down") != 0;
    json_t *o = json_pack("{s:s,s:{s:s,s:s}}", "status",
                          !db_ok ? "unavailable" : redis_ok ? "ok" : "degraded", "checks",
                          "postgres", !g_config.database_url[0] ? "not_configured" : db_ok ? "ok" : "down",
                          "redis", redis);
    json_t *bus = bus_redis_stats();
    if (bus) json_object_set_new(o, "bus", bus);
    if (tls_enabled()) {
        uint64_t full, resumed;
        tls_stats(&full, &resumed);
        json_object_set_new(o, "tls", json_pack("{s:I,s:I}", "handshakes_full", (json_int_t)full,
                                                "handshakes_resumed", (json_int_t)resumed));
    }
    http_respond_json(req, db_ok ? 200 : 503, o);
}

/* ---- hooks: what the lower layers call without naming ---- */

/* A session revoked on any node: its access tokens are refused here until
 * they would have expired anyway. */
static void revoke_listener(const bus_ctl *ev, void *arg)
{
    rest_revoke_session(ev->id, (int64_t)time(NULL) + g_config.access_ttl_s + 5);
}

/* A session revoked, or a user to disconnect, on any node: its sockets on
 * this node close. */
static void disconnect_listener(const bus_ctl *ev, void *arg)
{
    phx_socket_disconnect(ev->id, ev->kind == BUS_CTL_SESSION_REVOKED, ev->code);
}

/* An admin broadcast, from any node: pushed on this node's user: channels. */
static void broadcast_listener(const bus_ctl *ev, void *arg)
{
    phx_socket_push_prefix("user:", ADMIN_BROADCAST_EVENT, ev->id);
}

/* The accounts' hourly housekeeping rides the reactors' 1 s tick. */
static const reactor_hooks accounts_hooks = {.tick = accounts_tick};

int app_register(void)
{
    /* the transport stack: connections speak HTTP first; the Phoenix socket
     * routes go first in the table (tried in order), static files last */
    conn_set_opener(http_conn_open);
    ws_set_consumer(&phx_websocket_consumer);
    accounts_connect_revoked_hook = rest_session_revoked;
    phx_connect_set_handler(accounts_connect_socket);
    router_add(ROUTER_ANY_METHOD, "/socket/websocket", phx_websocket_handle);
    router_add(ROUTER_ANY_METHOD, "/socket/longpoll", longpoll_handle);
    router_set_fallback(static_files_serve);
    router_add(HTTP_GET, "/healthz", healthz);
    router_add_admin(HTTP_GET, "/healthz", healthz);
    router_add_admin(HTTP_GET, "/readyz", readyz);
    if (accounts_routes() != 0) return 1;
    chat_routes();
    keys_routes();
    search_routes();
    export_routes();
    if (media_routes() != 0) return 1;
    sync_routes();
    calls_routes();
    sync_view_set("call:", "\"answered_on\"", call_view_event); /* answered_elsewhere per device on user: */
    turn_rest_routes();
    moderation_routes();
    admin_routes();
    ch_user_register();
    if (g_config.test_channels) ch_echo_register();

    /* push (SB_FCM_CREDENTIALS): a bad key file stops the start */
    char perr[512] = "";
    if (push_configure(perr, sizeof perr) != 0) {
        fprintf(stderr, "switchboard: %s\n", perr);
        log_msg(LOG_ERROR, "push_config_failed", "error", json_string(perr), NULL);
        return 2;
    }
    if (push_enabled()) {
        g_chat_push_hook = push_message_committed;
        g_call_push_hook = push_call_event;
    }

    presence_cluster_init();
    push_metrics_register();
    return 0;
}

int app_register_modules(void)
{
    if (db_register(g_config.database_url, g_config.db_pool_size) != 0 || pubsub_register() != 0 ||
        longpoll_register() != 0 || reactor_register(&accounts_hooks) < 0 ||
        phx_fanout_init() != 0)
        return -1;
    /* revoked first, then closed: a client reconnecting at once is refused */
    if (bus_control_listen(BUS_CTL_SESSION_REVOKED, revoke_listener, NULL) != 0 ||
        bus_control_listen(BUS_CTL_SESSION_REVOKED, disconnect_listener, NULL) != 0 ||
        bus_control_listen(BUS_CTL_USER_DISCONNECT, disconnect_listener, NULL) != 0 ||
        bus_control_listen(BUS_CTL_BROADCAST, broadcast_listener, NULL) != 0)
        return -1;
    return push_register() != 0 ? -1 : 0;
}
