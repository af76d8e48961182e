/* media_store.h — media files on disk (docs/api.md "Media").
 *
 * Files are content-addressed: SB_MEDIA_DIR/<first two hex digits>/<sha256
 * hex>; identical uploads share one file. An upload streams into a temp
 * file under SB_MEDIA_DIR/tmp through libuv's file operations on the thread
 * pool (never a blocking write on a reactor), is hashed (SHA-256) and
 * sniffed as it streams, and is renamed into place only once complete and
 * fsynced: an aborted or failed upload leaves no file behind. Memory per
 * upload is bounded (two write buffers and a 64 KiB head for sniffing). */
#ifndef SB_MEDIA_STORE_H
#define SB_MEDIA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "media/sniff.h"
#include "net/reactor.h"

#define MEDIA_ID_LEN 22 /* base64url of 16 random bytes */

/* Creates SB_MEDIA_DIR and its tmp folder (blocking; at start, before the
 * reactors run). Returns 0, or -1 with a message in err. */
int media_store_init(char *err, size_t cap);
/* The path of the file holding content `sha256` (64 lower-case hex digits). */
void media_store_path(const char *sha256, char *out, size_t cap);
/* True if s is a media id this server issues (22 of [A-Za-z0-9_-]). */
bool media_store_id_ok(const char *s);
/* A fresh random media id into out[MEDIA_ID_LEN + 1]. Returns 0 or -1. */
int media_store_new_id(char *out);

typedef struct media_upload media_upload;
/* ready: the upload takes more data again (after media_upload_feed said
 * busy), or failed (media_upload_failed). done: media_upload_finish has
 * completed (see media_upload_failed and the result accessors). */
typedef void (*media_upload_fn)(media_upload *u, void *arg);

/* Starts an upload on reactor r (opens its temp file). NULL when out of
 * memory. */
media_upload *media_upload_new(reactor *r, media_upload_fn ready, media_upload_fn done, void *arg);
/* Takes the next bytes (copied). Returns 0 (send more), 1 (busy: at most
 * 64 KiB more may be fed, then wait for ready) or -1 (failed). */
int media_upload_feed(media_upload *u, const void *p, size_t n);
/* All bytes are in: writes the rest, fsyncs, renames into place, then
 * calls done. */
void media_upload_finish(media_upload *u);
/* Gives up: no callback runs any more; the temp file is deleted and u
 * freed once the operation in flight (if any) completes. Also frees an
 * upload after done. */
void media_upload_abort(media_upload *u);
/* Non-zero (a libuv error) once a file operation failed. */
int media_upload_failed(const media_upload *u);
/* Bytes fed so far. */
uint64_t media_upload_size(const media_upload *u);
/* After done: the hex SHA-256 (64 digits + NUL), what sniffing found and
 * the Ogg/Opus duration (-1 unknown). */
const char *media_upload_sha256(const media_upload *u);
const sniff_info *media_upload_info(const media_upload *u);
int64_t media_upload_duration_ms(const media_upload *u);

#endif
