#!/usr/bin/env python3
"""Exported names carry their file's prefix (docs/architecture.md, "Names").

Reads the global symbols each server object defines (nm on build/<variant>/obj,
built by `make build`) and fails, naming the file and symbol, where one starts
with neither its file's name nor its folder's (`phx_` for phoenix/). Globals
(`g_...`) follow the same rule after the `g_`. The files at the top of
server/src (app.c) carry their file's name; main.c is exempt.
"""
import glob
import os
import subprocess
import sys

FOLDER_PREFIX = {"phoenix": "phx"}


def prefixes(folder, base):
    out = {base, folder}
    if folder in FOLDER_PREFIX:
        out.add(FOLDER_PREFIX[folder])
    return out


def ok(sym, allowed):
    name = sym[2:] if sym.startswith("g_") else sym
    return any(name == p or name.startswith(p + "_") for p in allowed)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "build/release/obj"
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server", "src")
    # the objects of today's sources only (a renamed file leaves a stale .o)
    tops = [c for c in sorted(glob.glob(os.path.join(src, "*.c"))) if os.path.basename(c) != "main.c"]
    objs = [os.path.join(root, os.path.relpath(c, src))[:-2] + ".o"
            for c in sorted(glob.glob(os.path.join(src, "*", "*.c"))) + tops]
    missing = [o for o in objs if not os.path.exists(o)]
    if missing:
        print(f"names: {missing[0]} is missing (run make build first)", file=sys.stderr)
        return 1
    if not objs:
        print(f"names: no objects under {root} (run make build first)", file=sys.stderr)
        return 1
    bad = []
    for o in objs:
        rel = os.path.relpath(o, root)[:-2]
        folder, base = rel.split(os.sep) if os.sep in rel else ("", rel)
        allowed = prefixes(folder, base) if folder else {base}
        nm = subprocess.run(["nm", "-g", "--defined-only", o], capture_output=True, text=True, check=True)
        for line in nm.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and not ok(parts[2], allowed):
                bad.append(f"server/src/{rel}.c: exports {parts[2]} (want a prefix of {', '.join(sorted(p + '_' for p in allowed))})")
    for b in bad:
        print(b)
    if bad:
        print(f"names: {len(bad)} exported name(s) without their file's prefix", file=sys.stderr)
        return 1
    print(f"names: every symbol exported by {len(objs)} objects carries its file's or folder's prefix")
    return 0


if __name__ == "__main__":
    sys.exit(main())
