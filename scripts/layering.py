#!/usr/bin/env python3
"""The layering check (docs/architecture.md, "The dependency rule").

Reads every #include "..." under server/src/ (or the tree given as the first
argument) and fails, naming the file and line, where a folder includes a
folder of a layer above its own, a sibling of the same layer, or where a
domain folder's core (any file but its edges: *_rest.c and ch_*.c) includes
the transport or protocol layers (net, http, ws, phoenix; net/reactor.h, the
loop and its timers, is allowed). The composition roots at the top of the
tree may include anything: main.c (the binary) and app.c (what the server
registers: routes, channels, hooks; main.c and the fuzz harnesses call it).
Exit status 0 when the tree holds the rule, 1 otherwise.
"""
import os
import re
import sys

# folder -> layer, lowest first. Keep in step with docs/architecture.md.
LAYERS = {
    "base": 1,
    "net": 2,
    "http": 3, "store": 3, "bus": 3,
    "ws": 4,
    "phoenix": 5,
    "accounts": 6, "presence": 6,
    "sync": 7,
    "chat": 8, "keys": 8, "search": 8, "export": 8,
    "calls": 9, "media": 9,
    "push": 10, "moderation": 10,
    "admin": 11,
}
# folders whose files are a domain: core files there talk only to base, store
# and bus (and to lower domains' cores); the edges may use http and phoenix.
DOMAINS = {"accounts", "presence", "sync", "chat", "keys", "search", "export", "calls", "media", "push", "moderation", "admin"}
TRANSPORT = {"net", "http", "ws", "phoenix"}
CORE_ALLOWED_HEADERS = {"net/reactor.h"}
# files at the top of server/src: the composition roots, which include anything
COMPOSITION_ROOTS = {"main.c", "app.c", "app.h"}
EDGE = re.compile(r"(^ch_.*|.*_rest)\.c$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def is_edge(name):
    return bool(EDGE.match(name))


def check(root):
    errors = []
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            parts = rel.split(os.sep)
            if len(parts) == 1:
                if name not in COMPOSITION_ROOTS:
                    errors.append(f"{rel}: only the composition roots ({', '.join(sorted(COMPOSITION_ROOTS))}) may sit at the top of server/src")
                continue
            folder = parts[0]
            if folder not in LAYERS:
                errors.append(f"{rel}: folder '{folder}' has no layer in scripts/layering.py")
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = m.group(1)
                    if "/" not in target:
                        if not os.path.exists(os.path.join(dirpath, target)):
                            errors.append(f"{rel}:{lineno}: \"{target}\" is not in {folder}/ (name the folder: \"<folder>/{target}\")")
                        continue
                    tfolder = target.split("/")[0]
                    if tfolder == folder:
                        continue
                    if tfolder not in LAYERS:
                        errors.append(f"{rel}:{lineno}: includes \"{target}\" from unknown folder '{tfolder}'")
                        continue
                    mine, theirs = LAYERS[folder], LAYERS[tfolder]
                    if theirs > mine:
                        errors.append(f"{rel}:{lineno}: {folder}/ (layer {mine}) includes \"{target}\" of {tfolder}/ (layer {theirs}), a layer above")
                    elif theirs == mine:
                        errors.append(f"{rel}:{lineno}: {folder}/ includes \"{target}\" of its sibling {tfolder}/ (both layer {mine})")
                    elif (folder in DOMAINS and not is_edge(name) and tfolder in TRANSPORT
                          and target not in CORE_ALLOWED_HEADERS):
                        errors.append(f"{rel}:{lineno}: {folder}/ core file includes \"{target}\" of {tfolder}/ (only the edges *_rest.c and ch_*.c may)")
    return errors


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "server", "src")
    errors = check(os.path.normpath(root))
    for e in errors:
        print(e)
    if errors:
        print(f"layering: {len(errors)} include(s) break the rule (docs/architecture.md)", file=sys.stderr)
        return 1
    print("layering: every include under server/src follows the layer rule")
    return 0


if __name__ == "__main__":
    sys.exit(main())
