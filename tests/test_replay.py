"""One analysis path: `forkscope triage --from RUN/snapshot.json --events
RUN/events.ndjson` must name exactly the verdicts that `run` and `watch`
wrote for that run (issue 12). Every verdict goes through the same code:
snapshot JSON + events -> wait-for graph -> rules -> verdicts.

Run by meson (tests/meson.build) with FORKSCOPE, SOURCE_ROOT and
HANG_FIXTURE_DIR set. This process is a child subreaper; every test asserts
that nothing it started is left.
"""
import json
import os
import pathlib
import signal
import subprocess
import tempfile

import pytest

from proctree import become_subreaper, nothing_left_behind  # noqa: F401 (autouse fixture)

FORKSCOPE = os.environ.get("FORKSCOPE", "")
SRC = os.environ.get("SOURCE_ROOT", "")
FIXTURES = os.environ.get("HANG_FIXTURE_DIR", "")

pytestmark = pytest.mark.skipif(not FORKSCOPE, reason="FORKSCOPE is not set (run through meson test)")

become_subreaper()

# Verdicts the supervisor adds from what it saw itself (leftovers, the
# teardown's measured phases), not from the snapshot: not replayable.
NOT_FROM_SNAPSHOT = {"escaped", "slow-teardown"}
# Findings that are not hangs (reports/verdict_class.c, is_hang false).
NOT_HANG_CLASSES = {"escaped", "slow-teardown", "slow-not-stuck"}


def key(verdicts):
    return sorted((v["class"], tuple(v.get("pids") or []), v.get("summary", ""))
                  for v in verdicts if v["class"] not in NOT_FROM_SNAPSHOT)


def replay(run_dir, snapshot_file, events_file):
    r = subprocess.run([FORKSCOPE, "triage", "--json", "--from", str(run_dir / snapshot_file),
                        "--events", str(run_dir / events_file)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


HANG_SCENARIOS = ["pipe-full", "eof-never", "mutual-wait", "boot-death", "lost-wakeup-futex",
                  "signal-blocked", "busy-loop", "uncancellable-wait"]


def test_run_verdicts_replay_exactly():
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "run"
        paths = [f"{SRC}/scenarios/{name}.yaml" for name in HANG_SCENARIOS]
        r = subprocess.run([FORKSCOPE, "run", "--out", str(out)] + paths,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        doc = json.loads((out / "result.json").read_text())
        replayed = 0
        for cell in doc["scenarios"]:
            if not cell.get("snapshot_file"):
                continue
            again = replay(out, cell["snapshot_file"], cell["events_file"])
            assert key(again["verdicts"]) == key(cell["verdicts"]), cell["id"]
            assert again["found_hangs"] == cell["found_hangs"], cell["id"]
            replayed += 1
        # every hang class of the list planted at least one hang
        assert replayed >= len(HANG_SCENARIOS)


WATCH_FIXTURES = ["pipe_full", "eof_never", "mutual_wait", "lost_wakeup_futex", "unreaped_zombie"]


@pytest.mark.parametrize("name", WATCH_FIXTURES)
def test_watch_verdicts_replay_exactly(name):
    exe = os.path.join(FIXTURES, f"hang_{name}")
    if not os.path.exists(exe):
        pytest.skip(f"{exe} not built")
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "watch"
        r = subprocess.run([FORKSCOPE, "watch", "--timeout", "2s", "--out", str(out), "--", exe],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 124, r.stderr
        doc = json.loads((out / "result.json").read_text())
        assert doc["snapshot_file"] == "snapshot.json"
        again = replay(out, "snapshot.json", "events.ndjson")
        assert key(again["verdicts"]) == key(doc["verdicts"])
        assert again["found_hangs"] == doc["found_hangs"]
        # a hang is a verdict of a hang class: the counts agree everywhere
        assert doc["found_hangs"] == sum(1 for v in doc["verdicts"] if v["class"] not in NOT_HANG_CLASSES)
