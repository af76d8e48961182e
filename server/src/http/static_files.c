/* static_files.c — small static file server for the web client (files are
 * a few KiB: read whole, bounded by MAX_FILE).
 *
 * Safety: ".." and backslashes are refused (400); hidden files (a path
 * segment starting with '.') and files whose real path (symlinks resolved)
 * lies outside the web root are 404; an empty web root serves nothing.
 * Caching: every answer carries an ETag and "cache-control: no-cache", so
 * browsers revalidate (304) and pick up a new build at once. */
#include "http/static_files.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/config.h"

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
        {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".gif", "image/gif"},
        {".webp", "image/webp"}, {".woff2", "font/woff2"}, {".wasm", "application/wasm"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(dot, map[i][0]) == 0) return map[i][1];
    return "application/octet-stream";
}

/* True if a segment of path p starts with '.' (".git", ".env", ...). */
static bool has_hidden_segment(const char *p)
{
    for (const char *s = p; (s = strchr(s, '/')) != NULL; s++)
        if (s[1] == '.') return true;
    return false;
}

/* True if the real path of `full` (symlinks resolved) is inside the real
 * path of the web root. */
static bool inside_root(const char *web_root, const char *full)
{
    char root[PATH_MAX], real[PATH_MAX];
    if (!realpath(web_root, root) || !realpath(full, real)) return false;
    size_t n = strlen(root);
    if (n == 1) return true; /* the root is "/" */
    return strncmp(real, root, n) == 0 && real[n] == '/';
}

/* True if the If-None-Match header value lists etag (or is "*"); weak
 * validators ("W/...") compare by their opaque part, as RFC 9110 says. */
static bool etag_matches(const char *inm, const char *etag)
{
    size_t el = strlen(etag);
    const char *s = inm;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',') s++;
        if (!*s) break;
        if (*s == '*') return true;
        if (s[0] == 'W' && s[1] == '/') s += 2;
        const char *e = s;
        while (*e && *e != ',') e++;
        size_t n = (size_t)(e - s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        if (n == el && memcmp(s, etag, el) == 0) return true;
        s = e;
    }
    return false;
}

bool static_files_serve(sb_req *req) { return static_files_serve_root(req, g_config.web_root, req->path); }

bool static_files_serve_root(sb_req *req, const char *root, const char *p)
{
    if (strstr(p, "..") || strchr(p, '\\')) {
        http_respond_error(req, 400, "bad_request", "invalid path", NULL);
        return true;
    }
    if (!root[0] || !p[0] || has_hidden_segment(p)) return false;
    char full[1024];
    int n = snprintf(full, sizeof full, "%s%s%s", root, p,
                     p[strlen(p) - 1] == '/' ? "index.html" : "");
    if (n <= 0 || (size_t)n >= sizeof full) return false;
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE || !inside_root(root, full)) {
        close(fd);
        return false;
    }
    const char *mime = mime_for(full);
    char etag[64], hdrs[512];
    snprintf(etag, sizeof etag, "\"%lx-%lx\"", (unsigned long)st.st_mtime, (unsigned long)st.st_size);
    /* pages get a CSP: scripts, styles and sockets from this origin only; pictures
     * and voice notes also from blob: URLs (media is fetched with the token) */
    snprintf(hdrs, sizeof hdrs,
             "etag: %s\r\ncache-control: no-cache\r\nx-content-type-options: nosniff\r\n%s", etag,
             strncmp(mime, "text/html", 9) == 0
                 ? "content-security-policy: default-src 'self'; connect-src 'self' ws: wss:; "
                   "img-src 'self' data: blob:; media-src 'self' blob:; frame-ancestors 'none'\r\n"
                   "referrer-policy: no-referrer\r\n"
                 : "");
    const char *inm = http_req_header(req, "if-none-match");
    if (inm && etag_matches(inm, etag)) {
        close(fd);
        http_respond(req, 304, NULL, NULL, 0, hdrs);
        return true;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (got != st.st_size) {
        free(buf);
        http_respond_error(req, 500, "internal", "could not read file", NULL);
        return true;
    }
    http_respond(req, 200, mime, buf, (size_t)got, hdrs);
    free(buf);
    return true;
}
