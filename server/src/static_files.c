/* static_files.c — small static file server for the web client (files are
 * a few KiB: read whole, bounded by MAX_FILE). */
#include "static_files.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"

#define MAX_FILE (8u << 20)

static const char *mime_for(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"}, {".svg", "image/svg+xml"},
        {".png", "image/png"}, {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json; charset=utf-8"}, {".webmanifest", "application/manifest+json"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(dot, map[i][0]) == 0) return map[i][1];
    return "application/octet-stream";
}

bool static_files_serve(sb_req *req)
{
    const char *p = req->path;
    if (strstr(p, "..") || strchr(p, '\\')) {
        sb_respond_error(req, 400, "bad_request", "invalid path", NULL);
        return true;
    }
    char full[1024];
    int n = snprintf(full, sizeof full, "%s%s%s", g_cfg.web_root, p,
                     p[strlen(p) - 1] == '/' ? "index.html" : "");
    if (n <= 0 || (size_t)n >= sizeof full) return false;
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
        close(fd);
        return false;
    }
    char etag[64], hdrs[256];
    snprintf(etag, sizeof etag, "\"%lx-%lx\"", (unsigned long)st.st_mtime, (unsigned long)st.st_size);
    snprintf(hdrs, sizeof hdrs,
             "etag: %s\r\ncache-control: no-cache\r\nx-content-type-options: nosniff\r\n", etag);
    const char *inm = sb_req_header(req, "if-none-match");
    if (inm && strcmp(inm, etag) == 0) {
        close(fd);
        sb_respond(req, 304, NULL, NULL, 0, hdrs);
        return true;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (got != st.st_size) {
        free(buf);
        sb_respond_error(req, 500, "internal", "could not read file", NULL);
        return true;
    }
    sb_respond(req, 200, mime_for(full), buf, (size_t)got, hdrs);
    free(buf);
    return true;
}
