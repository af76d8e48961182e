#!/usr/bin/env python3
"""bench_provision.py — creates the users and conversations a benchmark needs
through the public REST API of a running server (no SQL, no shortcuts).

  pairs --users N   N users, direct conversations between users 2i and 2i+1;
                    writes users.txt (user id per line, line i = connection i)
                    and convs.txt (the conversation of connection i);
                    --devices: each user also registers an Android device
                    (a random FCM token) through POST /api/v1/devices
  sync --conversations C --events E
                    one reader with C direct conversations; takes its sync
                    cursor, then E messages are sent to it (spread over the C
                    conversations); writes token.txt (the reader's access
                    token), query.txt (?cursor=...), bytes.txt (response size)
  group --users N   N users, all members of one group (creator included);
                    writes users.txt and conv.txt

Every request is bounded (10 s timeout); any refusal stops the script with
the server's answer. Usernames carry a random run prefix so runs never clash.
"""
import argparse
import json
import os
import secrets
import sys
import urllib.error
import urllib.request

BASE = ""


def call(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None), len(raw)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: HTTP {e.code}: {e.read()[:300]!r}")


def signup(prefix, i):
    _, r, _ = call("POST", "/api/v1/auth/signup",
                   {"username": f"{prefix}{i}", "password": "bench-password-123"})
    return r["user"]["id"], r["access_token"]


def make_users(n):
    prefix = "b" + secrets.token_hex(3) + "_"
    users = []
    for i in range(n):
        users.append(signup(prefix, i))
        if (i + 1) % 500 == 0:
            print(f"  {i + 1}/{n} users", file=sys.stderr)
    return users


def direct(token, other_id):
    _, r, _ = call("POST", "/api/v1/conversations", {"kind": "direct", "user_id": other_id}, token)
    return r["conversation"]["id"]


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("".join(f"{x}\n" for x in lines))


def cmd_pairs(a):
    users = make_users(a.users - a.users % 2)
    if a.devices:
        for _, tok in users:
            call("POST", "/api/v1/devices", {"platform": "android", "push_token": "bench-" + secrets.token_urlsafe(24)}, tok)
    convs = []
    for i in range(0, len(users), 2):
        c = direct(users[i][1], users[i + 1][0])
        convs += [c, c]
    write_lines(os.path.join(a.out, "users.txt"), [u[0] for u in users])
    write_lines(os.path.join(a.out, "convs.txt"), convs)
    print(f"{len(users)} users, {len(convs) // 2} direct conversations")


def cmd_sync(a):
    users = make_users(a.conversations + 1)
    reader_id, reader_tok = users[0]
    convs = [(direct(tok, reader_id), tok) for _, tok in users[1:]]
    _, boot, _ = call("GET", "/api/v1/sync", token=reader_tok)
    cursor = boot["cursor"]
    for k in range(a.events):
        conv, tok = convs[k % len(convs)]
        call("POST", f"/api/v1/conversations/{conv}/messages",
             {"client_id": f"p6-{k}", "kind": "text", "body": f"pending event {k}"}, tok)
    query = "?cursor=" + urllib.request.quote(cursor, safe="")
    _, page, nbytes = call("GET", "/api/v1/sync" + query, token=reader_tok)
    with open(os.path.join(a.out, "token.txt"), "w") as f:
        f.write(reader_tok)
    with open(os.path.join(a.out, "query.txt"), "w") as f:
        f.write(query)
    with open(os.path.join(a.out, "bytes.txt"), "w") as f:
        f.write(str(nbytes))
    print(f"reader with {len(convs)} conversations, {a.events} events after its cursor; "
          f"first page {len(page.get('events', []))} events, {nbytes} bytes")


def cmd_group(a):
    users = make_users(a.users)
    owner_tok = users[0][1]
    ids = [u[0] for u in users[1:]]
    _, r, _ = call("POST", "/api/v1/conversations",
                   {"kind": "group", "title": "bench presence", "member_ids": ids[:999]}, owner_tok)
    conv = r["conversation"]["id"]
    for k in range(999, len(ids), 1000):
        call("POST", f"/api/v1/conversations/{conv}/members", {"user_ids": ids[k:k + 1000]}, owner_tok)
    write_lines(os.path.join(a.out, "users.txt"), [u[0] for u in users])
    with open(os.path.join(a.out, "conv.txt"), "w") as f:
        f.write(str(conv))
    print(f"group {conv} with {len(users)} members")


def main():
    global BASE
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["pairs", "sync", "group"])
    p.add_argument("--base", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--conversations", type=int, default=200)
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--devices", action="store_true")
    a = p.parse_args()
    if not (2 <= a.users <= 1_000_000 and 1 <= a.conversations <= 10_000 and 0 <= a.events <= 1_000_000):
        raise SystemExit("bench_provision: counts out of range")
    BASE = a.base.rstrip("/")
    os.makedirs(a.out, exist_ok=True)
    {"pairs": cmd_pairs, "sync": cmd_sync, "group": cmd_group}[a.cmd](a)


if __name__ == "__main__":
    main()
