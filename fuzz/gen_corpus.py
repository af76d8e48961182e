#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (small, committed).
Run from anywhere: python3 fuzz/gen_corpus.py. The first byte of each seed
is the harness's mode byte (see the comment at the top of each fuzz_*.c)."""
import base64, hashlib, hmac, json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzz-secret-fuzz-secret-fuzz-secret-0123456789"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def token(claims):
    body = b64u(claims)
    return body + b"." + b64u(hmac.new(SECRET, body, hashlib.sha256).digest())


def frame(op, payload, fin=True, key=b"\0\0\0\0", masked=True, rsv=0):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | rsv << 4 | op
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return h + payload
    body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return h + key + body


def write(target, seeds):
    """Rewrites the seed-NN files of corpus/<target>/; other files there
    (finding-*: inputs that once stopped a fuzz run) are kept."""
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for i, s in enumerate(seeds):
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(s)


def cursor(user, tx, id_, issued):
    body = struct.pack(">BQqI", 1, tx, id_, issued)
    mac = hmac.new(SECRET, b"sbcur1\0" + user + b"\0" + body, hashlib.sha256).digest()[:16]
    return b64u(body + mac)


TOK = token(b'{"sub":"u1","sid":"s1","exp":4102444800}')

# ---- HTTP: mode byte (bit 0 admin, bits 1..7 chunk size), then the bytes
http = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 41\r\n\r\n{\"username\":\"alice\",\"password\":\"secret1\"}",
    b"POST /api/v1/auth/signup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"username\":\"bo\r\n12\r\nb\",\"password\":\"x\"}\r\n0\r\n\r\n",
    b"GET /api/v1/me HTTP/1.1\r\nAuthorization: Bearer " + TOK + b"\r\n\r\n",
    b"GET /api/v1/users/search?q=al%20ice&limit=5&cursor=YWJj HTTP/1.1\r\nAuthorization: Bearer " + TOK + b"\r\n\r\n",
    b"GET /socket/websocket?vsn=2.0.0&token=" + TOK + b" HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" + frame(1, '[null,"1","phoenix","heartbeat",{}]'),
    b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: phoenix, base64url.bearer.phx." + b64u(TOK) + b"\r\n\r\n",
    b"GET /socket/longpoll?vsn=2.0.0&token=" + TOK + b" HTTP/1.1\r\n\r\n",
    b"POST /socket/longpoll?vsn=2.0.0&token=abc HTTP/1.1\r\nContent-Type: application/x-ndjson\r\nContent-Length: 36\r\n\r\n[null,\"1\",\"phoenix\",\"heartbeat\",{}]",
    b"GET /index.html HTTP/1.0\r\n\r\n",
    b"HEAD /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nRange: bytes=0-10\r\n\r\n",
    b"GET /admin/metrics HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n",
    b"DELETE /api/v1/devices/1 HTTP/1.1\r\nAuthorization: Bearer " + TOK + b"\r\nContent-Length: 0\r\n\r\n",
    b"PATCH /api/v1/me HTTP/1.1\r\nAuthorization: Bearer " + TOK + b"\r\nContent-Length: 27\r\n\r\n{\"display_name\":\"A\\u0000b\"}",
    b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 120 + b"\r\n",
    b"GARBAGE\r\n\r\n",
]
write("http", [bytes([m]) + s for s, m in zip(http, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])])

# ---- WebSocket: mode byte (bit 0 V2, bits 1..7 chunk size), then frames
v2 = lambda *a: json.dumps(list(a), separators=(",", ":"))
v1 = lambda jr, ref, t, e, p: json.dumps({"join_ref": jr, "ref": ref, "topic": t, "event": e, "payload": p}, separators=(",", ":"))
ws = [
    (1, frame(1, v2(None, "1", "phoenix", "heartbeat", {}))),
    (1, frame(1, v2("1", "1", "echo:a", "phx_join", {})) + frame(1, v2("1", "2", "echo:a", "ping", {"x": [1, 2.5, None, True]})) + frame(1, v2("1", "3", "echo:a", "phx_leave", {}))),
    (1, frame(1, v2("1", "1", "user:u1", "phx_join", {"cursor": "abc"})) + frame(9, b"hi") + frame(1, v2("1", "2", "user:u1", "typing", {}))),
    (1, frame(1, v2("1", "1", "echo:a", "phx_join", {})) + frame(2, b"\x00\x01\x01\x06\x04" + b"1" + b"2" + b"echo:a" + b"ping" + b"\x00\xffbin")),
    (1, frame(1, '[null,"1","ech', fin=False) + frame(9, b"") + frame(0, 'o:a","phx_join",{}]')),
    (1, frame(1, v2("1", "1", "echo:b", "phx_join", {})) + frame(1, v2("1", "2", "echo:b", "shout", {"body": "hé"})) + frame(8, b"\x03\xe8bye")),
    (0, frame(1, v1("1", "1", "echo:a", "phx_join", {})) + frame(1, v1(None, "2", "phoenix", "heartbeat", {}))),
    (0, frame(1, v1("1", "1", "echo:a", "phx_join", {}), key=b"\x12\x34\x56\x78")),
    (1, frame(1, b"\xff\xfe")),
    (1, frame(1, "x", masked=False)),
    (1, frame(9, b"x", fin=False)),
    (1, frame(1, "[" * 40 + "]" * 40)),
    (1, bytes([0x81, 0xff]) + struct.pack(">Q", 1 << 40) + b"\0\0\0\0"),
    (1, frame(3, b"")),
    (1, frame(1, "{}", rsv=4)),
    (0x11, frame(1, v2(None, "1", "phoenix", "heartbeat", {})) * 3),
]
write("ws", [bytes([m]) + s for m, s in ws])

# ---- Phoenix decoders: mode byte (bit 0 V2, bit 1 binary), then the message
phx = [
    (1, v2(None, "1", "phoenix", "heartbeat", {}).encode()),
    (1, v2("1", 2, "room:1", "new_msg", {"body": "hi", "n": 1.5e-7, "u": "\u00e9\u0000", "big": 12345678901234}).encode()),
    (0, v1("1", "1", "room:1", "phx_join", {"a": [True, False, None]}).encode()),
    (0, b'{"topic":"t","event":"e","payload":null,"ref":null}'),
    (3, b"\x00\x01\x01\x01\x01" + b"1" + b"2" + b"t" + b"e" + b"\x00\x01\x02"),
    (3, b"\x00\x00\x00\x00\x00"),
    (1, b"[" * 33 + b"]" * 33),
    (1, b'[null,null,"a\\u0000","e",{}]'),
    (1, b'[1.0e400,null,"t","e",{}]'),
    (1, b'["a","b","t","e",-0.0]'),
    # payload nested to the limit: its reply is one level deeper (finding-reply-depth)
    (1, b'["1","2","t","e",' + b"[" * 31 + b"]" * 31 + b"]"),
]
write("phx", [bytes([m]) + s for m, s in phx])

# ---- JSON bodies: the body itself (also read as a query string)
jsn = [
    b'{"username":"alice","password":"correct horse","display_name":"Al\\u00efce"}',
    b'{"a":1,"a":2}',
    b'{"x":' * 40 + b"1" + b"}" * 40,
    b"[1,2,3]",
    b"  ",
    b'{"s":"\\ud83d\\ude00","n":null,"c":"\\u0001","z":"a\\u0000b"}',
    b"limit=10&cursor=YWJjZGVm&token=x%20y&vsn=2.0.0",
    b"limit=0&limit=201&cursor=%00",
    b'{"k":"\\"]]]]"}',
]
write("json", jsn)

# ---- tokens: mode byte, then the input
tok = [
    (0, TOK),
    (0, token(b'{"sub":"u1","sid":"s1","exp":1}')),
    (0, b"e30.AAAA"),
    (1, b'{"sub":"u1","sid":"s1","exp":4102444800}'),
    (1, b'{"sub":"u/1","sid":"s1","exp":4102444800}'),
    (1, b'{"sub":"u1","sid":"s1","exp":4102444800.5}'),
    (1, b'{"sub":"u1","sub":"u2","sid":"s1","exp":9}'),
    (2, b"Bearer " + TOK),
    (2, b"bearer\t  " + TOK + b"  "),
    (2, b"Basic abc"),
    (3, b64u(b"2026-11-24T09:15:02.123Z|42")),
    (3, b"YQ=="),
    (4, cursor(b"u1", 1234567, 42, 1763975702)),
    (4, cursor(b"u2", 1234567, 42, 1763975702)),
    (4, b"18446744073709551615"),
    (5, struct.pack("<QQI", 2**63 + 5, 7, 1763975702)),
    (9, b"SGVsbG8gd29ybGQ"),
    (9, b"_-_-AB"),
]
write("token", [bytes([m]) + s for m, s in tok])

# ---- TLS: mode byte (chunk size), then what a client sends first: real
# ClientHellos captured from `openssl s_client` on a local socket, and plain HTTP
import socket, subprocess


def client_hello(*args):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost"] + list(args),
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv.settimeout(5)
    conn, _ = srv.accept()
    conn.settimeout(2)
    data = b""
    try:
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    conn.close()
    srv.close()
    p.kill()
    p.wait()
    return data


tls_seeds = [
    (0, client_hello("-tls1_3")),
    (0, client_hello("-tls1_2")),
    (0, client_hello("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")),
    (0, client_hello("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")),
    (7, client_hello("-tls1_3")),
    (0, http[0]),
    (0, bytes([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb])),
]
write("tls", [bytes([m]) + s for m, s in tls_seeds if s])
