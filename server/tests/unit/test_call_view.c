/* test_call_view.c — the callee's per-device view of call events on user:
 * (calls/call_view.c) and sync's view slot (sync/sync_view.c): the
 * answering device sees the call without "answered_on", every other device
 * sees it ended, answered_elsewhere; other events and call events without
 * the key are shown as they are; a GET /sync page is rewritten per event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "calls/call_view.h"
#include "sync/sync_view.h"

static const char EV[] =
    "{\"call\":{\"id\":\"7\",\"state\":\"connecting\",\"end_reason\":null,\"version\":3},"
    "\"answered_on\":\"S1\",\"cursor\":\"abc\"}";

static json_t *view(const char *type, const char *payload, const char *session)
{
    size_t n = 0;
    char *t = call_view_event(type, payload, strlen(payload), session, &n);
    if (!t) return NULL;
    assert_int_equal(n, strlen(t));
    json_t *j = json_loads(t, 0, NULL);
    free(t);
    assert_non_null(j);
    return j;
}

static void answering_device_sees_the_call(void **st)
{
    (void)st;
    json_t *j = view("call:updated", EV, "S1");
    assert_non_null(j);
    assert_null(json_object_get(j, "answered_on"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "call"), "state")), "connecting");
    assert_true(json_is_null(json_object_get(json_object_get(j, "call"), "end_reason")));
    assert_string_equal(json_string_value(json_object_get(j, "cursor")), "abc");
    json_decref(j);
}

static void other_devices_see_answered_elsewhere(void **st)
{
    (void)st;
    json_t *j = view("call:updated", EV, "S2");
    assert_non_null(j);
    json_t *c = json_object_get(j, "call");
    assert_null(json_object_get(j, "answered_on"));
    assert_string_equal(json_string_value(json_object_get(c, "state")), "ended");
    assert_string_equal(json_string_value(json_object_get(c, "end_reason")), "answered_elsewhere");
    assert_int_equal(json_integer_value(json_object_get(c, "version")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "cursor")), "abc");
    json_decref(j);
    j = view("call:updated", EV, ""); /* a token without a session */
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "call"), "end_reason")),
                        "answered_elsewhere");
    json_decref(j);
}

static void others_as_they_are(void **st)
{
    (void)st;
    assert_null(view("message:new", EV, "S2"));
    assert_null(view("call:updated", "{\"call\":{\"id\":\"7\",\"state\":\"ringing\"},\"cursor\":\"x\"}", "S2"));
    assert_null(view("call:updated", "{\"answered_on\":", "S2"));      /* not JSON */
    assert_null(view("call:updated", "{\"answered_on\":\"S1\"}", "S2")); /* no call */
}

static void sync_page_per_device(void **st)
{
    (void)st;
    sync_view_set("call:", "\"answered_on\"", call_view_event);
    const char *body =
        "{\"events\":[{\"type\":\"message:new\",\"m\":1,\"cursor\":\"c1\"},"
        "{\"type\":\"call:updated\",\"call\":{\"id\":\"7\",\"state\":\"connecting\"},"
        "\"answered_on\":\"S1\",\"cursor\":\"c2\"}],\"cursor\":\"c2\",\"has_more\":false}";
    size_t n = 0;
    char *t = sync_view_page(body, strlen(body), "S2", &n);
    assert_non_null(t);
    json_t *j = json_loads(t, 0, NULL);
    free(t);
    json_t *evs = json_object_get(j, "events");
    assert_int_equal(json_array_size(evs), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "m")), 1);
    json_t *e = json_array_get(evs, 1);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "call:updated");
    assert_string_equal(json_string_value(json_object_get(e, "cursor")), "c2");
    assert_null(json_object_get(e, "answered_on"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "call"), "end_reason")),
                        "answered_elsewhere");
    assert_string_equal(json_string_value(json_object_get(j, "cursor")), "c2");
    json_decref(j);
    /* no marker: not parsed, shown as it is */
    assert_null(sync_view_page("{\"events\":[]}", 13, "S2", &n));
    assert_false(sync_view_wants("message:new"));
    assert_true(sync_view_wants("call:incoming"));
    sync_view_set(NULL, NULL, NULL);
    assert_null(sync_view_page(body, strlen(body), "S2", &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(answering_device_sees_the_call),
        cmocka_unit_test(other_devices_see_answered_elsewhere),
        cmocka_unit_test(others_as_they_are),
        cmocka_unit_test(sync_page_per_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
