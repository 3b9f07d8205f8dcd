#!/usr/bin/env python3
"""Parse every golden *.tap with meson's own TAPParser (the one `meson test`
uses for protocol: 'tap') and fail on any parser error or unknown line, which
meson would otherwise only log. Exit 77 (skip) when mesonbuild cannot be
imported (the test runs under meson's Python, so it normally can)."""
import glob
import os
import sys

try:
    from mesonbuild.mtest import TAPParser
except ImportError as e:  # pragma: no cover
    print(f"SKIP: cannot import mesonbuild.mtest.TAPParser: {e}")
    sys.exit(77)


def check(path):
    problems = []
    tests = 0
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for ev in TAPParser().parse(iter(lines)):
        kind = type(ev).__name__
        if kind in ("Error", "UnknownLine"):
            problems.append(f"{kind}: {ev}")
        elif kind == "Test":
            tests += 1
    return tests, problems


def main():
    if len(sys.argv) != 2:
        print("usage: render_tap_check.py GOLDEN_DIR", file=sys.stderr)
        return 2
    files = sorted(glob.glob(os.path.join(sys.argv[1], "*.tap")))
    if not files:
        print(f"no *.tap under {sys.argv[1]}", file=sys.stderr)
        return 1
    bad = 0
    for path in files:
        tests, problems = check(path)
        name = os.path.basename(path)
        if problems:
            bad += 1
            print(f"FAIL {name}: " + "; ".join(problems))
        else:
            print(f"ok   {name}: {tests} test points")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
