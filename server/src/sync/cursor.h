/* cursor.h — sync cursors: opaque, tamper-evident positions in the stable
 * event order (docs/sync.md), bound to one user.
 *
 * A position is (tx, id): the last event delivered, or (horizon, 0) for
 * "every event whose tx is below the horizon". Positions compare as pairs.
 *
 * Wire form: base64url (no padding) of 37 bytes
 *   version (1) | tx (8, big-endian) | id (8) | issued_at (4, unix s) | mac (16)
 * Version 1 (single cursors: live pushes, bootstrap): mac = the first 16
 * bytes of HMAC-SHA256(secret, "sbcur1" 0x00 user_id 0x00 bytes[0..21)).
 * Version 2 (the cursors of a page, cursor_encode_many): mac =
 * AES-128(K, tx | id), K = the first 16 bytes of
 * HMAC-SHA256(secret, "sbcur2" 0x00 user_id 0x00 issued_at): one HMAC per
 * page, then one AES block per cursor (an HMAC per cursor was most of the
 * CPU of a 200-event page). Both are accepted everywhere.
 * A cursor verified for another user, or with any byte changed, is refused. */
#ifndef SB_CURSOR_H
#define SB_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CURSOR_LEN 50 /* characters of an encoded cursor */

typedef struct sync_pos {
    uint64_t tx; /* xid8 of the event's transaction */
    int64_t id;  /* events.id, 0 for a horizon */
} sync_pos;

/* -1, 0 or 1 as a is before, equal to or after b in (tx, id) order. */
int sync_pos_cmp(sync_pos a, sync_pos b);

/* Writes the cursor of `pos` for user `user_id`, issued at `issued_unix`,
 * into out (at least CURSOR_LEN + 1 bytes, NUL-terminated). */
void cursor_encode(const uint8_t *secret, size_t secret_len, const char *user_id, sync_pos pos,
                   int64_t issued_unix, char *out);

/* Writes the cursors of n positions for user `user_id`, all issued at
 * `issued_unix` (version 2), to out: n * CURSOR_LEN characters, back to
 * back, no NUL. Returns 0, or -1 (no AES, user_id too long). */
int cursor_encode_many(const uint8_t *secret, size_t secret_len, const char *user_id,
                       const sync_pos *pos, size_t n, int64_t issued_unix, char *out);

enum { CURSOR_OK = 0, CURSOR_BAD = -1 };

/* Verifies cursor text s[0..len) for user_id. On CURSOR_OK fills *pos and
 * *issued_unix (either may be NULL). Returns CURSOR_BAD for anything that is
 * not a cursor this server issued to this user. Constant-time MAC check. */
int cursor_decode(const uint8_t *secret, size_t secret_len, const char *user_id, const char *s,
                  size_t len, sync_pos *pos, int64_t *issued_unix);

/* Reads the position of a cursor this server issued, without checking its
 * MAC (for cursors the server itself just put in a payload). Returns 0, or
 * -1 when s is not shaped like a cursor. */
int cursor_peek(const char *s, size_t len, sync_pos *pos);

/* Parses an xid8 / bigint in decimal text (as Postgres prints them) into
 * *out. Returns 0, or -1 when s is not a plain unsigned decimal. */
int cursor_parse_u64(const char *s, uint64_t *out);

#endif
