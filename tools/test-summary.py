#!/usr/bin/env python3
"""Count individual test cases from meson's testlog.json (TAP subtests of the
Criterion executables count one by one) and print 'N passed, N failed'.

Several logs (e.g. the normal run and the ASan run, tools/test) add up into
the one closing line; failures are named with the run they come from.
  test-summary.py LOG.json [LABEL=LOG.json ...]
A log that does not exist counts as one failure (its run never finished)."""
import json
import os
import re
import sys

passed = failed = skipped = 0
failures = []


def count(t, label):
    global passed, failed, skipped
    name = f"{label}: {t['name']}" if label else t["name"]
    result = t.get("result", "")
    out = t.get("stdout") or ""
    rc = t.get("returncode")
    # A test whose process failed although every case it reported passed:
    # e.g. a sanitizer or valgrind report at exit (tools/sanitizer-wrap).
    exit_failed = result in ("FAIL", "ERROR") and rc not in (0, None)

    def failed_by_exit(nfail):
        global failed
        if exit_failed and nfail == 0:
            failed += 1
            failures.append(f"{name}: {result}, exit status {rc} with no failing case (see its log)")

    if result == "EXPECTEDFAIL":
        # a test that must fail (e.g. a TAP stream with failures on purpose)
        passed += 1
        return
    # pytest: its own closing line counts the cases ("3 failed, 40 passed in 9.1s")
    m = re.search(r"^=*\s*((?:\d+ (?:passed|failed|skipped|error|errors|xfailed|xpassed)(?:, )?)+) in [\d.]+s", out, re.M)
    if m and result not in ("TIMEOUT",):
        counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (\w+)", m.group(1)))
        passed += counts.get("passed", 0) + counts.get("xfailed", 0)
        skipped += counts.get("skipped", 0)
        nfail = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0) + counts.get("xpassed", 0)
        failed += nfail
        if nfail:
            failures.append(f"{name}: {nfail} pytest case(s) failed")
        failed_by_exit(nfail)
        return
    tap = [l for l in out.splitlines() if re.match(r"^(not )?ok\b", l)]
    # ERROR with exit status 0 is a TAP stream meson could not parse: one failure
    if tap and result != "TIMEOUT" and (result != "ERROR" or exit_failed):
        nfail = 0
        for l in tap:
            if l.startswith("not ok"):
                if "# TODO" in l:
                    continue
                failed += 1
                nfail += 1
                failures.append(f"{name}: {l}")
            elif "# SKIP" in l or "# skip" in l:
                skipped += 1
            else:
                passed += 1
        failed_by_exit(nfail)
        return
    if result in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif result == "SKIP":
        skipped += 1
    else:
        failed += 1
        failures.append(f"{name}: {result}")


args = sys.argv[1:]
if not args:
    sys.exit("usage: test-summary.py LOG.json [LABEL=LOG.json ...]")
for arg in args:
    label, _, path = arg.rpartition("=") if "=" in arg and not os.path.exists(arg) else ("", "", arg)
    try:
        f = open(path)
    except OSError as e:
        failed += 1
        failures.append(f"{label or path}: no test log ({e.strerror})")
        continue
    with f:
        for line in f:
            line = line.strip()
            if line:
                count(json.loads(line), label)
for f_ in failures:
    print("FAILED:", f_)
if skipped:
    print(f"{skipped} skipped (not counted below)")
# CI reads only the last line, and exactly in this form.
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
