#!/usr/bin/env python3
"""bench_report.py OUT SCALE SECONDS — the table of `make bench`: every P
figure beside its target and the reference measured in the same run, as
ratios. Reads the RESULT files sbload wrote (OUT/<scenario>.json) and the
reference files (OUT/ref_*.json); writes OUT/summary.json and summary.txt.

Exit status: 0, or 1 when a scenario that ran produced no figure, or (smoke
scale) when any part is missing or reported errors — so the instrument
itself is tested by `make test`."""
import json
import os
import platform
import sys

out, scale, secs = sys.argv[1], sys.argv[2], int(sys.argv[3])


def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def slope(curve):
    """Least-squares bytes per connection of (joined, rss KiB) points."""
    pts = [(c, kb) for c, kb in curve or [] if c > 0]
    if len(pts) < 3 or pts[-1][0] - pts[0][0] < 100:
        return None
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx * 1024


rows = []   # (id, figure, value, unit, target, at_least, reference text, ref value)
problems = []
refs = {k: load("ref_" + k) for k in ("pgbench", "redis", "wrk_healthz")}
pg_tps = get(refs["pgbench"], "tps")
redis_rps = get(refs["redis"], "publish_per_s")
healthz_rps = get(refs["wrk_healthz"], "requests_per_s")
# the kernel's loopback floor (sbload --net-ref): no server logic at all
net = {k: load("ref_net_" + k) for k in ("connect", "exchange", "write")}


def row(pid, fig, val, unit, target, at_least, ref_txt=None, ref_val=None):
    rows.append(dict(id=pid, figure=fig, value=val, unit=unit, target=target, at_least=at_least,
                     reference=ref_txt, reference_value=ref_val))


def check_errors(name, r):
    if r is None:
        problems.append(f"{name}: no result")
        return
    errs = {k: v for k, v in (r.get("errors") or {}).items() if k not in ("hb_timeout",)}
    if errs:
        problems.append(f"{name}: errors {errs}")


p1 = load("p1_connections")
if p1:
    joined = get(p1, "connect", "joined") or 0
    row("P1", "joined connections held", joined, "conns", 1_000_000, True,
        "Phoenix: 2 M on 40 cores / 128 GB")
    per = get(p1, "server_bytes_per_conn")
    row("P1", "server RSS per joined connection above idle baseline", per, "B", 1024, False,
        "Phoenix ~42 KB, WhatsApp ~30 KB, Centrifugo 10.9-27 KB, uWS ~128 B", 42000)
    s = slope(p1.get("rss_curve"))
    if s is not None:
        row("P1", "  same, marginal (slope of RSS over connections)", s, "B", 1024, False)
    row("P2", f"  joins/s during P1's connect ({p1.get('procs')} load processes)",
        get(p1, "connect", "joins_per_s"), "/s", None, None)
p2 = load("p2_connect")
if p2:
    row("P2", f"joins/s (connect + upgrade + join, {get(p2, 'conns') or 0:,} conns, 2+2 processes)",
        get(p2, "connect", "joins_per_s"), "/s", 50_000, True, "stock Phoenix 1.7 here: ~7,500/s", 7500)
    row("P2", "  peak second", get(p2, "connect", "peak_joins_per_s"), "/s", 50_000, True)
    jl = get(p2, "connect", "join_latency")
    if jl:
        row("P2", "  join latency p50 / p99 / p999", f"{jl['p50_ms']:.1f} / {jl['p99_ms']:.1f} / {jl['p999_ms']:.1f}", "ms", None, None)
    ex, bare, jps = get(net["exchange"], "per_s"), get(net["connect"], "per_s"), get(p2, "connect", "joins_per_s")
    if ex:
        cpu = (get(net["exchange"], "cpu_us_connector") or 0) + (get(net["exchange"], "cpu_us_acceptor") or 0)
        row("P2", "  floor: connect + join-sized exchange, no server logic (net-ref)", ex, "/s", 50_000, True,
            f"{cpu:.0f} us CPU each; bare connect+accept {bare or 0:,.0f}/s; Switchboard reaches "
            f"{100 * (jps or 0) / ex:.0f} % of this floor")

p3 = load("p3_fanout")
if p3:
    f = p3.get("fanout", {})
    row("P3", f"fan-out deliveries/s ({f.get('subscribers')} subscribers, window {f.get('window')})",
        f.get("deliveries_per_s"), "/s", 2_000_000, True,
        "Phoenix 1.7 here: ~110,000/s; one frame per write() ~200,000/s", 110000)
    row("P3", "last subscriber of a broadcast, p99", get(f, "last_subscriber_latency", "p99_ms"), "ms", 100, False,
        "Phoenix 1.7: 150-260 ms at 10,000 subscribers", 150)
    row("P3", "  every delivery p50 / p99", f"{get(f, 'delivery_latency', 'p50_ms'):.1f} / {get(f, 'delivery_latency', 'p99_ms'):.1f}", "ms", None, None)



def one_at_a_time_row(r):
    """The last-subscriber row of a window-1 fan-out run (one broadcast at a time)."""
    f = r.get("fanout", {})
    row("P3", f"last subscriber p99, one broadcast at a time ({f.get('subscribers')} subs, window 1)",
        get(f, "last_subscriber_latency", "p99_ms"), "ms", 100, False,
        f"p50 {get(f, 'last_subscriber_latency', 'p50_ms') or 0:.1f} ms, {f.get('deliveries_per_s') or 0:,.0f} deliveries/s")


p3w = load("p3_fanout_w1")
if p3w:
    one_at_a_time_row(p3w)
wps, wn = get(net["write"], "writes_per_s"), get(net["write"], "conns")
if wps:
    row("P3", f"  floor: one write() to each of {wn:,} sockets, one round (net-ref)", get(net["write"], "round_ms"),
        "ms", 100, False, f"{wps:,.0f} write()s/s here; 100,000 sockets: {1e5 / wps * 1e3:,.0f} ms per round")

p3c = load("p3_fanout_cluster")
if p3c:
    f = p3c.get("fanout", {})
    row("P3", f"fan-out deliveries/s ({f.get('subscribers')} subs, processes + Redis, window {f.get('window')})",
        f.get("deliveries_per_s"), "/s", 2_000_000, True,
        "Phoenix 1.7 here: ~110,000/s to 10,000 subscribers", 110000)
    row("P3", "  last subscriber of a broadcast, p99", get(f, "last_subscriber_latency", "p99_ms"), "ms", 100, False)

p3cw = load("p3_fanout_cluster_w1")
if p3cw:
    one_at_a_time_row(p3cw)

p4 = load("p4_sends")
if p4:
    s = p4.get("sends", {})
    row("P4", f"durable sends acked/s ({s.get('senders')} senders, closed loop)", s.get("acks_per_s"), "/s",
        pg_tps, True, f"pgbench 1 INSERT + seq bump: {pg_tps:.0f} tps" if pg_tps else "pgbench: not measured", pg_tps)
    al = get(s, "ack_latency") or {}
    if al.get("p99_ms") is not None:
        row("P4", "  ack latency p50 / p99 at full rate (closed loop, no bar)",
            f"{al['p50_ms']:.1f} / {al['p99_ms']:.1f}", "ms", None, None)
p4h = load("p4_half_rate")
if p4h:
    s = p4h.get("sends", {})
    row("P4", f"ack latency p99 at half rate ({s.get('target_rate') or 0:,.0f}/s paced)",
        get(s, "ack_latency", "p99_ms"), "ms", 25, False,
        f"achieved {s.get('achieved_rate') or 0:,.0f}/s, {s.get('late', 0)} late, "
        f"{s.get('unanswered', 0)} unanswered, p50 {get(s, 'ack_latency', 'p50_ms') or 0:.1f} ms")

p4p = load("p4_push")
if p4p and p4p.get("off_median"):
    row("P4", f"acked sends/s, every recipient offline, push ON (median of {len(p4p['on'])})",
        p4p.get("on_median"), "/s", p4p["off_median"] * 0.95, True,
        f"push off, same run: {p4p['off_median']:,.0f}/s (target: within 5 %); "
        f"pushes sent {sum(p4p.get('pushes_sent') or [0]):,.0f}, dropped {sum(p4p.get('pushes_dropped') or [0]):,.0f}",
        p4p["off_median"])
elif "p4push" in os.environ.get("BENCH_ONLY", "").split():
    problems.append("p4_push: no result")

p5 = load("p5_cluster")
if p5:
    f = p5.get("fanout", {})
    row("P5", "cross-node broadcasts/s through Redis (3 nodes)", f.get("broadcasts_per_s"), "/s",
        0.7 * redis_rps if redis_rps else None, True,
        f"redis-benchmark PUBLISH: {redis_rps:.0f}/s (target 70 %)" if redis_rps else "redis-benchmark: not measured", redis_rps)

p6 = load("p6_sync")
if p6:
    row("P6", "GET /api/v1/sync requests/s (a user with pending events, see docs)", p6.get("requests_per_s"), "/s",
        0.2 * healthz_rps if healthz_rps else None, True,
        f"wrk /healthz: {healthz_rps:.0f}/s (target 20 %)" if healthz_rps else "wrk /healthz: not measured", healthz_rps)
    if p6.get("non_2xx"):
        problems.append(f"P6: {p6['non_2xx']} non-2xx answers")

p12 = load("p12_search")
ref_search = load("ref_pgbench_search")
search_tps = get(ref_search, "tps")
if p12:
    row("P12", f"search p99, 50 searchers, {p12.get('messages', 0):,} messages in {p12.get('conversations', 0):,} convs",
        p12.get("p99_ms"), "ms", 50, False, f"p50 {p12.get('p50_ms') or 0:.1f} ms"
        + (f"; one search alone (pgbench, 1 client): {get(ref_search, 'one_client_ms'):.2f} ms"
           if get(ref_search, "one_client_ms") else ""))
    row("P12", "search requests/s (the same statement by pgbench: target 0.8x)", p12.get("requests_per_s"), "/s",
        0.8 * search_tps if search_tps else None, True,
        f"pgbench sb_search_page, 50 clients: {search_tps:.0f}/s" if search_tps else "pgbench: not measured", search_tps)
    if p12.get("non_2xx"):
        # failed answers are fast: a run with errors measures nothing
        problems.append(f"P12: {p12['non_2xx']} non-2xx search answers: the P12 search figures are invalid")
        rows[-1]["reference"] += f"  [INVALID: {p12['non_2xx']} non-2xx answers]"
        rows[-2]["reference"] += f"  [INVALID: {p12['non_2xx']} non-2xx answers]"
p12e = load("p12_export")
if p12e:
    row("P12", f"export of {p12e.get('messages', 0):,} messages ({(p12e.get('bytes') or 0) / 1e6:.1f} MB)",
        p12e.get("mb_per_s"), "MB/s", None, None)

p11 = load("p11_media")
ref_nginx = load("ref_nginx")
ngx_mib = get(ref_nginx, "mib_per_s")
if p11:
    dl = p11.get("download") or {}
    row("P11", f"media download, one {p11.get('file_mib')} MiB file, {p11.get('connections')} wrk connections",
        dl.get("mib_per_s"), "MiB/s", 0.8 * ngx_mib if ngx_mib else None, True,
        f"nginx sendfile on, same file: {ngx_mib:.0f} MiB/s (target 80 %)" if ngx_mib else "nginx: not measured", ngx_mib)
    row("P11", f"media upload, {p11.get('uploads_ok')}/{p11.get('uploads')} uploads of {p11.get('file_mib')} MiB, 4 at a time",
        p11.get("upload_mib_per_s"), "MiB/s", None, None)
    row("P11", "server RSS growth during the uploads and downloads", p11.get("rss_growth_mib"), "MiB", 16, False,
        f"before {p11.get('rss_base_kb', 0) / 1024:.1f} MiB, peak {p11.get('rss_peak_kb', 0) / 1024:.1f} MiB")
    if p11.get("uploads_ok") != p11.get("uploads"):
        problems.append(f"P11: {p11.get('uploads_ok')} of {p11.get('uploads')} uploads answered 201")
    if not dl:
        problems.append("P11: no download figure")
    elif dl.get("non_2xx") or dl.get("socket_errors"):
        problems.append(f"P11: downloads: {dl.get('non_2xx')} non-2xx, socket errors {dl.get('socket_errors')}")
    if ref_nginx is None:
        problems.append("P11: reference nginx: missing")

p7 = load("p7_soak")
if p7:
    row("P7", f"server RSS growth in the 2nd half of a {get(p7, 'fanout', 'publish_to_last_delivery_s') or 0:.0f} s fan-out",
        p7.get("rss_growth_after_warmup_pct"), "%", 5, False)
    row("P7", "  growth from 20 % of the run to its end", p7.get("rss_growth_since_20pct_pct"), "%", None, None)

p8 = load("p8_presence")
if p8:
    pr = p8.get("presence", {})
    hog = ", CPU hog beside" if load("p8_hog") else ""
    row("P8", f"presence: memory per viewer ({pr.get('viewers')} viewers{hog})", p8.get("server_bytes_per_viewer"), "B", 2048, False,
        "Phoenix 1.7: 393 MB at 1,000 viewers (~400 KB each)", 400000)
    rss = p8.get("server_rss_kb") or {}
    if rss.get("max") and rss.get("baseline") and pr.get("viewers"):
        row("P8", "  peak RSS during the joins, per viewer",
            (rss["max"] - rss["baseline"]) * 1024 / pr["viewers"], "B", None, None)
    row("P8", "presence_diff join -> last viewer, p99", get(pr, "join_to_last_viewer", "p99_ms"), "ms", 100, False)

r12 = load("r12_storm")
if r12 and r12.get("storm"):
    st = r12["storm"]
    row("R12", f"disconnect storm: peak RSS above joined, per socket ({st['conns']:,} sockets closed at once)",
        st["bytes_per_socket"], "B", 1024, False,
        f"joined {st['joined_kb'] / 1024:.1f} MiB, peak {st['peak_kb'] / 1024:.1f} MiB, idle {st['idle_kb'] / 1024:.1f} MiB")
    row("R12", "  RSS 5 s after the storm / pre-storm (joined) RSS", st["after5_ratio"], "x", 1.1, False,
        f"{st['after5_kb'] / 1024:.1f} MiB; idle before the sockets {st['idle_kb'] / 1024:.1f} MiB")
    if st["joined"] != st["conns"]:
        problems.append(f"r12_storm: {st['joined']} of {st['conns']} joined")
gfa, gfi = load("gf_alone"), load("gf_ids")
if gfa and gfi:
    n = get(gfi, "connect", "joined") or 0
    pushes = get(gfi, "counters", "pushes_in") or 0
    row("R12", f"online fan-out: pushes per login, {n:,} members of one group (no direct contacts)",
        pushes / n if n else None, "/login", 0, False, "before issue 20: ~1,000 per login (n^2 in all)")
    ra, rg = get(gfa, "connect", "joins_per_s"), get(gfi, "connect", "joins_per_s")
    row("R12", "  joins/s of the group's members / of users without conversations (target 0.9x)",
        rg / ra if ra and rg else None, "x", 0.9, True, f"{rg or 0:,.0f} vs {ra or 0:,.0f} joins/s")

p13p, p13t, p13h = load("p13_rss_plain"), load("p13_rss_tls"), load("p13_handshakes")
if p13p and p13t:
    plain, tls = p13p.get("server_bytes_per_conn"), p13t.get("server_bytes_per_conn")
    n = get(p13t, "connect", "joined") or 0
    row("P13", f"WSS: server RSS per idle joined connection above baseline ({n:,} conns)", tls, "B",
        plain + 4096 if plain is not None else None, False,
        f"plain ws:// the same way in this run (P1's figure): {plain or 0:,.0f} B; target: that + 4 KiB")
    row("P13", "  TLS's own share: wss:// minus ws:// per connection", tls - plain if tls is not None and plain is not None else None,
        "B", 4096, False, f"marginal (slope) wss {slope(p13t.get('rss_curve')) or 0:,.0f} B, ws {slope(p13p.get('rss_curve')) or 0:,.0f} B")
    for name, r in (("p13_rss_plain", p13p), ("p13_rss_tls", p13t)):
        check_errors(name, r)
        if get(r, "connect", "joined") != r.get("conns"):
            problems.append(f"{name}: {get(r, 'connect', 'joined')} of {r.get('conns')} joined")
if p13h:
    for mode, what in (("new", "full"), ("reuse", "resumed")):
        m = p13h.get(mode) or {}
        sb, ref = m.get("sb") or {}, m.get("ref") or {}
        rps = ref.get("per_s")
        row("P13", f"{what} TLS handshakes/s, one reactor (s_time -{mode}, median of {p13h.get('rounds')})",
            sb.get("per_s"), "/s", 0.8 * rps if rps else None, True,
            f"openssl s_server, same client, cert, suite and group: {rps or 0:,.0f}/s (target 80 %)", rps)
        cs, cr = sb.get("cpu_us"), ref.get("cpu_us")
        row("P13", f"  {what}: per core-second of server CPU (/proc utime+stime)",
            1e6 / cs if cs else None, "/s", 0.8e6 / cr if cr else None, True,
            f"s_server {1e6 / cr if cr else 0:,.0f}/s; server CPU each {cs or 0:,.0f} vs {cr or 0:,.0f} us", 1e6 / cr if cr else None)
        if not sb.get("per_s") or not rps:
            problems.append(f"p13_handshakes: -{mode}: no connections counted")
        for x in sb.get("runs") or []:
            if "server_resumed" not in x:
                continue
            got = x["server_resumed"] if mode == "reuse" else x["server_full"]
            if x["conns"] and got < 0.9 * x["conns"]:
                problems.append(f"p13_handshakes: -{mode}: the server counted {got} {what} handshakes for {x['conns']} connections")
    if not p13h.get("same_parameters"):
        problems.append(f"p13_handshakes: the two servers negotiated different parameters: {p13h.get('negotiated')}")
elif (p13p or p13t) and not p13h:
    problems.append("p13_handshakes: no result")

p9 = load("p9_calls")
p9r = load("p9_ping_ref")
if p9:
    c = p9.get("calls", {})
    ping = get(p9r, "sends", "ack_latency", "p99_ms") if p9r else None
    ping_txt = f"ping round trip p99 on the same server: {ping:.2f} ms" if ping else "ping round trip: not measured"
    # no call connected: no figure (a p99 of no samples is not a pass)
    live = c.get("live_calls_mean") or 0
    talk = c.get("talk_s") or 0
    conc = (f"{c.get('pairs')} pairs, {live:,.0f} calls live at once, talk {talk:g} s" if talk
            else f"{c.get('pairs')} pairs back to back, no talk time")
    row("P9", f"call setup POST -> connected, p99 ({conc})",
        get(c, "setup", "p99_ms") if c.get("measured") else None, "ms", 50, False, ping_txt, ping)
    st = c.get("setup_steps") or {}
    if st:
        names = (("call_post", "POST"), ("call_incoming", "incoming"), ("call_joined", "joined"),
                 ("call_accepted", "accepted"), ("call_ice", "ICE done"))
        row("P9", "  setup steps p50 from the POST: " + " / ".join(n for _, n in names),
            " / ".join(f"{get(st, k, 'p50_ms') or 0:.1f}" for k, _ in names), "ms", None, None)
    row("P9", "signal relay (offer/answer/ICE) sender -> peer, p99", get(c, "signal_relay", "p99_ms"), "ms", 5, False,
        ping_txt, ping)
    row("P9", "calls set up per second (rate reached, no bar)", c.get("calls_per_s"), "/s", None, None,
        f"{c.get('measured', 0)} set up in the {c.get('run_s') or 0:.0f} s measured, {c.get('failed', 0)} failed, {c.get('error_replies', 0)} error replies, "
        f"setup p50 {get(c, 'setup', 'p50_ms') or 0:.1f} ms, relay p50 {get(c, 'signal_relay', 'p50_ms') or 0:.2f} ms")
    if not c.get("measured"):
        problems.append("p9_calls: no call connected")
    if c.get("failed") or c.get("error_replies") or c.get("http_errors"):
        problems.append(f"p9_calls: {c.get('failed')} failed calls, {c.get('error_replies')} error replies, "
                        f"{c.get('http_errors')} HTTP errors")

p10 = load("p10_push")
if p10:
    ref = p10.get("ref_h2load_rps") or 0
    row("P10", f"pushes/s server -> fake FCM, HTTP/2 + TLS ({p10.get('pushes_expected', 0):,} pushes)",
        p10.get("pushes_per_s"), "/s", ref * 0.5 if ref else None, True,
        f"h2load same endpoint: {ref:,.0f} req/s (target: 50 %)", ref)
    row("P10", "  pushes delivered twice (must be 0)", p10.get("duplicates"), "", None, None)
    if p10.get("fake_cpu_share") is not None:
        row("P10", "  fake's CPU share server / h2load phase (1.0 = fake is the ceiling)",
            f"{p10.get('fake_cpu_share')} / {p10.get('ref_fake_cpu_share')}", "", None, None,
            f"fake CPU per request {p10.get('fake_cpu_us_per_req')} / {p10.get('ref_fake_cpu_us_per_req')} us; "
            f"server CPU per push {p10.get('server_cpu_us_per_push')} us; body {p10.get('body_bytes')} B")
    if not p10.get("ok"):
        problems.append(f"p10_push: {p10.get('error') or 'not every push arrived'} "
                        f"({p10.get('pushes_accepted')}/{p10.get('pushes_expected')}, problems {p10.get('problems')})")
elif "p10" in os.environ.get("BENCH_ONLY", "p10").split() or not os.environ.get("BENCH_ONLY"):
    if os.path.exists(os.path.join(out, "log", "p10.out")):
        problems.append("p10_push: no result")

for name, r in (("p1_connections", p1), ("p2_connect", p2), ("p3_fanout", p3), ("p3_fanout_w1", p3w), ("p3_fanout_cluster", p3c), ("p3_fanout_cluster_w1", p3cw), ("p4_sends", p4), ("p5_cluster", p5),
                ("p7_soak", p7), ("p8_presence", p8), ("p9_calls", p9), ("p9_ping_ref", p9r)):
    if r is not None:
        check_errors(name, r)
if p4 is not None:  # the half-rate run follows the closed loop: its figure must be there
    check_errors("p4_half_rate", p4h)
    if p4h is not None and get(p4h, "sends", "ack_latency", "p99_ms") is None:
        problems.append("p4_half_rate: no ack latency")
    if p4h is not None and not get(p4h, "sends", "acks"):
        problems.append("p4_half_rate: no acknowledged send")
# a whole smoke run must have every part (BENCH_ONLY runs just the parts named)
if scale == "smoke" and not os.environ.get("BENCH_ONLY", "").strip():
    # every scenario a smoke run makes (a missing tool or a failed start
    # shows here as a missing part, never as a silently shorter table)
    for name in ("p1_connections", "p2_connect", "p3_fanout", "p3_fanout_w1", "p4_sends", "p4_half_rate",
                 "p5_cluster", "p6_sync", "p7_soak", "p8_presence", "p9_calls", "p9_ping_ref", "p10_push",
                 "p11_media", "ref_nginx", "p12_search", "p12_export", "ref_pgbench_search", "r12_storm",
                 "gf_alone", "gf_ids", "p13_rss_plain", "p13_rss_tls", "p13_handshakes", "p4_push"):
        if load(name) is None:
            problems.append(f"{name}: missing")
    for k, v in refs.items():
        if v is None:
            problems.append(f"reference {k}: missing")
    for k, v in net.items():
        if v is None:
            problems.append(f"reference net-ref {k}: missing")


def fmt(v, unit):
    if v is None:
        return "-"
    if isinstance(v, str):
        return f"{v} {unit}"
    if unit in ("ms", "%", "MB/s", "MiB"):
        return f"{v:,.2f} {unit}"
    return f"{v:,.0f} {unit}"


lines = []
cpu = "?"
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
except (OSError, StopIteration):
    pass
mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
lines.append(f"Switchboard bench, scale {scale}, {secs} s, on {os.cpu_count()} x {cpu}, {mem_gb:.0f} GiB, "
             f"Linux {platform.release()}")
lines.append(f"{'id':3} {'figure':66} {'value':>16} {'target':>16} {'vs target':>10}  reference")
for r in rows:
    v, t = r["value"], r["target"]
    ratio = ""
    verdict = ""
    if isinstance(v, (int, float)) and isinstance(t, (int, float)) and t and v is not None:
        if r["at_least"]:
            ratio = f"{v / t:.2f}x"
            verdict = "ok" if v >= t else "MISS"
        else:
            ratio = f"{v / t:.2f}x" if v else "0x"
            verdict = "ok" if v <= t else "MISS"
    tgt = ("≥ " if r["at_least"] else "≤ ") + fmt(t, r["unit"]) if isinstance(t, (int, float)) else "-"
    ref = r["reference"] or ""
    rv = r["reference_value"]
    if isinstance(v, (int, float)) and isinstance(rv, (int, float)) and rv and v:
        ref += f"  [{(v / rv if r['at_least'] else rv / v):.2f}x the reference]"
    lines.append(f"{r['id']:3} {r['figure'][:66]:66} {fmt(v, r['unit']):>16} {tgt:>16} {ratio:>6} {verdict:4} {ref}")
measured = {r["id"] for r in rows}
for pid, why in (("P4", "sends"), ("P10", "push"), ("P5", "cluster"), ("P6", "sync"), ("P7", "soak"), ("P8", "presence"), ("P9", "calls"), ("P12", "search"), ("P13", "tls")):
    if pid not in measured:
        lines.append(f"{pid:3} not measured in this run ({why}): see notes below")
try:
    with open(os.path.join(out, "notes.txt")) as f:
        notes = [l.rstrip() for l in f if l.strip()]
except OSError:
    notes = []
if notes:
    lines.append("notes:")
    lines += ["  " + n for n in notes]
if problems:
    lines.append("problems:")
    lines += ["  " + p for p in problems]
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "summary.txt"), "w") as f:
    f.write(text + "\n")
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"scale": scale, "seconds": secs, "rows": rows, "notes": notes, "problems": problems,
               "references": refs, "net_ref": net}, f, indent=1)
sys.exit(1 if problems else 0)
