#!/usr/bin/env python3
"""Re-runs the commands behind the docs' numbers and compares.

The docs mark a documented number with an HTML comment (invisible when
rendered) next to it:

    <!-- reproduce: train scenes/ant.joule --seed 1 ... => return 421.3 -->

The part before `=>` is a `joule` command line (run with `--json` added,
from the repository root); after it, comma-separated `KEY VALUE` pairs: KEY
is a dotted path into the command's JSON output (`gait.0.root.forward`;
list indices are numbers), VALUE the documented number. The number matches
when the output, rounded to VALUE's decimals, equals it (`421.3` checks
421.25 <= x < 421.35). `{tmp}` in a command is a temporary folder shared by
the file's checks, which run in order (a `train --out {tmp}/p.st` feeds a
later `run --policy {tmp}/p.st`). `reproduce[quick]:` marks the checks that
take a few seconds.

A replay of a documented result is marked the same way, with the page it
must reproduce byte for byte after `=>`:

    <!-- replay: run scenes/soft_walker.joule --steps 256 --policy {tmp}/p.st => docs/replays/walk.html -->

The command runs with `--html` writing beside that page (and three.js
linked from `src/vendor/`, as the committed pages are), and the two pages
must be equal.

    python3 docs/check_numbers.py                  # every check in docs/*.md
    python3 docs/check_numbers.py --quick          # the quick ones
    python3 docs/check_numbers.py --only soft_walker
    python3 docs/check_numbers.py --list

It needs the release build (`cargo build --release`); it prints one line
per check and exits non-zero when a number does not reproduce or a
command fails.
"""
import argparse
import decimal
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CHECK = re.compile(r"<!--\s*(reproduce|replay)(\[quick\])?:\s*(.*?)\s*=>\s*(.*?)\s*-->", re.S)
THREE = os.path.join(ROOT, "src", "vendor", "three.min.js")


def checks(path):
    """The file's checks: (line, quick, command words, [(key, value text)])
    for a number, (line, quick, command words, page path) for a replay."""
    text = open(path, encoding="utf-8").read()
    found = []
    for m in CHECK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        words = shlex.split(" ".join(m.group(3).split()))
        if m.group(1) == "replay":
            found.append((line, bool(m.group(2)), words, m.group(4)))
            continue
        pairs = []
        for item in m.group(4).split(","):
            key, value = item.split()
            pairs.append((key, value))
        found.append((line, bool(m.group(2)), words, pairs))
    return found


def replay(joule, words, page):
    """Whether `joule WORDS --html` writes the committed `page` byte for
    byte (drawn beside it, then removed); a message where it does not."""
    folder = os.path.dirname(os.path.join(ROOT, page))
    fresh = os.path.join(folder, ".check-" + os.path.basename(page))
    three = os.path.relpath(THREE, folder)
    try:
        out = subprocess.run(
            [joule, *words, "--html", fresh, "--html-three", three, "--quiet"],
            cwd=ROOT, capture_output=True, text=True,
        )
        if out.returncode != 0:
            return out.stderr.strip()
        with open(fresh, "rb") as f, open(os.path.join(ROOT, page), "rb") as g:
            return None if f.read() == g.read() else f"the page differs from {page}"
    finally:
        if os.path.exists(fresh):
            os.remove(fresh)


def lookup(value, key):
    """The entry of a JSON value at a dotted path."""
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def matches(got, want):
    """Whether `got` rounds to the documented `want` (a decimal string)."""
    if not isinstance(got, (int, float)) or got != got:
        return False
    places = decimal.Decimal(want).as_tuple().exponent
    rounded = decimal.Decimal(repr(float(got))).quantize(
        decimal.Decimal(1).scaleb(places), rounding=decimal.ROUND_HALF_EVEN
    )
    return rounded == decimal.Decimal(want)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the checks marked [quick]")
    ap.add_argument("--only", help="only the checks whose command contains this text")
    ap.add_argument("--list", action="store_true", help="list the checks, run nothing")
    ap.add_argument("--joule", default=os.path.join(ROOT, "target", "release", "joule"))
    ap.add_argument("docs", nargs="*", help="markdown files (default: docs/*.md)")
    a = ap.parse_args()
    docs = a.docs or sorted(
        os.path.join(ROOT, "docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")
    )
    if not a.list and not os.access(a.joule, os.X_OK):
        sys.exit(f"error: no joule binary at {a.joule} (run `cargo build --release`)")
    failed = ran = 0
    for doc in docs:
        todo = [
            c for c in checks(doc)
            if (not a.quick or c[1]) and (not a.only or a.only in " ".join(c[2]))
        ]
        if not todo:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for line, _, words, pairs in todo:
                where = f"{os.path.relpath(doc, ROOT)}:{line}"
                words = [w.replace("{tmp}", tmp) for w in words]
                if a.list:
                    page = f" => {pairs}" if isinstance(pairs, str) else ""
                    print(f"{where}: joule {' '.join(words)}{page}")
                    continue
                start = time.time()
                if isinstance(pairs, str):
                    why = replay(a.joule, words, pairs)
                    ran += 1
                    took = time.time() - start
                    if why:
                        failed += 1
                        print(f"FAIL {where} ({took:.0f} s): joule {' '.join(words)}: {why}")
                    else:
                        print(f"ok   {where} ({took:.0f} s): {pairs}")
                    continue
                out = subprocess.run([a.joule, *words, "--json"], cwd=ROOT, capture_output=True, text=True)
                ran += 1
                took = time.time() - start
                if out.returncode != 0:
                    failed += 1
                    print(f"FAIL {where} ({took:.0f} s): joule {' '.join(words)}\n{out.stderr.strip()}")
                    continue
                result = json.loads(out.stdout)
                bad = []
                for key, want in pairs:
                    try:
                        got = lookup(result, key)
                    except (KeyError, IndexError, ValueError, TypeError):
                        got = None
                    if not matches(got, want):
                        bad.append(f"{key} = {got} (documented {want})")
                if bad:
                    failed += 1
                    print(f"FAIL {where} ({took:.0f} s): {'; '.join(bad)}")
                else:
                    print(f"ok   {where} ({took:.0f} s): {', '.join(f'{k} {v}' for k, v in pairs)}")
    if not a.list:
        print(f"{ran - failed} of {ran} checks reproduce")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
