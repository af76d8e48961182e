/* media_store.c — content-addressed media files and streamed uploads
 * (media_store.h). One file operation at a time per upload, each on the
 * libuv thread pool; the reactor only copies, hashes and sniffs. */
#include "media/media_store.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/b64url.h"
#include "base/config.h"
#include "base/util.h"

#define BUF_CAP (256 * 1024)    /* each of the two write buffers */
#define WRITE_MIN (128 * 1024)  /* write when a buffer holds this much */
#define BUSY_AT (BUF_CAP - 64 * 1024 - 1024) /* past this: tell the source to wait */
#define HEAD_MAX (64 * 1024)    /* bytes kept for sniffing */

enum { ST_OPEN, ST_IDLE, ST_WRITE, ST_FSYNC, ST_CLOSE, ST_MKDIR, ST_RENAME, ST_UNLINK, ST_DONE };

struct media_upload {
    reactor *r;
    uv_fs_t fs;
    int op;           /* the operation in flight (ST_*), or ST_IDLE */
    uv_file fd;       /* -1 until open */
    bool finishing, aborted, done;
    int err;
    char tmp[1024], final[1024];
    char *fill, *wbuf; /* the buffer being filled, the one being written */
    size_t flen, wlen, woff;
    uint64_t file_off, size;
    EVP_MD_CTX *md;
    uint8_t head[HEAD_MAX];
    size_t head_len;
    sniff_ogg ogg;
    bool ogg_checked, ogg_on;
    bool want_ready;
    sniff_info info;
    char sha[65];
    media_upload_fn ready, done_fn;
    void *arg;
};

int media_store_init(char *err, size_t cap)
{
    char tmp[1024];
    if (!g_config.media_dir[0]) {
        snprintf(err, cap, "SB_MEDIA_DIR is empty");
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s/tmp", g_config.media_dir);
    if ((mkdir(g_config.media_dir, 0700) != 0 && errno != EEXIST) || (mkdir(tmp, 0700) != 0 && errno != EEXIST)) {
        snprintf(err, cap, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

void media_store_path(const char *sha, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%.2s/%s", g_config.media_dir, sha, sha);
}

bool media_store_id_ok(const char *s)
{
    if (!s || strlen(s) != MEDIA_ID_LEN) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return false;
    return true;
}

int media_store_new_id(char *out)
{
    uint8_t raw[16];
    if (util_random_bytes(raw, sizeof raw) != 0) return -1;
    char *s = b64url_encode(raw, sizeof raw);
    if (!s || strlen(s) != MEDIA_ID_LEN) {
        free(s);
        return -1;
    }
    memcpy(out, s, MEDIA_ID_LEN + 1);
    free(s);
    return 0;
}

static void step(media_upload *u);
static void on_fs(uv_fs_t *req);

static void upload_free(media_upload *u)
{
    EVP_MD_CTX_free(u->md);
    free(u->fill);
    free(u->wbuf);
    free(u);
}

media_upload *media_upload_new(reactor *r, media_upload_fn ready, media_upload_fn done, void *arg)
{
    media_upload *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->r = r;
    u->fd = -1;
    u->ready = ready;
    u->done_fn = done;
    u->arg = arg;
    u->fill = malloc(BUF_CAP);
    u->wbuf = malloc(BUF_CAP);
    u->md = EVP_MD_CTX_new();
    uint8_t rnd[12];
    char hex[25];
    if (!u->fill || !u->wbuf || !u->md || EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1 ||
        util_random_bytes(rnd, sizeof rnd) != 0) {
        upload_free(u);
        return NULL;
    }
    util_hex_encode(rnd, sizeof rnd, hex);
    snprintf(u->tmp, sizeof u->tmp, "%s/tmp/%s.part", g_config.media_dir, hex);
    sniff_ogg_init(&u->ogg);
    u->op = ST_OPEN;
    if (uv_fs_open(&r->loop, &u->fs, u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600, on_fs) != 0) {
        upload_free(u);
        return NULL;
    }
    u->fs.data = u;
    return u;
}

int media_upload_failed(const media_upload *u) { return u->err; }
uint64_t media_upload_size(const media_upload *u) { return u->size; }
const char *media_upload_sha256(const media_upload *u) { return u->sha; }
const sniff_info *media_upload_info(const media_upload *u) { return &u->info; }

int64_t media_upload_duration_ms(const media_upload *u)
{
    return u->info.opus ? sniff_ogg_opus_ms(&u->ogg, u->info.pre_skip) : -1;
}

int media_upload_feed(media_upload *u, const void *p, size_t n)
{
    if (u->err) return -1;
    if (!n) return 0;
    if (u->flen + n > BUF_CAP) { /* the source overran its allowance: grow */
        size_t cap = u->flen + n;
        char *nb = realloc(u->fill, cap);
        if (!nb) {
            u->err = UV_ENOMEM;
            return -1;
        }
        u->fill = nb;
    }
    memcpy(u->fill + u->flen, p, n);
    u->flen += n;
    EVP_DigestUpdate(u->md, p, n);
    if (u->head_len < HEAD_MAX) {
        size_t k = HEAD_MAX - u->head_len < n ? HEAD_MAX - u->head_len : n;
        memcpy(u->head + u->head_len, p, k);
        u->head_len += k;
    }
    if (!u->ogg_checked && u->head_len >= 4) { /* everything so far is in the head */
        u->ogg_checked = true;
        u->ogg_on = !memcmp(u->head, "OggS", 4);
        if (u->ogg_on) sniff_ogg_feed(&u->ogg, u->head, u->head_len);
        if (u->ogg_on && u->head_len < u->size + n) /* (cannot happen: 4 < HEAD_MAX) */
            sniff_ogg_feed(&u->ogg, (const uint8_t *)p + (u->head_len - u->size), u->size + n - u->head_len);
    } else if (u->ogg_on) {
        sniff_ogg_feed(&u->ogg, p, n);
    }
    u->size += n;
    if (u->op == ST_IDLE) step(u);
    if (u->flen >= BUSY_AT) {
        u->want_ready = true;
        return 1;
    }
    return 0;
}

void media_upload_finish(media_upload *u)
{
    u->finishing = true;
    if (u->op == ST_IDLE) {
        step(u);
    } else if (u->op == ST_DONE && u->done_fn) { /* failed earlier: report it now */
        u->finishing = false;
        u->done_fn(u, u->arg);
    }
}

void media_upload_abort(media_upload *u)
{
    u->aborted = true;
    u->ready = NULL;
    u->done_fn = NULL;
    if (u->op == ST_IDLE || u->op == ST_DONE) step(u);
}

/* Starts the next file operation, or reports. Runs with no op in flight. */
static void step(media_upload *u)
{
    uv_loop_t *loop = &u->r->loop;
    int rc = 0;
    if (u->op == ST_DONE) { /* abort after done: only freeing is left */
        upload_free(u);
        return;
    }
    if (u->aborted || (u->err && u->op != ST_UNLINK)) {
        /* close the file, then delete it, then free */
        if (u->fd >= 0) {
            u->op = ST_CLOSE;
            uv_file fd = u->fd;
            u->fd = -1;
            rc = uv_fs_close(loop, &u->fs, fd, on_fs);
        } else if (u->op != ST_UNLINK && u->op != ST_OPEN) {
            u->op = ST_UNLINK;
            rc = uv_fs_unlink(loop, &u->fs, u->tmp, on_fs);
        } else {
            /* unlinked (or never opened): done */
            if (u->aborted) {
                upload_free(u);
                return;
            }
            u->op = ST_DONE;
            media_upload_fn f = u->want_ready ? u->ready : NULL;
            if (f) {
                u->want_ready = false;
                f(u, u->arg);
            }
            if (u->finishing && u->done_fn) {
                u->finishing = false;
                u->done_fn(u, u->arg);
            }
            return;
        }
        if (rc != 0) { /* cannot even queue: give up on the file */
            u->op = ST_UNLINK;
            uv_fs_req_cleanup(&u->fs);
            if (u->aborted) upload_free(u);
        }
        return;
    }
    if (u->flen && (u->flen >= WRITE_MIN || u->finishing)) {
        char *t = u->wbuf;
        u->wbuf = u->fill;
        u->wlen = u->flen;
        u->woff = 0;
        u->fill = t;
        u->flen = 0;
        u->op = ST_WRITE;
        uv_buf_t b = uv_buf_init(u->wbuf, (unsigned)u->wlen);
        rc = uv_fs_write(loop, &u->fs, u->fd, &b, 1, (int64_t)u->file_off, on_fs);
    } else if (u->finishing) {
        u->op = ST_FSYNC;
        rc = uv_fs_fsync(loop, &u->fs, u->fd, on_fs);
    } else {
        u->op = ST_IDLE;
        if (u->want_ready && u->ready) {
            u->want_ready = false;
            u->ready(u, u->arg);
        }
        return;
    }
    if (rc != 0) {
        u->err = rc;
        u->op = ST_IDLE;
        step(u);
    }
}

static void on_fs(uv_fs_t *req)
{
    media_upload *u = req->data;
    ssize_t res = req->result;
    int op = u->op;
    uv_fs_req_cleanup(req);
    uv_loop_t *loop = &u->r->loop;
    int rc = 0;
    if (res < 0 && op != ST_MKDIR && !u->err && !u->aborted) u->err = (int)res;
    switch (op) {
    case ST_OPEN:
        u->fd = res >= 0 ? (uv_file)res : -1;
        u->op = res >= 0 ? ST_IDLE : ST_UNLINK; /* not opened: nothing to delete either */
        break;
    case ST_WRITE:
        if (res > 0 && !u->aborted && !u->err) {
            u->woff += (size_t)res;
            u->file_off += (uint64_t)res;
            if (u->woff < u->wlen) { /* a short write: the rest */
                uv_buf_t b = uv_buf_init(u->wbuf + u->woff, (unsigned)(u->wlen - u->woff));
                if ((rc = uv_fs_write(loop, &u->fs, u->fd, &b, 1, (int64_t)u->file_off, on_fs)) == 0) return;
                u->err = rc;
            }
        }
        u->op = ST_IDLE;
        break;
    case ST_FSYNC:
        if (!u->err && !u->aborted) {
            u->op = ST_CLOSE;
            uv_file fd = u->fd;
            u->fd = -1;
            if ((rc = uv_fs_close(loop, &u->fs, fd, on_fs)) == 0) return;
            u->err = rc;
        }
        u->op = ST_IDLE;
        break;
    case ST_CLOSE:
        if (!u->err && !u->aborted && u->finishing) { /* the complete file: into place */
            unsigned char dg[32];
            unsigned int dl = 0;
            EVP_DigestFinal_ex(u->md, dg, &dl);
            util_hex_encode(dg, 32, u->sha);
            sniff_detect(u->head, u->head_len, &u->info);
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%.2s", g_config.media_dir, u->sha);
            media_store_path(u->sha, u->final, sizeof u->final);
            u->op = ST_MKDIR;
            if ((rc = uv_fs_mkdir(loop, &u->fs, dir, 0700, on_fs)) == 0) return;
            u->err = rc;
        }
        u->op = u->err || u->aborted ? ST_CLOSE : ST_IDLE; /* then unlink */
        break;
    case ST_MKDIR: /* EEXIST is fine; anything else shows at the rename */
        u->op = ST_RENAME;
        if ((rc = uv_fs_rename(loop, &u->fs, u->tmp, u->final, on_fs)) == 0) return;
        u->err = rc;
        u->op = ST_CLOSE;
        break;
    case ST_RENAME:
        if (!u->err) {
            u->op = ST_DONE;
            u->finishing = false;
            if (u->aborted) {
                upload_free(u); /* the file stays: content-addressed, the sweep collects it */
                return;
            }
            if (u->done_fn) u->done_fn(u, u->arg);
            return;
        }
        u->op = ST_CLOSE;
        break;
    case ST_UNLINK:
        break;
    }
    step(u);
}
