#!/usr/bin/env python3
"""Prints the current definition of an SQL function (docs/architecture.md,
"Migrations are append-only").

Migrations are never edited once applied, so a function's text may stand in
several files: the current one is the newest migration that defines it,
following `ALTER FUNCTION ... RENAME TO` (a check wrapped around a renamed
former body) and `DROP FUNCTION`. This replays migrations/ in number order
and prints, for NAME, where it is defined now, the older files that defined
it before, its text, and then, the same way, each renamed function its text
calls (what the wrapper wraps).

  scripts/sqlfn.py sb_message_send_batch
  scripts/sqlfn.py --db sb_message_send_batch   # pg_get_functiondef from $SB_DATABASE_URL

Exit status 0, 1 when NAME is not defined (or the database has none).
"""
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CREATE = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\(", re.I | re.M)
RENAME = re.compile(r"^\s*ALTER\s+FUNCTION\s+(\w+)\s*\([^)]*\)\s*RENAME\s+TO\s+(\w+)\s*;", re.I | re.M)
DROP = re.compile(r"^\s*DROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?(\w+)\s*\(", re.I | re.M)
DOLLAR = re.compile(r"\$(\w*)\$")


def statement_end(text, start):
    """End of the CREATE FUNCTION statement at start: past the closing of its
    dollar-quoted body and the `;` after it."""
    m = DOLLAR.search(text, start)
    if not m:
        return text.find(";", start) + 1 or len(text)
    close = text.find(m.group(0), m.end())
    if close < 0:
        return len(text)
    semi = text.find(";", close + len(m.group(0)))
    return semi + 1 if semi >= 0 else len(text)


def replay(folder):
    """name -> {"file", "line", "text", "renamed": [(file, line, from)], "history": [file:line]}"""
    files = sorted((f for f in os.listdir(folder) if re.match(r"^\d+_.*\.sql$", f)),
                   key=lambda f: int(f.split("_", 1)[0]))
    cur, history, targets = {}, {}, set()
    for f in files:
        text = open(os.path.join(folder, f), encoding="utf-8").read()
        events = [(m.start(), "create", m) for m in CREATE.finditer(text)]
        events += [(m.start(), "rename", m) for m in RENAME.finditer(text)]
        events += [(m.start(), "drop", m) for m in DROP.finditer(text)]
        for pos, kind, m in sorted(events, key=lambda e: e[0]):
            line = text.count("\n", 0, pos) + 1
            where = f"migrations/{f}:{line}"
            if kind == "create":
                name = m.group(1)
                history.setdefault(name, []).append(where)
                cur[name] = {"where": where, "text": text[pos:statement_end(text, pos)].strip(),
                             "renamed": []}
            elif kind == "rename":
                old, new = m.group(1), m.group(2)
                targets.add(new)
                if old in cur:
                    d = cur.pop(old)
                    d["renamed"] = d["renamed"] + [f"{old} -> {new} at {where}"]
                    cur[new] = d
            else:
                cur.pop(m.group(1), None)
    return cur, history, targets


def show(name, cur, history, targets, seen):
    d = cur[name]
    seen.add(name)
    print(f"-- {name}: current definition {d['where']}")
    for r in d["renamed"]:
        print(f"--   renamed {r}")
    older = [h for h in history.get(name, []) if h != d["where"]]
    if older:
        print(f"--   older definitions of this name (superseded): {', '.join(older)}")
    head = CREATE.match(d["text"]).group(1)  # its name when created (before a rename)
    callees = sorted(c for c in set(re.findall(r"\b(sb_\w+)\s*\(", d["text"]))
                     if c in cur and c not in (name, head))
    wrapped = [c for c in callees if c in targets and c not in seen]
    others = [c for c in callees if c not in targets]
    if others:
        print(f"--   calls (each: scripts/sqlfn.py NAME): {', '.join(others)}")
    print(d["text"])
    print()
    for callee in wrapped:
        show(callee, cur, history, targets, seen)


def main(argv):
    db = "--db" in argv
    names = [a for a in argv if not a.startswith("-")]
    if len(names) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name = names[0]
    if db:
        url = os.environ.get("SB_DATABASE_URL", "")
        if not url:
            print("sqlfn: SB_DATABASE_URL is not set", file=sys.stderr)
            return 2
        # the query on stdin: psql interpolates :'n' (quoted) there, not in -c
        out = subprocess.run(["psql", "-qAtX", url, "-v", f"n={name}", "-v", "ON_ERROR_STOP=1"],
                             input="SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.proname = :'n';\n",
                             capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout.strip():
            print(out.stderr.strip() or f"sqlfn: no function {name} in the database", file=sys.stderr)
            return 1
        print(out.stdout.rstrip())
        return 0
    cur, history, targets = replay(os.path.join(ROOT, "migrations"))
    if name not in cur:
        print(f"sqlfn: no current function {name} in migrations/", file=sys.stderr)
        return 1
    show(name, cur, history, targets, set())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
