/* fuzz_env.c — see fuzz_env.h. */
#include "fuzz_env.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include "app.h"
#include "base/config.h"
#include "base/log.h"
#include "base/token.h"
#include "http/http_conn.h"
#include "net/conn.h"
#include "net/reactor.h"
#include "net/tls.h"
#include "phoenix/longpoll.h"
#include "ws/ws.h"

static reactor g_r;
static uv_check_t g_check;
static uv_prepare_t g_prepare;
static int g_peer = -1;
static bool g_ready;

/* Runs the reactor's queued tasks (what on_wake does in reactor.c). */
static void run_tasks(void)
{
    for (int round = 0; round < 64; round++) {
        pthread_mutex_lock(&g_r.tasks_mu);
        reactor_task *t = g_r.tasks_head;
        g_r.tasks_head = g_r.tasks_tail = NULL;
        pthread_mutex_unlock(&g_r.tasks_mu);
        if (!t) return;
        while (t) {
            reactor_task *next = t->next;
            t->fn(t->arg);
            free(t);
            t = next;
        }
    }
}

static char g_media_dir[] = "/tmp/sb-fuzz-media-XXXXXX";

/* Removes the media folder at exit (nothing is stored there without a
 * database: only the empty folder and its tmp/ are left). */
static void media_dir_remove(void)
{
    char tmp[sizeof g_media_dir + 4];
    snprintf(tmp, sizeof tmp, "%s/tmp", g_media_dir);
    rmdir(tmp);
    rmdir(g_media_dir);
}

static void on_wake(uv_async_t *a) { run_tasks(); }
static void on_check(uv_check_t *h) { conn_flush_dirty(&g_r); }
static void on_prepare(uv_prepare_t *h) { conn_flush_dirty(&g_r); }

void fz_init(void)
{
    if (g_ready) return;
    setenv("SB_SECRET", FZ_SECRET, 1);
    setenv("SB_TEST_CHANNELS", "1", 1);
    setenv("SB_ARGON2_T", "1", 1);
    setenv("SB_ARGON2_M", "8", 1);
    setenv("SB_DATABASE_URL", "", 1);
    setenv("SB_REDIS_URL", "", 1);
    setenv("SB_LOG_LEVEL", "error", 1);
    /* every input connects anew from the same address: per-address limits
     * would refuse the upgrade after a while and make runs depend on history */
    setenv("SB_RATELIMIT_CONNECT_IP", "off", 1);
    setenv("SB_RATELIMIT_LOGIN_IP", "off", 1);
    setenv("SB_RATELIMIT_LOGIN_ACCOUNT", "off", 1);
    setenv("SB_RATELIMIT_SIGNUP_IP", "off", 1);
    setenv("SB_FCM_CREDENTIALS", "", 1);
    /* media_routes creates its folder: a fresh one per process, not the cwd */
    if (!mkdtemp(g_media_dir)) abort();
    atexit(media_dir_remove);
    setenv("SB_MEDIA_DIR", g_media_dir, 1);
    if (config_load(0, NULL) != 0) abort();
    log_set_level("error");
    signal(SIGPIPE, SIG_IGN);
    /* what `switchboard serve` registers (app.c, as main.c calls it) */
    if (app_register() != 0) abort();

    uv_loop_init(&g_r.loop);
    pthread_mutex_init(&g_r.tasks_mu, NULL);
    uv_async_init(&g_r.loop, &g_r.wake, on_wake);
    g_r.wake.data = &g_r;
    uv_unref((uv_handle_t *)&g_r.wake);
    uv_check_init(&g_r.loop, &g_check);
    uv_check_start(&g_check, on_check);
    uv_unref((uv_handle_t *)&g_check);
    uv_prepare_init(&g_r.loop, &g_prepare);
    uv_prepare_start(&g_prepare, on_prepare);
    uv_unref((uv_handle_t *)&g_prepare);
    /* the per-reactor modules, as main.c registers them (no database) */
    if (app_register_modules() != 0 || reactor_init_modules(&g_r) != 0) abort();
    reactor_all = &g_r;
    reactor_count = 1;
    reactor_adopt(&g_r);
    g_ready = true;
}

const char *fz_token(const char *user)
{
    static char tok[1024];
    char *t = token_mint((const uint8_t *)FZ_SECRET, strlen(FZ_SECRET), user, "fuzz-session",
                         4102444800LL /* 2100-01-01 */);
    if (!t || strlen(t) >= sizeof tok) abort();
    strcpy(tok, t);
    free(t);
    return tok;
}

void fz_open(bool admin)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
    sb_conn *c = calloc(1, sizeof *c);
    if (!c) abort();
    uv_tcp_init(&g_r.loop, &c->tcp);
    if (uv_tcp_open(&c->tcp, sv[0]) != 0) abort();
    c->tcp.data = c;
    c->r = &g_r;
    c->admin = admin;
    c->last_rx_ms = c->mark_ms = uv_now(&g_r.loop);
    c->next = g_r.conns; /* what conn_accept's list_add does */
    if (c->next) c->next->prev = c;
    g_r.conns = c;
    g_r.nconns++;
    g_peer = sv[1];
    if (http_conn_open(c) != 0) abort(); /* what conn_accept's opener does */
    if (!admin && tls_enabled() && tls_conn_start(c) != 0) abort(); /* as conn_accept does */
    c->read_paused = true;
    conn_resume_read(c); /* starts reading with conn.c's callbacks */
}

static void (*g_tap)(const char *data, size_t len);
void fz_tap(void (*fn)(const char *data, size_t len)) { g_tap = fn; }

/* Reads and drops what the server wrote (shown on stderr when FZ_DEBUG is
 * set, to check a seed). */
static void drain_peer(void)
{
    static int debug = -1;
    if (debug < 0) debug = getenv("FZ_DEBUG") != NULL;
    char buf[65536];
    for (int i = 0; i < 1024 && g_peer >= 0; i++) {
        ssize_t n = read(g_peer, buf, sizeof buf);
        if (n <= 0) return;
        if (debug) fwrite(buf, 1, (size_t)n, stderr);
        if (g_tap) g_tap(buf, (size_t)n);
    }
}

/* One bounded round of the loop: I/O, callbacks, flushes, queued tasks. */
static void pump(void)
{
    for (int i = 0; i < 4; i++) {
        uv_run(&g_r.loop, UV_RUN_NOWAIT);
        run_tasks();
        drain_peer();
    }
}

void fz_send(const void *data, size_t len)
{
    const char *p = data;
    for (int tries = 0; len > 0 && tries < 64; tries++) {
        ssize_t n = write(g_peer, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            break; /* the server closed its side */
        }
        pump();
    }
    pump();
}

void fz_send_chunked(const uint8_t *data, size_t len, uint8_t seed)
{
    size_t chunk = seed == 0 ? (len ? len : 1) : (size_t)seed;
    for (size_t off = 0; off < len && fz_is_open(); off += chunk)
        fz_send(data + off, len - off < chunk ? len - off : chunk);
}

bool fz_is_open(void) { return g_r.conns && !g_r.conns->closing; }

bool fz_is_ws(void) { return fz_is_open() && ws_active(g_r.conns); }

void fz_close(void)
{
    if (g_peer >= 0) {
        close(g_peer);
        g_peer = -1;
    }
    pump();
    if (g_r.conns && !g_r.conns->closing) conn_close(g_r.conns);
    for (int i = 0; i < 10000; i++) {
        run_tasks();
        longpoll_shutdown(&g_r);
        int alive = uv_run(&g_r.loop, UV_RUN_ONCE); /* waits for thread-pool work */
        pthread_mutex_lock(&g_r.tasks_mu);
        bool tasks = g_r.tasks_head != NULL;
        pthread_mutex_unlock(&g_r.tasks_mu);
        if (!alive && !tasks && !g_r.conns) break;
    }
    if (g_r.conns) {
        fprintf(stderr, "fuzz_env: a connection outlived its input\n");
        abort();
    }
}

void fz_tls_cert(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!k || !x) abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (!X509_sign(x, k, EVP_sha256())) abort();
    char cert[] = "/tmp/sb-fuzz-cert-XXXXXX", key[] = "/tmp/sb-fuzz-key-XXXXXX";
    int cf = mkstemp(cert), kf = mkstemp(key);
    FILE *c = cf >= 0 ? fdopen(cf, "w") : NULL, *f = kf >= 0 ? fdopen(kf, "w") : NULL;
    if (!c || !f || !PEM_write_X509(c, x) || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
        abort();
    fclose(c);
    fclose(f);
    snprintf(g_config.tls_cert, sizeof g_config.tls_cert, "%s", cert);
    snprintf(g_config.tls_key, sizeof g_config.tls_key, "%s", key);
    if (tls_init() != 0 || !tls_enabled()) abort();
    unlink(cert); /* loaded: the files are not needed any more */
    unlink(key);
    X509_free(x);
    EVP_PKEY_free(k);
}
