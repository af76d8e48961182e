/* media_rest.c — POST /api/v1/media and GET|HEAD /api/v1/media/:id
 * (docs/api.md "Media").
 *
 * Upload: the route takes its body as a stream (router_add_stream): the
 * size limit is judged from Content-Length before anything is read, the
 * day's quota after one query, then the body (raw, or the one file part of
 * a multipart/form-data body) flows to media_store's writer, with reading
 * paused while the writer is busy. Past the limit the upload is cut (413,
 * temp file deleted); a client that goes away leaves no file.
 *
 * Download: one query checks access (sb_media_readable: 404 for anyone who
 * may not read it, the same answer as for an id that does not exist) and
 * gives the content's hash, type and size; conditional requests (ETag from
 * the SHA-256, If-None-Match, If-Range) and Range (one range: 206; several:
 * multipart/byteranges; unsatisfiable: 416) are answered from those. The
 * file is read on the thread pool into CHUNK-sized buffers, the next read
 * waiting until the client has taken all but LOW bytes, so a slow reader
 * holds a bounded amount of memory. Only sniffed images, audio and video
 * are served inline; every response carries nosniff and a sandboxing CSP. */
#include <ctype.h>
#include <fcntl.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/config.h"
#include "base/id.h"
#include "base/log.h"
#include "base/sb_buf.h"
#include "base/util.h"
#include "http/rest.h"
#include "http/router.h"
#include "media/media.h"
#include "media/media_store.h"
#include "media/multipart.h"
#include "media/range.h"
#include "net/reactor.h"
#include "store/db.h"

#define CHUNK (128 * 1024)     /* bytes per file read (32 downloads hold ~8 MiB: P11) */
#define LOW (128 * 1024)       /* read on when at most this much is queued */
#define MULTIPART_SLACK 65536  /* multipart framing allowed on top of the file */

/* ------------------------------------------------------------------------ */
/* Upload                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct up_job {
    sb_req *req;
    db_pool *db;
    media_upload *u;
    char user[72];
    char id[MEDIA_ID_LEN + 1];
    char filename[256];
    uint64_t limit;      /* file bytes allowed (size limit or what is left of the quota) */
    bool quota_bound;    /* limit is the quota's */
    uint64_t raw;        /* body bytes received */
    uint64_t file_bytes; /* file bytes received */
    bool is_multipart;
    multipart mp;
    int file_parts;
    bool in_file;
    int fail_status;     /* set by a multipart callback */
    bool paused;
    char sha[65];
    sniff_info info;
    int64_t duration_ms;
} up_job;

static void up_free(up_job *j)
{
    if (j->u) media_upload_abort(j->u);
    free(j);
}

/* Keeps the part of a client-given name after the last slash, without
 * control characters, quotes or backslashes; at most 255 bytes of UTF-8. */
static void clean_filename(const char *in, char *out, size_t cap)
{
    const char *s = in;
    for (const char *p = in; *p; p++)
        if (*p == '/' || *p == '\\') s = p + 1;
    size_t o = 0;
    for (; *s && o + 1 < cap && o < 255; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') continue;
        out[o++] = (char)c;
    }
    while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80) o--; /* no cut code point */
    if (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0xC0) o--;
    out[o] = 0;
    if (!util_utf8_valid((const uint8_t *)out, o)) out[0] = 0;
    if (!strcmp(out, ".") || !strcmp(out, "..")) out[0] = 0;
}

/* Answers an upload that cannot go on, and ends it (the body, if still
 * arriving, is not read: the connection closes after the answer). */
static void up_fail(up_job *j, int status, const char *code, const char *msg)
{
    sb_req *req = j->req;
    if (status == 413) {
        json_t *d = json_pack("{s:I}", "max_bytes", (json_int_t)g_config.media_max_bytes);
        http_respond_error(req, 413, code, msg, d);
    } else if (status == 429) {
        http_respond_error_h(req, 429, code, msg, NULL, "Retry-After: 3600\r\n");
    } else {
        http_respond_error(req, status, code, msg, NULL);
    }
    up_free(j);
}

/* Answers an upload stopped with status (413, 429, 400 or 500). */
static void up_fail_status(up_job *j, int status)
{
    if (status == 429) up_fail(j, 429, "rate_limited", "daily media upload quota exceeded");
    else if (status == 413) up_fail(j, 413, "payload_too_large", "the file is larger than the upload limit");
    else if (status == 400) up_fail(j, 400, "bad_request", "malformed multipart/form-data body (it needs exactly one file part)");
    else up_fail(j, 500, "internal", "the file could not be stored");
}

/* File bytes: counted against the limit, then to the writer. Returns 0, or
 * the status to answer with (nothing is answered here). */
static int up_file_data(up_job *j, const uint8_t *p, size_t n)
{
    j->file_bytes += n;
    if (j->file_bytes > j->limit) return j->quota_bound ? 429 : 413;
    int rc = media_upload_feed(j->u, p, n);
    if (rc < 0) return 500;
    if (rc == 1 && !j->paused) {
        j->paused = true;
        http_body_pause(j->req);
    }
    return 0;
}

static int mp_part(void *arg, const char *name, const char *filename, const char *ctype)
{
    (void)ctype; /* never trusted: the type is sniffed */
    up_job *j = arg;
    bool file = filename[0] || !strcmp(name, "file");
    j->in_file = false;
    if (!file) return 0; /* other fields are ignored */
    if (++j->file_parts > 1) {
        j->fail_status = 400;
        return -1;
    }
    j->in_file = true;
    if (filename[0]) clean_filename(filename, j->filename, sizeof j->filename);
    return 0;
}

static int mp_data(void *arg, const uint8_t *p, size_t n)
{
    up_job *j = arg;
    if (!j->in_file) return 0;
    j->fail_status = up_file_data(j, p, n);
    return j->fail_status ? -1 : 0;
}

static int mp_end(void *arg)
{
    ((up_job *)arg)->in_file = false;
    return 0;
}

static const multipart_cb g_mp_cb = {mp_part, mp_data, mp_end};

static void inserted(const PGresult *res, const char *err, void *arg)
{
    up_job *j = arg;
    sb_req *req = j->req;
    if (!res || err || PQntuples(res) != 1) {
        rest_db_error(req, res, err);
    } else {
        json_t *m = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        if (m) http_respond_json(req, 201, json_pack("{s:o}", "media", m));
        else http_respond_error(req, 500, "internal", "bad result", NULL);
    }
    up_free(j);
}

static void up_done(media_upload *u, void *arg)
{
    up_job *j = arg;
    if (media_upload_failed(u)) {
        log_msg(LOG_ERROR, "media upload failed", "error", json_string(uv_strerror(media_upload_failed(u))), NULL);
        up_fail(j, 500, "internal", "the file could not be stored");
        return;
    }
    memcpy(j->sha, media_upload_sha256(u), 65);
    j->info = *media_upload_info(u);
    j->duration_ms = media_upload_duration_ms(u);
    char size[24], w[16], h[16], dur[24];
    snprintf(size, sizeof size, "%llu", (unsigned long long)media_upload_size(u));
    snprintf(w, sizeof w, "%d", j->info.width);
    snprintf(h, sizeof h, "%d", j->info.height);
    snprintf(dur, sizeof dur, "%lld", (long long)j->duration_ms);
    const char *p[9] = {j->id, j->user, j->sha, j->info.mime, size, j->info.width ? w : NULL,
                        j->info.height ? h : NULL, j->duration_ms >= 0 ? dur : NULL,
                        j->filename[0] ? j->filename : NULL};
    db_query(j->db,
             "INSERT INTO media (id, owner_id, sha256, mime, size, width, height, duration_ms, filename)"
             " VALUES ($1, $2::int8, $3, $4, $5::int8, $6::int, $7::int, $8::int8, $9)"
             " RETURNING jsonb_strip_nulls(jsonb_build_object('id', id, 'mime', mime, 'size', size,"
             " 'sha256', sha256, 'width', width, 'height', height, 'duration_ms', duration_ms,"
             " 'filename', filename))::text",
             9, p, inserted, j);
}

static void up_ready(media_upload *u, void *arg)
{
    up_job *j = arg;
    if (media_upload_failed(u)) {
        up_fail(j, 500, "internal", "the file could not be stored");
        return;
    }
    if (j->paused) {
        j->paused = false;
        http_body_resume(j->req); /* may deliver more at once */
    }
}

static void up_body(sb_req *req, int ev, const char *data, size_t len, void *arg)
{
    up_job *j = arg;
    (void)req;
    if (ev == HTTP_BODY_ABORT) { /* the client went away: nothing is kept */
        http_respond(j->req, 400, NULL, NULL, 0, NULL); /* only frees */
        up_free(j);
        return;
    }
    if (ev == HTTP_BODY_END) {
        if (j->is_multipart && (!multipart_done(&j->mp) || j->file_parts != 1)) {
            up_fail(j, 400, "bad_request", "multipart/form-data needs exactly one file part");
            return;
        }
        if (j->file_bytes == 0) {
            up_fail(j, 400, "bad_request", "the file is empty");
            return;
        }
        media_upload_finish(j->u); /* up_done follows */
        return;
    }
    j->raw += len;
    if (!j->is_multipart) {
        int st = up_file_data(j, (const uint8_t *)data, len);
        if (st) up_fail_status(j, st);
        return;
    }
    if (j->raw > j->limit + MULTIPART_SLACK) {
        up_fail_status(j, j->quota_bound ? 429 : 413);
        return;
    }
    if (multipart_feed(&j->mp, (const uint8_t *)data, len) != 0)
        up_fail_status(j, j->fail_status ? j->fail_status : 400);
}

static void quota_done(const PGresult *res, const char *err, void *arg)
{
    up_job *j = arg;
    sb_req *req = j->req;
    if (!res || err || PQntuples(res) != 1) {
        rest_db_error(req, res, err);
        j->req = NULL;
        up_free(j);
        return;
    }
    if (!req->conn) { /* gone while we asked */
        http_respond(req, 400, NULL, NULL, 0, NULL);
        up_free(j);
        return;
    }
    unsigned long long used = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    j->limit = g_config.media_max_bytes;
    uint64_t q = g_config.media_quota_bytes;
    if (q) {
        uint64_t left = used >= q ? 0 : q - used;
        const char *cl = http_req_header(req, "content-length");
        unsigned long long want = cl ? strtoull(cl, NULL, 10) : 1;
        if (left == 0 || (cl && want > left + (j->is_multipart ? MULTIPART_SLACK : 0))) {
            up_fail(j, 429, "rate_limited", "daily media upload quota exceeded");
            return;
        }
        if (left < j->limit) {
            j->limit = left;
            j->quota_bound = true;
        }
    }
    j->u = media_upload_new(req->r, up_ready, up_done, j);
    if (!j->u) {
        up_fail(j, 500, "internal", "the file could not be stored");
        return;
    }
    http_body_read(req, up_body, j);
}

/* POST /api/v1/media (a streamed body) */
static void h_upload(sb_req *req)
{
    if (!req->body_streamed) {
        http_respond_error(req, 400, "bad_request", "upgrade requests cannot upload", NULL);
        return;
    }
    if (!rest_auth(req)) return;
    if (!id_parse(req->auth.user_id)) {
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    const char *cl = http_req_header(req, "content-length");
    if (cl) {
        char *end = NULL;
        unsigned long long n = strtoull(cl, &end, 10);
        if (n > g_config.media_max_bytes + 0ULL) {
            json_t *d = json_pack("{s:I}", "max_bytes", (json_int_t)g_config.media_max_bytes);
            http_respond_error(req, 413, "payload_too_large", "the file is larger than the upload limit", d);
            return;
        }
    }
    db_pool *db = req->r ? db_of(req->r) : NULL;
    if (!db) {
        rest_unavailable(req);
        return;
    }
    up_job *j = calloc(1, sizeof *j);
    if (!j || media_store_new_id(j->id) != 0) {
        free(j);
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    j->req = req;
    j->db = db;
    snprintf(j->user, sizeof j->user, "%s", req->auth.user_id);
    const char *ct = http_req_header(req, "content-type");
    if (ct && !strncasecmp(ct, "multipart/", 10)) {
        if (multipart_init(&j->mp, ct, &g_mp_cb, j) != 0) {
            free(j);
            http_respond_error(req, 400, "bad_request", "multipart uploads must be multipart/form-data with a boundary", NULL);
            return;
        }
        j->is_multipart = true;
    }
    const char *fn = http_req_header(req, "x-filename");
    if (fn && !j->is_multipart) {
        char *dec = util_url_decode(fn, strlen(fn), false);
        if (dec) clean_filename(dec, j->filename, sizeof j->filename);
        free(dec);
    }
    const char *p[1] = {j->user};
    db_query(db,
             "SELECT COALESCE(sum(size), 0)::text FROM media"
             " WHERE owner_id = $1::int8 AND created_at > now() - interval '24 hours'",
             1, p, quota_done, j);
}

/* ------------------------------------------------------------------------ */
/* Download                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct seg {
    char *prefix;   /* text before the bytes (multipart part head), or NULL */
    uint64_t off, len;
} seg;

typedef struct down_job {
    sb_req *req;
    reactor *r;
    uv_fs_t fs;
    uv_file fd;
    char id[MEDIA_ID_LEN + 1];
    char user[72];
    char sha[65], mime[128], filename[256];
    uint64_t size;
    seg segs[RANGE_MAX + 1];
    int nseg, cur;
    uint64_t done_in_seg;
    char *trailer;  /* after the last segment (multipart), or NULL */
    sb_buf *rbuf;   /* a read in flight */
    bool ended;
} down_job;

static void down_free(down_job *d)
{
    for (int i = 0; i < d->nseg; i++) free(d->segs[i].prefix);
    free(d->trailer);
    if (d->rbuf) sb_buf_unref(d->rbuf);
    free(d);
}

static void on_closed(uv_fs_t *fs)
{
    uv_fs_req_cleanup(fs);
    down_free(fs->data);
}

/* Ends the download (cleanly or not) and closes the file. */
static void down_finish(down_job *d, bool ok)
{
    if (d->req) {
        if (ok) http_stream_end(d->req);
        else http_stream_abort(d->req);
        d->req = NULL;
    }
    if (d->fd >= 0) {
        uv_file fd = d->fd;
        d->fd = -1;
        d->fs.data = d;
        if (uv_fs_close(&d->r->loop, &d->fs, fd, on_closed) == 0) return;
    }
    down_free(d);
}

static void pump(down_job *d);

static void drained(sb_req *req, void *arg)
{
    down_job *d = arg;
    if (!req->conn) {
        down_finish(d, false);
        return;
    }
    pump(d);
}

static void on_read(uv_fs_t *fs)
{
    down_job *d = fs->data;
    ssize_t n = fs->result;
    uv_fs_req_cleanup(fs);
    sb_buf *b = d->rbuf;
    d->rbuf = NULL;
    if (!d->req->conn || n <= 0) { /* gone, or the file shrank: never a short-but-complete body */
        if (n <= 0 && d->req->conn)
            log_msg(LOG_ERROR, "media read failed", "id", json_string(d->id), "error",
                    json_string(n < 0 ? uv_strerror((int)n) : "unexpected end of file"), NULL);
        sb_buf_unref(b);
        down_finish(d, false);
        return;
    }
    b->len = (uint32_t)n;
    int rc = http_stream_send(d->req, b);
    sb_buf_unref(b);
    if (rc != 0) {
        down_finish(d, false);
        return;
    }
    d->done_in_seg += (uint64_t)n;
    pump(d);
}

/* Sends what comes next: a part head, file bytes (one read), the trailer. */
static void pump(down_job *d)
{
    sb_req *req = d->req;
    for (;;) {
        if (d->cur >= d->nseg) {
            if (d->trailer && http_stream_write(req, d->trailer, strlen(d->trailer)) != 0) {
                down_finish(d, false);
                return;
            }
            down_finish(d, true);
            return;
        }
        seg *s = &d->segs[d->cur];
        if (s->prefix) {
            if (http_stream_write(req, s->prefix, strlen(s->prefix)) != 0) {
                down_finish(d, false);
                return;
            }
            free(s->prefix);
            s->prefix = NULL;
        }
        if (d->done_in_seg >= s->len) {
            d->cur++;
            d->done_in_seg = 0;
            continue;
        }
        break;
    }
    if (http_stream_queued(req) > LOW) {
        http_stream_wait(req, LOW, drained, d);
        return;
    }
    seg *s = &d->segs[d->cur];
    uint64_t left = s->len - d->done_in_seg;
    size_t want = left < CHUNK ? (size_t)left : CHUNK;
    d->rbuf = sb_buf_new(want);
    if (!d->rbuf) {
        down_finish(d, false);
        return;
    }
    uv_buf_t ub = uv_buf_init(d->rbuf->data + d->rbuf->start, (unsigned)want);
    d->fs.data = d;
    if (uv_fs_read(&d->r->loop, &d->fs, d->fd, &ub, 1, (int64_t)(s->off + d->done_in_seg), on_read) != 0) {
        down_finish(d, false);
    }
}

/* True if header `h` (If-None-Match / If-Range style list) names etag;
 * weak: W/ prefixes count (If-None-Match uses the weak comparison). */
static bool etag_listed(const char *h, const char *etag, bool weak)
{
    if (!h) return false;
    size_t el = strlen(etag);
    const char *s = h;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',') s++;
        if (!*s) break;
        if (*s == '*' && weak) return true;
        if (weak && !strncmp(s, "W/", 2)) s += 2;
        if (!strncmp(s, etag, el) && (s[el] == 0 || s[el] == ',' || s[el] == ' ' || s[el] == '\t')) return true;
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c;
    }
    return false;
}

/* Content-Disposition for the file: inline only for sniffed images, audio
 * and video; an ASCII filename and the UTF-8 one (RFC 6266). */
static void disposition(const down_job *d, char *out, size_t cap)
{
    char ascii[300], enc[800];
    const char *name = d->filename[0] ? d->filename : d->id;
    size_t a = 0, e = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && a + 1 < sizeof ascii; p++)
        ascii[a++] = (isalnum(*p) || strchr("._- ()", *p)) ? (char)*p : '_';
    ascii[a] = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && e + 4 < sizeof enc; p++) {
        if (isalnum(*p) || strchr("!#$&+-.^_`|~", *p)) enc[e++] = (char)*p;
        else e += (size_t)snprintf(enc + e, sizeof enc - e, "%%%02X", *p);
    }
    enc[e] = 0;
    snprintf(out, cap, "content-disposition: %s; filename=\"%s\"; filename*=UTF-8''%s\r\n",
             sniff_inline(d->mime) ? "inline" : "attachment", ascii, enc);
}

static void opened(uv_fs_t *fs);

static void found(const PGresult *res, const char *err, void *arg)
{
    down_job *d = arg;
    sb_req *req = d->req;
    if (!res || err) {
        d->req = NULL;
        rest_db_error(req, res, err);
        down_free(d);
        return;
    }
    if (PQntuples(res) != 1) {
        d->req = NULL;
        http_respond_error(req, 404, "not_found", "no such media", NULL);
        down_free(d);
        return;
    }
    snprintf(d->sha, sizeof d->sha, "%s", PQgetvalue(res, 0, 0));
    snprintf(d->mime, sizeof d->mime, "%s", PQgetvalue(res, 0, 1));
    d->size = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
    snprintf(d->filename, sizeof d->filename, "%s", PQgetvalue(res, 0, 3));
    char path[1024];
    media_store_path(d->sha, path, sizeof path);
    d->fs.data = d;
    if (uv_fs_open(&d->r->loop, &d->fs, path, O_RDONLY | O_CLOEXEC, 0, opened) != 0) {
        d->req = NULL;
        http_respond_error(req, 500, "internal", "the file cannot be read", NULL);
        down_free(d);
    }
}

static void opened(uv_fs_t *fs)
{
    down_job *d = fs->data;
    sb_req *req = d->req;
    ssize_t fd = fs->result;
    uv_fs_req_cleanup(fs);
    if (fd < 0) {
        log_msg(LOG_ERROR, "media file missing", "id", json_string(d->id), "error",
                json_string(uv_strerror((int)fd)), NULL);
        d->req = NULL;
        http_respond_error(req, 500, "internal", "the file cannot be read", NULL);
        down_free(d);
        return;
    }
    d->fd = (uv_file)fd;
    char etag[80], common[1600], cd[1200];
    snprintf(etag, sizeof etag, "\"%s\"", d->sha);
    disposition(d, cd, sizeof cd);
    snprintf(common, sizeof common,
             "etag: %s\r\ncache-control: private, max-age=86400\r\naccept-ranges: bytes\r\n"
             "x-content-type-options: nosniff\r\n"
             "content-security-policy: sandbox; default-src 'none'\r\n%s",
             etag, cd);
    if (!req->conn) {
        down_finish(d, false);
        return;
    }
    if (etag_listed(http_req_header(req, "if-none-match"), etag, true)) {
        d->req = NULL;
        http_respond(req, 304, NULL, NULL, 0, common);
        down_finish(d, true);
        return;
    }
    const char *range = http_req_header(req, "range");
    const char *ifr = http_req_header(req, "if-range");
    if (ifr && !etag_listed(ifr, etag, false)) range = NULL; /* changed (or a date): the whole */
    range_span sp[RANGE_MAX];
    int n = 0, rk = req->method == HTTP_GET ? range_parse(range, d->size, sp, &n) : RANGE_FULL;
    char extra[1800];
    if (rk == RANGE_UNSATISFIABLE) {
        char h[1800];
        snprintf(h, sizeof h, "%scontent-range: bytes */%llu\r\n", common, (unsigned long long)d->size);
        d->req = NULL;
        http_respond_error_h(req, 416, "range_not_satisfiable", "no requested range overlaps the file",
                             NULL, h);
        down_finish(d, true);
        return;
    }
    int status = 200;
    uint64_t total = d->size;
    const char *ctype = d->mime;
    char ctbuf[160];
    if (rk == RANGE_PARTIAL && n == 1) {
        status = 206;
        d->segs[0] = (seg){NULL, sp[0].start, sp[0].len};
        d->nseg = 1;
        total = sp[0].len;
        snprintf(extra, sizeof extra, "%scontent-range: bytes %llu-%llu/%llu\r\n", common,
                 (unsigned long long)sp[0].start, (unsigned long long)(sp[0].start + sp[0].len - 1),
                 (unsigned long long)d->size);
    } else if (rk == RANGE_PARTIAL) {
        status = 206;
        uint8_t rnd[12];
        char bnd[25];
        util_random_bytes(rnd, sizeof rnd);
        util_hex_encode(rnd, sizeof rnd, bnd);
        total = 0;
        for (int i = 0; i < n; i++) {
            char head[400];
            int hl = snprintf(head, sizeof head,
                              "\r\n--%s\r\ncontent-type: %s\r\ncontent-range: bytes %llu-%llu/%llu\r\n\r\n",
                              bnd, d->mime, (unsigned long long)sp[i].start,
                              (unsigned long long)(sp[i].start + sp[i].len - 1), (unsigned long long)d->size);
            d->segs[i] = (seg){strdup(head), sp[i].start, sp[i].len};
            d->nseg = i + 1;
            if (!d->segs[i].prefix) {
                d->req = NULL;
                http_respond_error(req, 500, "internal", "out of memory", NULL);
                down_finish(d, false);
                return;
            }
            total += (uint64_t)hl + sp[i].len;
        }
        char tr[64];
        int tl = snprintf(tr, sizeof tr, "\r\n--%s--\r\n", bnd);
        d->trailer = strdup(tr);
        total += (uint64_t)tl;
        snprintf(ctbuf, sizeof ctbuf, "multipart/byteranges; boundary=%s", bnd);
        ctype = ctbuf;
        snprintf(extra, sizeof extra, "%s", common);
    } else {
        d->segs[0] = (seg){NULL, 0, d->size};
        d->nseg = 1;
        snprintf(extra, sizeof extra, "%s", common);
    }
    if (http_stream_begin_len(req, status, ctype, extra, total) != 0) {
        down_finish(d, false);
        return;
    }
    if (req->method == HTTP_HEAD) {
        down_finish(d, true);
        return;
    }
    pump(d);
}

/* GET|HEAD /api/v1/media/:id */
static void h_download(sb_req *req)
{
    if (!rest_auth(req)) return;
    if (req->nparams < 1 || !media_store_id_ok(req->params[0])) {
        http_respond_error(req, 404, "not_found", "no such media", NULL);
        return;
    }
    if (!id_parse(req->auth.user_id)) {
        http_respond_error(req, 401, "unauthorized", "this account no longer exists", NULL);
        return;
    }
    db_pool *db = req->r ? db_of(req->r) : NULL;
    if (!db) {
        rest_unavailable(req);
        return;
    }
    down_job *d = calloc(1, sizeof *d);
    if (!d) {
        http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    d->req = req;
    d->r = req->r;
    d->fd = -1;
    snprintf(d->id, sizeof d->id, "%s", req->params[0]);
    snprintf(d->user, sizeof d->user, "%s", req->auth.user_id);
    const char *p[2] = {d->id, d->user};
    db_query(db,
             "SELECT sha256, mime, size, COALESCE(filename, '') FROM media"
             " WHERE id = $1 AND sb_media_readable($2::int8, $1)",
             2, p, found, d);
}

int media_routes(void)
{
    char err[512];
    if (media_store_init(err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "media store", "error", json_string(err), NULL);
        return -1;
    }
    router_add_stream(HTTP_POST, "/api/v1/media", h_upload);
    router_add(HTTP_GET, "/api/v1/media/:id", h_download);
    return media_sweep_register();
}
