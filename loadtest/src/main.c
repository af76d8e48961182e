/* main.c — sbload: a Phoenix Channels (V2 JSON) load generator.
 * Parses the options, then hands over to the parent (parent.c), which
 * forks the workers. See docs/loadtest.md for the scenarios. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sbload.h"

sbl_opts g_opt;
const scenario *g_scen;
char g_query_prefix[sizeof g_opt.path + 2];
extern char **g_conv_lines;
extern size_t g_nconv_lines;
int selftest_main(void);
int netref_main(int argc, char **argv);

static void usage(FILE *f)
{
    fprintf(f,
"usage: sbload --scenario NAME [options]        (sbload --self-test | --list)\n"
"       sbload --net-ref connect|write [options]  (the kernel's loopback floor, netref.c)\n"
"\n"
"target\n"
"  --url URL             ws://host:port/path or wss:// (TLS; default ws://127.0.0.1:4000/socket/websocket);\n"
"                        token=... and vsn=... are appended to its query\n"
"  --tls-ca FILE         wss://: trust these PEM certificates (default: the system's store);\n"
"                        the server's name or IP address is checked against its certificate\n"
"  --tls-insecure        wss://: no certificate verification\n"
"  --tls-ciphersuites S  wss://: TLS 1.3 cipher suites (OpenSSL syntax)\n"
"  --tls-groups G        wss://: key-exchange groups, e.g. X25519\n"
"  --tls-resume          wss://: offer the last session ticket the worker received (resumed\n"
"                        handshakes; tls_full / tls_resumed in the counters)\n"
"  --ports P[,P...]      spread connections over these server ports (default: the URL's)\n"
"  --sources A-B|A,B     bind client sockets to these local IPv4 addresses, round-robin\n"
"                        (e.g. 127.0.0.2-127.0.0.50: ~28k connections per source and port)\n"
"  --vsn V               serializer version query parameter (default 2.0.0)\n"
"load\n"
"  --conns N             connections (default 1000)\n"
"  --rate N              connects per second over all workers, 0 = as fast as accepted (default 0)\n"
"  --inflight N          connects+handshakes+joins in progress per worker (default 256)\n"
"  --procs P             worker processes (default: conns / %d rounded up)\n"
"  --duration S          hard stop for the whole run (default 300)\n"
"  --run S | --hold S    measured phase: hold (connections), publish (fanout), send (sends)\n"
"  --drain S             fanout: wait for in-flight deliveries after publishing (default 5)\n"
"  --connect-timeout S   per attempt, connect to join reply (default 30)\n"
"  --retries N           retries of a connection failing before its join (default 2)\n"
"  --heartbeat S         phoenix heartbeat interval (default 30, 0 = none)\n"
"phoenix\n"
"  --topic PATTERN       topic; {id} = connection index + --id-offset, {peer} = id^1\n"
"  --event NAME          event pushed by the scenario (fanout: shout, sends: message:send)\n"
"  --payload JSON        fanout: extra fields merged into each broadcast's payload\n"
"  --join-payload JSON   phx_join payload (default {})\n"
"  --id-offset N         added to the connection index for {id} (default 0)\n"
"  --user-pattern P      user id for minted tokens and presence keys (default {id})\n"
"  --user-file F         user ids, one per line: {user} = line {id}, {peeruser} = line {id}^1\n"
"  --token-secret S      mint tokens: b64url(claims).b64url(HMAC-SHA256(S, first part))\n"
"  --token T             a fixed token (may contain {id}); none of both: no token param\n"
"  --token-ttl S         minted token lifetime (default 86400)\n"
"  --sid S               minted token session id (default load)\n"
"fanout / soak\n"
"  --window K            broadcasts awaiting their reply at once (default 1)\n"
"  --count N             fanout: broadcasts; sends: sends per connection (0 = until --run)\n"
"  --pub-rate N          broadcasts per second, 0 = back to back (default 0)\n"
"  --pad BYTES           padding added to each broadcast payload (default 0)\n"
"sends\n"
"  --conv-pattern P      conversation id of connection {id} (default {peer})\n"
"  --conv-file F         conversation ids, one per line, line i for connection i\n"
"  --body TEXT           message body (default \"load test message\")\n"
"  --send-rate N         open loop: N sends/s in all, each connection's slots evenly spaced\n"
"                        (still one send outstanding per connection; a slot that comes\n"
"                        before the previous ack is sent at the ack and counted late);\n"
"                        latency from the slot. 0 = closed loop (default)\n"
"  --warmup S            with --send-rate: pace S s first without measuring (default 0);\n"
"                        calls: run S s first without measuring\n"
"calls\n"
"  --talk S              each connected call is held S s before the hangup, and the pairs'\n"
"                        first calls start evenly spread over the first S s, so that all\n"
"                        pairs are in a call at once (default 0: hang up at once)\n"
"report\n"
"  --server-pid PID[,PID...]  read the server's VmRSS (summed) for memory figures\n"
"  --progress S          progress line every S seconds on stderr (default 1, 0 = off)\n"
"  --quiet               no progress or worker notices\n"
"  --max-frame BYTES     largest frame accepted from the server (default 16 MiB)\n"
"  --wq-cap BYTES        outbound bytes queued per connection before dropping it (default 1 MiB)\n"
"\n"
"scenarios:\n",
            SBL_FD_PER_PROC);
    scenario_list(f);
}

static int die(const char *msg, const char *arg)
{
    fprintf(stderr, "sbload: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

static int parse_ipv4(const char *s, size_t n, uint32_t *out)
{
    char b[64];
    if (n >= sizeof b) return -1;
    memcpy(b, s, n);
    b[n] = 0;
    struct in_addr a;
    if (inet_pton(AF_INET, b, &a) != 1) return -1;
    *out = ntohl(a.s_addr);
    return 0;
}

static int parse_sources(const char *s)
{
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *dash = memchr(s, '-', n);
        uint32_t a, b;
        if (dash) {
            if (parse_ipv4(s, (size_t)(dash - s), &a) || parse_ipv4(dash + 1, n - (size_t)(dash - s) - 1, &b) ||
                b < a)
                return -1;
        } else {
            if (parse_ipv4(s, n, &a)) return -1;
            b = a;
        }
        for (uint64_t x = a; x <= b; x++) {
            if (g_opt.nsrc == SBL_MAX_SOURCES) return -1;
            struct sockaddr_in *sa = &g_opt.src[g_opt.nsrc++];
            memset(sa, 0, sizeof *sa);
            sa->sin_family = AF_INET;
            sa->sin_addr.s_addr = htonl((uint32_t)x);
        }
        s += n;
        if (*s == ',') s++;
    }
    return 0;
}

static int parse_int_list(const char *s, int *out, int max, int *n)
{
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > 65535 || *n == max) return -1;
        out[(*n)++] = (int)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return *n ? 0 : -1;
}

static int parse_url(const char *url, int *port)
{
    bool tls = strncmp(url, "wss://", 6) == 0;
    if (!tls && strncmp(url, "ws://", 5) != 0) return -1;
    g_opt.tls = tls;
    const char *h = url + (tls ? 6 : 5), *slash = strchr(h, '/');
    const char *hend = slash ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(hend - h));
    size_t hl = (size_t)((colon ? colon : hend) - h);
    if (!hl || hl >= sizeof g_opt.host) return -1;
    memcpy(g_opt.host, h, hl);
    g_opt.host[hl] = 0;
    *port = colon ? atoi(colon + 1) : tls ? 443 : 80;
    snprintf(g_opt.path, sizeof g_opt.path, "%s", slash ? slash : "/");
    return 0;
}

/* Reads the non-empty lines of path (at most 10,000,000, each < 512 bytes)
 * into *lines / *nlines. Returns 0, or -1 when unreadable or empty. */
static int load_lines(const char *path, char ***lines, size_t *nlines)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    size_t cap = 0;
    while (*nlines < 10000000 && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        if (!n) continue;
        if (*nlines == cap) {
            cap = cap ? cap * 2 : 1024;
            char **nl = realloc(*lines, cap * sizeof *nl);
            if (!nl) break;
            *lines = nl;
        }
        char *d = strdup(line);
        if (!d) break;
        (*lines)[(*nlines)++] = d;
    }
    fclose(f);
    return *nlines ? 0 : -1;
}

enum {
    O_URL = 256, O_PORTS, O_SOURCES, O_CONNS, O_RATE, O_PROCS, O_INFLIGHT, O_DURATION, O_RUN,
    O_DRAIN, O_CTIMEOUT, O_RETRIES, O_HEARTBEAT, O_TOPIC, O_EVENT, O_PAYLOAD, O_JOINPAYLOAD,
    O_IDOFF, O_USERPAT, O_SECRET, O_TOKEN, O_TTL, O_SID, O_WINDOW, O_COUNT, O_PUBRATE, O_PAD,
    O_CONVPAT, O_CONVFILE, O_BODY, O_PID, O_PROGRESS, O_QUIET, O_MAXFRAME, O_WQCAP, O_SELFTEST,
    O_LIST, O_HELP, O_SCENARIO, O_VSN, O_USERFILE, O_SENDRATE, O_WARMUP, O_TALK,
    O_TLSCA, O_TLSINSECURE, O_TLSSUITES, O_TLSGROUPS, O_TLSRESUME,
};

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--net-ref")) return netref_main(argc - 1, argv + 1);
    static const struct option longopts[] = {
        {"scenario", 1, 0, O_SCENARIO}, {"url", 1, 0, O_URL}, {"ports", 1, 0, O_PORTS},
        {"sources", 1, 0, O_SOURCES}, {"conns", 1, 0, O_CONNS}, {"rate", 1, 0, O_RATE},
        {"procs", 1, 0, O_PROCS}, {"inflight", 1, 0, O_INFLIGHT}, {"duration", 1, 0, O_DURATION},
        {"run", 1, 0, O_RUN}, {"hold", 1, 0, O_RUN}, {"drain", 1, 0, O_DRAIN},
        {"connect-timeout", 1, 0, O_CTIMEOUT}, {"retries", 1, 0, O_RETRIES},
        {"heartbeat", 1, 0, O_HEARTBEAT}, {"topic", 1, 0, O_TOPIC}, {"event", 1, 0, O_EVENT},
        {"payload", 1, 0, O_PAYLOAD}, {"join-payload", 1, 0, O_JOINPAYLOAD},
        {"id-offset", 1, 0, O_IDOFF}, {"user-pattern", 1, 0, O_USERPAT},
        {"token-secret", 1, 0, O_SECRET}, {"token", 1, 0, O_TOKEN}, {"token-ttl", 1, 0, O_TTL},
        {"sid", 1, 0, O_SID}, {"window", 1, 0, O_WINDOW}, {"count", 1, 0, O_COUNT},
        {"pub-rate", 1, 0, O_PUBRATE}, {"pad", 1, 0, O_PAD}, {"conv-pattern", 1, 0, O_CONVPAT},
        {"conv-file", 1, 0, O_CONVFILE}, {"body", 1, 0, O_BODY}, {"server-pid", 1, 0, O_PID},
        {"progress", 1, 0, O_PROGRESS}, {"quiet", 0, 0, O_QUIET},
        {"max-frame", 1, 0, O_MAXFRAME}, {"wq-cap", 1, 0, O_WQCAP},
        {"self-test", 0, 0, O_SELFTEST}, {"list", 0, 0, O_LIST}, {"help", 0, 0, O_HELP},
        {"vsn", 1, 0, O_VSN}, {"user-file", 1, 0, O_USERFILE},
        {"send-rate", 1, 0, O_SENDRATE}, {"warmup", 1, 0, O_WARMUP},
        {"tls-ca", 1, 0, O_TLSCA}, {"tls-insecure", 0, 0, O_TLSINSECURE},
        {"tls-ciphersuites", 1, 0, O_TLSSUITES}, {"tls-groups", 1, 0, O_TLSGROUPS},
        {"tls-resume", 0, 0, O_TLSRESUME}, {"talk", 1, 0, O_TALK}, {0, 0, 0, 0}};

    sbl_opts *o = &g_opt;
    const char *url = "ws://127.0.0.1:4000/socket/websocket", *ports = NULL, *pids = NULL;
    const char *user_file = NULL;
    o->scenario = NULL;
    o->vsn = "2.0.0";
    o->conns = 1000;
    o->inflight = 256;
    o->duration = 300;
    o->run = -1;
    o->drain = 5;
    o->connect_timeout = 30;
    o->retries = 2;
    o->heartbeat = 30;
    o->payload = "{}";
    o->join_payload = "{}";
    o->user_pattern = "{id}";
    o->token_ttl = 86400;
    o->sid = "load";
    o->window = 1;
    o->conv_pattern = "{peer}";
    o->body = "load test message";
    o->progress = 1;
    o->max_frame = 16u << 20;
    o->wq_cap = 1u << 20;

    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_SCENARIO: o->scenario = optarg; break;
        case O_URL: url = optarg; break;
        case O_PORTS: ports = optarg; break;
        case O_SOURCES:
            if (parse_sources(optarg)) return die("bad --sources", optarg);
            break;
        case O_CONNS: o->conns = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_RATE: o->rate = atof(optarg); break;
        case O_PROCS: o->procs = atoi(optarg); break;
        case O_INFLIGHT: o->inflight = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_DURATION: o->duration = atof(optarg); break;
        case O_RUN: o->run = atof(optarg); break;
        case O_DRAIN: o->drain = atof(optarg); break;
        case O_CTIMEOUT: o->connect_timeout = atof(optarg); break;
        case O_RETRIES: o->retries = atoi(optarg); break;
        case O_HEARTBEAT: o->heartbeat = atof(optarg); break;
        case O_TOPIC: o->topic = optarg; break;
        case O_EVENT: o->event = optarg; break;
        case O_PAYLOAD: o->payload = optarg; break;
        case O_JOINPAYLOAD: o->join_payload = optarg; break;
        case O_IDOFF: o->id_offset = strtoull(optarg, NULL, 10); break;
        case O_USERPAT: o->user_pattern = optarg; break;
        case O_SECRET: o->token_secret = optarg; break;
        case O_TOKEN: o->token = optarg; break;
        case O_TTL: o->token_ttl = atof(optarg); break;
        case O_SID: o->sid = optarg; break;
        case O_WINDOW: o->window = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_COUNT: o->count = strtoull(optarg, NULL, 10); break;
        case O_PUBRATE: o->pub_rate = atof(optarg); break;
        case O_PAD: o->pad = (size_t)strtoull(optarg, NULL, 10); break;
        case O_CONVPAT: o->conv_pattern = optarg; break;
        case O_CONVFILE: o->conv_file = optarg; break;
        case O_BODY: o->body = optarg; break;
        case O_PID: pids = optarg; break;
        case O_PROGRESS: o->progress = atof(optarg); break;
        case O_QUIET: o->quiet = true; break;
        case O_MAXFRAME: o->max_frame = (size_t)strtoull(optarg, NULL, 10); break;
        case O_WQCAP: o->wq_cap = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_VSN: o->vsn = optarg; break;
        case O_USERFILE: user_file = optarg; break;
        case O_SENDRATE: o->send_rate = atof(optarg); break;
        case O_WARMUP: o->warmup = atof(optarg); break;
        case O_TLSCA: o->tls_ca = optarg; break;
        case O_TLSINSECURE: o->tls_insecure = true; break;
        case O_TLSSUITES: o->tls_ciphersuites = optarg; break;
        case O_TLSGROUPS: o->tls_groups = optarg; break;
        case O_TLSRESUME: o->tls_resume = true; break;
        case O_TALK: o->talk = atof(optarg); break;
        case O_SELFTEST: return selftest_main();
        case O_LIST: scenario_list(stdout); return 0;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return die("unexpected argument", argv[optind]);
    if (!o->scenario) {
        usage(stderr);
        return 2;
    }
    g_scen = scenario_find(o->scenario);
    if (!g_scen) return die("unknown scenario (see --list)", o->scenario);
    if (!g_scen->implemented) return die(g_scen->name, g_scen->why_not);
    if (!o->topic) o->topic = g_scen->default_topic;
    if (!o->event) o->event = g_scen->default_event;
    if (o->run < 0) o->run = g_scen->default_run;
    if (o->duration < o->warmup + o->run + 10)
        o->duration = o->warmup + o->run + o->connect_timeout + o->drain + 60;

    int urlport;
    int ur = parse_url(url, &urlport);
    if (ur < 0) return die("bad --url", url);
    if (!o->tls && (o->tls_ca || o->tls_insecure || o->tls_ciphersuites || o->tls_groups || o->tls_resume))
        return die("--tls-* options need a wss:// --url", url);
    if (o->tls_ca && access(o->tls_ca, R_OK) != 0) return die("cannot read --tls-ca", o->tls_ca);
    if (net_tls_init() < 0) return die("TLS setup failed", NULL);
    if (ports) {
        if (parse_int_list(ports, o->ports, SBL_MAX_PORTS, &o->nports)) return die("bad --ports", ports);
    } else {
        o->ports[0] = urlport;
        o->nports = 1;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(o->host, NULL, &hints, &ai) != 0 || !ai) return die("cannot resolve", o->host);
    for (int i = 0; i < o->nports; i++) {
        memcpy(&o->dst[i], ai->ai_addr, sizeof o->dst[i]);
        o->dst[i].sin_port = htons((uint16_t)o->ports[i]);
    }
    freeaddrinfo(ai);
    size_t pl = strnlen(o->path, sizeof o->path - 1);
    memcpy(g_query_prefix, o->path, pl);
    g_query_prefix[pl] = strchr(o->path, '?') ? '&' : '?';
    g_query_prefix[pl + 1] = 0;

    if (pids) {
        const char *s = pids;
        while (*s) {
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s || v <= 0 || o->nserver_pids == SBL_MAX_PIDS) return die("bad --server-pid", pids);
            o->server_pids[o->nserver_pids++] = (pid_t)v;
            s = end;
            if (*s == ',') s++;
            else if (*s) return die("bad --server-pid", pids);
        }
    }
    if (o->conv_file && load_lines(o->conv_file, &g_conv_lines, &g_nconv_lines))
        return die("cannot read --conv-file", o->conv_file);
    if (user_file) {
        static char **users;
        static size_t nusers;
        if (load_lines(user_file, &users, &nusers)) return die("cannot read --user-file", user_file);
        g_pattern_users = (const char *const *)users;
        g_pattern_nusers = nusers;
    }
    if (o->window == 0) o->window = 1;
    if (o->window > 65536) return die("--window too large", NULL);
    if (o->pad > (256u << 10)) return die("--pad larger than 256 KiB", NULL);
    if (strlen(o->payload) > (256u << 10) || strlen(o->body) > (256u << 10))
        return die("--payload/--body larger than 256 KiB", NULL);
    if (o->inflight == 0) o->inflight = 1;
    if (!(o->send_rate >= 0 && o->send_rate <= 10e6)) return die("bad --send-rate (0 .. 10000000)", NULL);
    if (!(o->warmup >= 0 && o->warmup <= 3600)) return die("bad --warmup (0 .. 3600)", NULL);
    if (!(o->talk >= 0 && o->talk <= 3600)) return die("bad --talk (0 .. 3600)", NULL);
    if (o->max_frame < 1024) o->max_frame = 1024;

    uint32_t need = (o->conns + SBL_FD_PER_PROC - 1) / SBL_FD_PER_PROC;
    if (need == 0) need = 1;
    if (o->procs <= 0) o->procs = (int)need;
    if ((uint32_t)o->procs < need) {
        fprintf(stderr, "sbload: %u connections need at least %u worker processes (%d sockets each)\n",
                o->conns, need, SBL_FD_PER_PROC);
        return 2;
    }
    if ((uint32_t)o->procs > o->conns && o->conns) o->procs = (int)o->conns;
    /* Each worker may hold up to the hard descriptor limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        (uint64_t)o->conns / (uint64_t)o->procs + 64 > (uint64_t)rl.rlim_cur)
        fprintf(stderr, "sbload: warning: %u sockets per worker but the descriptor limit is %llu; "
                        "raise --procs\n", o->conns / (uint32_t)o->procs, (unsigned long long)rl.rlim_cur);
    if (o->conns > 28000u * (uint32_t)(o->nsrc ? o->nsrc : 1) * (uint32_t)o->nports)
        fprintf(stderr, "sbload: warning: more connections than ephemeral ports for the given "
                        "--sources x --ports (about 28k each); expect EADDRNOTAVAIL\n");
    return parent_main();
}
