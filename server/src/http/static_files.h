/* static_files.h — serves the web client from g_config.web_root. */
#ifndef SB_STATIC_FILES_H
#define SB_STATIC_FILES_H

#include <stdbool.h>
#include "http/http.h"

/* Answers a GET/HEAD for a file under the web root ("/" is index.html) and
 * returns true; returns false (request untouched) when there is no such
 * file (also for hidden files and files reached through a symlink leaving
 * the root). Paths with "..", NUL or backslashes are refused with 400. */
bool static_files_serve(sb_req *req);
/* The same for file `path` ("/..." relative to folder `root`): the admin
 * listener's dashboard (SB_ADMIN_WEB_ROOT). */
bool static_files_serve_root(sb_req *req, const char *root, const char *path);

#endif
