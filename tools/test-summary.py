#!/usr/bin/env python3
"""Count individual test cases from meson's testlog.json (TAP subtests of the
Criterion executables count one by one) and print 'N passed, N failed'."""
import json
import re
import sys

passed = failed = skipped = 0
failures = []
with open(sys.argv[1]) as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        t = json.loads(line)
        result = t.get("result", "")
        out = t.get("stdout") or ""
        if result == "EXPECTEDFAIL":
            # a test that must fail (e.g. a TAP stream with failures on purpose)
            passed += 1
            continue
        # pytest: its own closing line counts the cases ("3 failed, 40 passed in 9.1s")
        m = re.search(r"^=*\s*((?:\d+ (?:passed|failed|skipped|error|errors|xfailed|xpassed)(?:, )?)+) in [\d.]+s", out, re.M)
        if m and result not in ("TIMEOUT",):
            counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (\w+)", m.group(1)))
            passed += counts.get("passed", 0) + counts.get("xfailed", 0)
            skipped += counts.get("skipped", 0)
            nfail = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0) + counts.get("xpassed", 0)
            failed += nfail
            if nfail:
                failures.append(f"{t['name']}: {nfail} pytest case(s) failed")
            continue
        tap = [l for l in out.splitlines() if re.match(r"^(not )?ok\b", l)]
        if tap and result not in ("TIMEOUT", "ERROR"):
            for l in tap:
                if l.startswith("not ok"):
                    if "# TODO" in l:
                        continue
                    failed += 1
                    failures.append(f"{t['name']}: {l}")
                elif "# SKIP" in l or "# skip" in l:
                    skipped += 1
                else:
                    passed += 1
            continue
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
            failures.append(f"{t['name']}: {result}")
for f_ in failures:
    print("FAILED:", f_)
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
