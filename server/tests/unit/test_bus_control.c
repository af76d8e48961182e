/* Unit tests for bus_control.c: listeners of a kind run in registration
 * order on publication, the event goes to the other nodes as the control
 * message "disconnect" {by, id, code}, and a received one runs the
 * listeners of the kind it carries (close code checked). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bus/bus.h"
#include "bus/bus_control.h"

/* what the listeners saw, in order: "<listener>:<kind>:<id>:<code>;" */
static char g_seen[1024];
/* what went to the bus: "<event> <payload>;" */
static char g_sent[1024];

static void listener(const bus_ctl *ev, void *arg)
{
    size_t n = strlen(g_seen);
    snprintf(g_seen + n, sizeof g_seen - n, "%s:%d:%s:%d;", (const char *)arg, (int)ev->kind,
             ev->id, ev->code);
}

static void fake_control(const char *event, const char *payload_json)
{
    size_t n = strlen(g_sent);
    snprintf(g_sent + n, sizeof g_sent - n, "%s %s;", event, payload_json);
}

static bus_ops g_fake;

static int setup(void **st)
{
    g_fake = bus_local_ops;
    g_fake.control = fake_control;
    g_bus = &g_fake;
    g_seen[0] = g_sent[0] = 0;
    return 0;
}

static void test_publish_runs_listeners_in_order_then_bus(void **st)
{
    bus_control_publish(&(bus_ctl){BUS_CTL_SESSION_REVOKED, "42", 1008});
    assert_string_equal(g_seen, "revoke:0:42:1008;close:0:42:1008;");
    assert_string_equal(g_sent, "disconnect {\"by\":\"session\",\"id\":\"42\",\"code\":1008};");
}

static void test_publish_user_disconnect(void **st)
{
    bus_control_publish(&(bus_ctl){BUS_CTL_USER_DISCONNECT, "7", 4001});
    assert_string_equal(g_seen, "close:1:7:4001;");
    assert_string_equal(g_sent, "disconnect {\"by\":\"user\",\"id\":\"7\",\"code\":4001};");
}

static void test_publish_ignores_missing_id_and_keeps_long_ids_local(void **st)
{
    bus_control_publish(&(bus_ctl){BUS_CTL_SESSION_REVOKED, NULL, 1008});
    bus_control_publish(&(bus_ctl){BUS_CTL_SESSION_REVOKED, "", 1008});
    assert_string_equal(g_seen, "");
    assert_string_equal(g_sent, "");
    char id[80];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = 0;
    bus_control_publish(&(bus_ctl){BUS_CTL_USER_DISCONNECT, id, 1008});
    assert_non_null(strstr(g_seen, id));
    assert_string_equal(g_sent, ""); /* no node has such an id */
}

static void test_receive(void **st)
{
    json_t *j = json_pack("{s:s,s:s,s:i}", "by", "session", "id", "9", "code", 1008);
    assert_int_equal(bus_control_receive("disconnect", j), 1);
    json_decref(j);
    assert_string_equal(g_seen, "revoke:0:9:1008;close:0:9:1008;");
    g_seen[0] = 0;
    /* by user; a close code a client may not see becomes 1008 */
    j = json_pack("{s:s,s:s,s:i}", "by", "user", "id", "3", "code", 1006);
    assert_int_equal(bus_control_receive("disconnect", j), 1);
    json_decref(j);
    assert_string_equal(g_seen, "close:1:3:1008;");
    g_seen[0] = 0;
    j = json_pack("{s:s,s:s,s:i}", "by", "user", "id", "3", "code", 4000);
    bus_control_receive("disconnect", j);
    json_decref(j);
    assert_string_equal(g_seen, "close:1:3:4000;");
    g_seen[0] = 0;
    /* incomplete: handled, nobody called */
    j = json_pack("{s:s}", "by", "user");
    assert_int_equal(bus_control_receive("disconnect", j), 1);
    json_decref(j);
    /* not a control event of bus_control.c */
    j = json_object();
    assert_int_equal(bus_control_receive("presence_sync", j), 0);
    json_decref(j);
    assert_string_equal(g_seen, "");
    assert_string_equal(g_sent, ""); /* never sent on */
}

static void test_listen_refuses_bad_kind(void **st)
{
    assert_int_equal(bus_control_listen(BUS_CTL_KINDS, listener, NULL), -1);
    assert_int_equal(bus_control_listen(BUS_CTL_SESSION_REVOKED, NULL, NULL), -1);
}

int main(void)
{
    if (bus_control_listen(BUS_CTL_SESSION_REVOKED, listener, "revoke") != 0 ||
        bus_control_listen(BUS_CTL_SESSION_REVOKED, listener, "close") != 0 ||
        bus_control_listen(BUS_CTL_USER_DISCONNECT, listener, "close") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_publish_runs_listeners_in_order_then_bus, setup),
        cmocka_unit_test_setup(test_publish_user_disconnect, setup),
        cmocka_unit_test_setup(test_publish_ignores_missing_id_and_keeps_long_ids_local, setup),
        cmocka_unit_test_setup(test_receive, setup),
        cmocka_unit_test_setup(test_listen_refuses_bad_kind, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
