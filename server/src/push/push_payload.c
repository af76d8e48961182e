/* push_payload.c — FCM HTTP v1 request bodies (push_payload.h). */
#include "push/push_payload.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t push_payload_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    size_t n = max;
    /* step back over continuation bytes to the start of the cut character */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

const char *push_payload_preview(const char *kind, const char *body)
{
    if (kind && !strcmp(kind, "ciphertext")) return NULL;
    if (body && *body) return body;
    static const char *const labels[][2] = {
        {"image", "Photo"}, {"video", "Video"}, {"audio", "Audio"}, {"voice", "Voice message"},
        {"file", "File"},   {"location", "Location"}, {"contact", "Contact"}};
    for (size_t i = 0; kind && i < sizeof labels / sizeof labels[0]; i++)
        if (!strcmp(kind, labels[i][0])) return labels[i][1];
    return "New message";
}

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* The message push with the preview cut to plen bytes. */
static json_t *message_json(const push_payload_msg *m, const char *preview, size_t plen)
{
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", (long long)m->seq);
    json_t *data = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "message", "conversation_id",
                             m->conversation_id, "message_id", m->message_id, "seq", seq,
                             "sender_id", m->sender_id ? m->sender_id : "", "alert",
                             m->muted || !m->alert ? "0" : "1");
    if (!data) return NULL;
    char collapse[64];
    snprintf(collapse, sizeof collapse, "conversation:%s", m->conversation_id);
    if (m->muted) {
        json_object_set_new(data, "muted", json_string("1"));
        return json_pack("{s:{s:s,s:o,s:{s:s,s:s},s:{s:{s:s,s:s,s:s},s:{s:{s:i}}}}}", "message",
                         "token", m->token, "data", data, "android", "collapse_key", collapse,
                         "priority", "normal", "apns", "headers", "apns-collapse-id", collapse,
                         "apns-priority", "5", "apns-push-type", "background", "payload", "aps",
                         "content-available", 1);
    }
    json_t *notif = json_pack("{s:s}", "title", m->sender_name ? m->sender_name : "");
    if (preview) json_object_set_new(notif, "body", json_stringn(preview, plen));
    json_t *an = json_pack("{s:s}", "tag", collapse);
    json_t *aps = json_pack("{s:s}", "thread-id", collapse);
    if (m->alert) {
        json_object_set_new(an, "default_sound", json_true());
        json_object_set_new(aps, "sound", json_string("default"));
    } else {
        json_object_set_new(an, "notification_priority", json_string("PRIORITY_LOW"));
    }
    return json_pack("{s:{s:s,s:o,s:o,s:{s:s,s:s,s:o},s:{s:{s:s,s:s,s:s},s:{s:o}}}}", "message",
                     "token", m->token, "notification", notif, "data", data, "android",
                     "collapse_key", collapse, "priority", "high", "notification", an, "apns",
                     "headers", "apns-collapse-id", collapse, "apns-priority", m->alert ? "10" : "5",
                     "apns-push-type", "alert", "payload", "aps", aps);
}

char *push_payload_message(const push_payload_msg *m)
{
    const char *preview = m->muted ? NULL : m->preview;
    size_t plen = preview ? strlen(preview) : 0;
    size_t toklen = strlen(m->token);
    for (int round = 0; round < 16; round++) {
        size_t cut = preview ? push_payload_utf8_cut(preview, strlen(preview), plen) : 0;
        char *s = dump(message_json(m, preview, cut));
        if (!s) return NULL;
        size_t n = strlen(s);
        if (n <= toklen + PUSH_PAYLOAD_MAX || !preview || cut == 0) return s;
        free(s);
        size_t excess = n - toklen - PUSH_PAYLOAD_MAX;
        /* escapes may need another round; when they more than double the
         * text, halve it rather than losing the preview */
        plen = cut > excess ? cut - excess : cut / 2;
    }
    return NULL;
}

char *push_payload_call(const char *token, const char *call_id, const char *caller,
                        const char *caller_name, const char *media, int64_t ttl_s)
{
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%llds", (long long)ttl_s);
    return dump(json_pack("{s:{s:s,s:{s:s,s:s,s:s,s:s,s:s},s:{s:s,s:s},s:{s:{s:s,s:s},s:{s:{s:i}}}}}",
                          "message", "token", token, "data", "type", "call", "call_id", call_id,
                          "caller", caller ? caller : "", "caller_name",
                          caller_name ? caller_name : "", "media", media ? media : "audio",
                          "android", "priority", "high", "ttl", ttl, "apns", "headers",
                          "apns-priority", "10", "apns-push-type", "alert", "payload", "aps",
                          "content-available", 1));
}

char *push_payload_cancel(const char *token, const char *call_id, const char *reason,
                          int64_t ttl_s)
{
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%llds", (long long)ttl_s);
    return dump(json_pack("{s:{s:s,s:{s:s,s:s,s:s},s:{s:s,s:s},s:{s:{s:s,s:s},s:{s:{s:i}}}}}",
                          "message", "token", token, "data", "type", "call_cancel", "call_id",
                          call_id, "reason", reason ? reason : "ended", "android", "priority",
                          "high", "ttl", ttl, "apns", "headers", "apns-priority", "10",
                          "apns-push-type", "alert", "payload", "aps", "content-available", 1));
}
