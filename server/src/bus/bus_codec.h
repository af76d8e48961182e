/* bus_codec.h — what travels between nodes on Redis, and the Redis URL.
 *
 * A publication is one Redis PUBLISH on channel <prefix>t:<topic> (topic
 * broadcasts) or <prefix>ctl (control messages for every node). Its payload
 * is an envelope:
 *
 *   'S' 'B' 0x01 kind   node_len node...   event_len event...   payload...
 *
 * kind: BUS_TEXT (payload is the broadcast's JSON text), BUS_BINARY (raw
 * bytes of a binary broadcast) or BUS_CONTROL (a JSON object); node is the
 * publishing node's name (1..255 bytes), so a node ignores its own; event is
 * the Phoenix event or control name (1..255 bytes). Pure functions, no I/O. */
#ifndef SB_BUS_CODEC_H
#define SB_BUS_CODEC_H

#include <stdbool.h>
#include <stddef.h>

#define BUS_ENVELOPE_VERSION 1
#define BUS_NAME_MAX 255

typedef struct bus_envelope {
    int kind;
    const char *node;   /* not NUL-terminated: node_len bytes */
    size_t node_len;
    const char *event;  /* not NUL-terminated: event_len bytes */
    size_t event_len;
    const char *payload;
    size_t payload_len;
} bus_envelope;

/* Bytes of an envelope for these lengths. */
size_t bus_envelope_size(size_t node_len, size_t event_len, size_t payload_len);
/* Writes the envelope into out (at least bus_envelope_size bytes). Returns
 * the bytes written, or 0 when kind is unknown or node / event is empty or
 * longer than BUS_NAME_MAX. */
size_t bus_envelope_encode(char *out, int kind, const char *node, size_t node_len,
                           const char *event, size_t event_len, const void *payload,
                           size_t payload_len);
/* Parses an envelope; the result points into buf. Returns 0, or -1 for
 * anything malformed (wrong magic or version, unknown kind, truncated,
 * empty names). */
int bus_envelope_decode(const char *buf, size_t len, bus_envelope *out);

/* Builds the RESP command `PUBLISH <prefix><mid><topic> <envelope>` in one
 * malloc'd buffer. Returns it with its length in *out_len, or NULL (bad
 * names, out of memory). */
char *bus_resp_publish(const char *prefix, const char *mid, const char *topic, int kind,
                       const char *node, const char *event, const void *payload,
                       size_t payload_len, size_t *out_len);

typedef struct bus_redis_url {
    char host[256];
    int port;
    char user[128];     /* empty: AUTH with the password alone */
    char password[256]; /* empty: no AUTH */
    char unix_path[256];/* redis+unix:///path or unix:///path */
} bus_redis_url;

/* Parses redis://[[user]:password@]host[:port][/db] (IPv6 host in
 * brackets), redis+unix:///path or unix:///path, with percent-escapes in
 * user and password. Returns 0, or -1 with a reason in err. */
int bus_parse_redis_url(const char *url, bus_redis_url *out, char *err, size_t errlen);

#endif
