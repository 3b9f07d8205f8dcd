"""Fault injection (issue 8, item 2): forkscope under the faults it must
survive without leaving processes behind, stopped targets, torn or
half-written files, or a silent wrong answer.

- SIGKILL of `forkscope watch` (its worker, or its guardian) while the watched
  command's tree forks from a worker thread;
- triage of a tree whose processes fork, exec, exit and start threads during
  the snapshot;
- run directories and report outputs on a full and on a read-only filesystem;
- scenarios asking for more processes than a pids cgroup or RLIMIT_NPROC allow;
- malformed probe events in a run directory given to `report`.

Triage as an unprivileged user is tests/test_integration.py::
test_triage_without_ptrace_reports_why. docs/reliability.md ("Fault
injection") describes the mechanisms these tests check.

Run by meson (tests/meson.build, test 'faults') with FORKSCOPE, SOURCE_ROOT,
HANG_FIXTURE_DIR, FORKSCOPE_PROBE and CHURN_FIXTURE set. This process is a
child subreaper (test_integration sets it on import) and every test asserts
that nothing is left behind (the autouse no_leftovers fixture). Bounds on
waits are hang detectors only, never timing assertions.
"""
import contextlib
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_integration import (  # noqa: E402,F401  (no_leftovers: autouse fixture)
    FORKSCOPE, SRC, descendants, no_leftovers, proc_stats, reap_all, run)

PROBE = os.environ.get("FORKSCOPE_PROBE", "")
CHURN = os.environ.get("CHURN_FIXTURE", "")
NOBODY = 65534
HANG_BOUND = 60  # seconds: only to turn a hang into a failure


# ---- helpers ----

def proc_status(pid):
    """(State letter, TracerPid) of a live pid, None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status") as f:
            st = dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
    except OSError:
        return None
    state = st["State"].split()[0]
    return None if state in "ZX" else (state, int(st["TracerPid"]))


def alive(pid):
    return proc_status(pid) is not None


def pgid_members(pgid):
    return [pid for pid, (_, _, pg) in proc_stats().items() if pg == pgid]


def untouched(pids):
    """Processes of the tree that are stopped or traced (should be none)."""
    bad = []
    for pid in pids:
        st = proc_status(pid)
        if st and (st[0] in "tT" or st[1] != 0):
            bad.append((pid, st))
    return bad


def wait_gone(pids, what):
    """Reap (we are the subreaper) until none of pids is alive; fail on a stop."""
    stopped = []
    deadline = time.monotonic() + HANG_BOUND
    while True:
        reap_all()
        stopped += untouched(pids)
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not stopped, f"{what}: processes stopped or traced: {stopped}"
    assert not left, f"{what}: processes survived: {left}"


def ndjson_whole(path):
    """Every line of an events file is a JSON object (no torn line)."""
    with open(path, "rb") as f:
        data = f.read()
    for n, line in enumerate(data.split(b"\n"), 1):
        if line:
            assert isinstance(json.loads(line), dict), f"{path}:{n}"
    assert not data or data.endswith(b"\n"), f"{path}: last line torn"


def files_whole(root):
    """Nothing half-written under root: no temporary file of an atomic write
    left, every JSON file parses, every events file is whole lines."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            assert ".tmp." not in name, f"temporary file left: {path}"
            if name.endswith(".ndjson"):
                ndjson_whole(path)
            elif name.endswith(".json"):
                with open(path) as f:
                    json.load(f)


@contextlib.contextmanager
def tmpfs(size="64k"):
    """A tiny tmpfs of our own; skipped (with the reason) where mount is not allowed."""
    where = tempfile.mkdtemp(prefix="fs-faults-mnt-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", where],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(where)
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield where
    finally:
        reap_all()
        subprocess.run(["umount", where], check=True)
        os.rmdir(where)


def remount_ro(where):
    subprocess.run(["mount", "-o", "remount,ro", where], check=True)


def fill(where):
    """Fill the filesystem to the last byte."""
    fd = os.open(os.path.join(where, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096) > 0:
            pass
    except OSError:
        pass
    os.close(fd)
    assert os.statvfs(where).f_bavail == 0


def basic_run(out, scenario="scenarios/basics/one-child.yaml", *extra):
    r = run(["run", "--out", out, *extra, os.path.join(SRC, scenario)], timeout=HANG_BOUND * 2)
    assert r.returncode == 0, r.stderr
    return r


# ---- SIGKILL of `forkscope watch` ----

# The watched command: its children are forked from a worker thread (the
# forkserver pattern). One child has a grandchild, one leaves the process
# group (setsid): the process group alone does not find them all.
# Readiness: every process of the tree reports itself (a file named after its
# role, written and renamed once it exists in its final shape), and the top
# writes the ready file only when all four have - child 1 forks the grandchild
# after fork() has returned in the forking thread, so "the three children
# exist" was not "the tree exists" (issue 17).
WATCHED_TREE = r"""
import os, sys, threading, time
ready, thread_mode = sys.argv[1], sys.argv[2]
here = ready + ".d"
os.mkdir(here)
ROLES = ("child0", "child1", "grandchild", "child2")
go_on = threading.Event()

def report(role):
    with open(f"{here}/{role}.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(f"{here}/{role}.tmp", f"{here}/{role}")

def forker():
    for i in range(3):
        if os.fork() == 0:
            if i == 1 and os.fork() == 0:
                report("grandchild")
                time.sleep(3600)
                os._exit(0)
            if i == 2:
                os.setsid()
            report(f"child{i}")
            time.sleep(3600)
            os._exit(0)
    if thread_mode == "parked":
        go_on.wait()   # the forking thread stays alive

t = threading.Thread(target=forker, daemon=True)
t.start()
if thread_mode == "exited":
    t.join()       # the forking thread is gone before forkscope is killed
while not all(os.path.exists(f"{here}/{r}") for r in ROLES):
    time.sleep(0.01)
pids = [int(open(f"{here}/{r}").read()) for r in ROLES]
with open(ready + ".tmp", "w") as f:
    f.write(" ".join(map(str, [os.getpid()] + pids)))
os.rename(ready + ".tmp", ready)
time.sleep(3600)
"""


def end_watch(p):
    """SIGKILL the watch (guardian p) and everything below it, by pid, and
    reap: the clean-up of a test that failed before its own kill, so that
    the leftover check never blames forkscope for the test's processes.
    Orphans come to us (the subreaper), so our descendants are searched."""
    deadline = time.monotonic() + HANG_BOUND
    while True:
        reap_all()
        left = ([p.pid] if p.poll() is None else []) + descendants()
        if not left or time.monotonic() > deadline:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    p.wait(timeout=HANG_BOUND)


def start_watched_tree(tmp_path, thread_mode, preexec_fn=None):
    """forkscope watch over WATCHED_TREE, every process of it up: (Popen,
    tree pids, the command's pid, the worker's pid, stderr path). The caller
    ends the watch with end_watch() in a finally."""
    script = tmp_path / "tree.py"
    script.write_text(WATCHED_TREE)
    ready = tmp_path / "ready"
    err_path = tmp_path / "stderr"
    env = dict(os.environ, FORKSCOPE_PROBE=PROBE)
    with open(err_path, "w") as err:
        p = subprocess.Popen([FORKSCOPE, "watch", "--out", str(tmp_path / "run"), "--", sys.executable, str(script),
                              str(ready), thread_mode], stdout=subprocess.DEVNULL, stderr=err, env=env,
                             preexec_fn=preexec_fn)
    try:
        deadline = time.monotonic() + HANG_BOUND
        while not ready.exists():
            assert p.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, "the watched tree never came up"
            time.sleep(0.02)
        top, *kids = [int(x) for x in ready.read_text().split()]
        assert len(kids) == 4, kids
        tree = descendants(p.pid)
        with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
            worker = int(f.read().split()[0])
        # guardian -> worker -> the command -> 3 children + 1 grandchild: exactly these
        assert sorted(tree) == sorted([worker, top] + kids), (tree, worker, top, kids)
        assert worker != top
    except BaseException:
        end_watch(p)
        raise
    return p, tree, top, worker, err_path


@pytest.mark.parametrize("thread_mode", ["parked", "exited"])
@pytest.mark.parametrize("victim", ["worker", "guardian"])
def test_sigkill_of_watch_leaves_nothing(tmp_path, victim, thread_mode):
    p, tree, top, worker, err_path = start_watched_tree(tmp_path, thread_mode)
    try:
        os.kill(worker if victim == "worker" else p.pid, signal.SIGKILL)
        p.wait(timeout=HANG_BOUND)
        wait_gone(tree, f"SIGKILL of the watch {victim}")
    finally:
        end_watch(p)
    stderr = err_path.read_text()
    if victim == "worker":
        assert "the worker ended without tearing down its tree" in stderr, stderr
    else:
        assert "interrupted by SIGTERM" in stderr, stderr
    # the event log of a SIGKILLed watch is whole lines
    ndjson_whole(tmp_path / "run" / "events.ndjson")


def test_sigkill_of_watch_guardian_with_sigterm_ignored(tmp_path):
    """watch keeps an ignored SIGTERM ignored (for itself and the command), so
    the guardian's death must reach the worker through a signal of its own
    (guardian_lost_signal): with SIGTERM as the parent-death signal the
    worker and the whole tree lived on until the command ended."""
    p, tree, top, worker, err_path = start_watched_tree(
        tmp_path, "parked", preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    try:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=HANG_BOUND)
        wait_gone(tree, "SIGKILL of the watch guardian, SIGTERM ignored")
    finally:
        end_watch(p)
    assert "interrupted by SIGTERM" in err_path.read_text()


# ---- targets exiting, exec'ing and forking during a snapshot ----

def test_triage_of_a_churning_tree():
    """churn_tree forks short-lived children from two threads (exit at once,
    exec, live across the two samples, leave an orphan, start threads) and
    churns threads in the parent. Every triage ends 0 or 1 with a whole
    report, vanished processes are partial records with a reason, and no
    process is left stopped or traced."""
    assert CHURN, "CHURN_FIXTURE is not set (run through meson test)"
    p = subprocess.Popen([CHURN], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("READY"), line
        info = dict(kv.split("=", 1) for kv in line.split()[1:])
        root, pgid = int(info["parent"]), int(info["pgid"])
        assert root == pgid == p.pid, info
        vanished = 0
        for i in range(24):
            as_json = i % 2 == 0
            args = ["triage"] + (["--json"] if as_json else []) + (["--no-stacks"] if i % 6 == 5 else [])
            r = run(args + [str(root)], timeout=HANG_BOUND)
            assert r.returncode in (0, 1), (i, r.returncode, r.stderr[-3000:])
            if as_json:
                doc = json.loads(r.stdout)
                procs = doc["snapshot"]["processes"]
                me = next(pr for pr in procs if pr["pid"] == root)
                assert me["state"] and me["comm"] == "churn_tree", me
                for pr in procs:
                    assert isinstance(pr["pid"], int) and pr["pid"] > 0
                    if pr["partial"]:
                        assert pr["partial_reason"], pr
                    if pr["partial"] and re.search(r"exited during snapshot|No such file or directory|No such process",
                                                   pr["partial_reason"]):
                        vanished += 1
                    if pr["state"] is None:  # never read at all: must say why
                        assert pr["partial"] and pr["partial_reason"], pr
            else:
                assert re.search(r"^(No hang found\.|Found \d+ hangs?\.)$", r.stdout, re.M), r.stdout[-2000:]
            # the tree as the triage left it: nothing stopped, nothing traced
            bad = untouched(set(pgid_members(pgid)) | set(descendants(root)))
            assert not bad, (i, bad)
        assert vanished > 0, "no process vanished during any of the snapshots"
    finally:
        os.killpg(p.pid, signal.SIGKILL)   # the fixture leads its own process group
        p.wait()
        wait_gone(pgid_members(p.pid), "churn_tree")


def test_sigkill_of_triage_mid_snapshot_leaves_no_target_stopped():
    """triage SIGKILLed at spread-out moments of its snapshot (threads frozen
    with PTRACE_INTERRUPT, memory being read): the kernel detaches a dead
    tracer's tracees, so no process of the tree stays stopped or traced."""
    p = subprocess.Popen([CHURN], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("READY")
        for i in range(30):
            t = subprocess.Popen([FORKSCOPE, "triage", str(p.pid)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(i * 0.01)   # a different moment of the snapshot each time
            t.kill()
            t.wait()
            bad = untouched(set(pgid_members(p.pid)))
            assert not bad, (i, bad)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        wait_gone(pgid_members(p.pid), "churn_tree")


# ---- full and read-only filesystems ----

def test_run_on_a_full_filesystem():
    with tmpfs() as where:
        fill(where)
        out = os.path.join(where, "run")
        r = run(["run", "--out", out, os.path.join(SRC, "scenarios/basics/one-child.yaml")], timeout=HANG_BOUND)
        assert r.returncode == 2, r.stderr
        assert f"write {out}/result.json: No space left on device" in r.stderr, r.stderr
        # each cell is an infrastructure error naming the file it could not write
        assert re.search(r"^(\[\d+/\d+\] )?ERROR .*\n\s+could not run: cannot write " + re.escape(out) +
                         r"/cells/[^ ]+/spec\.json: No space left on device", r.stderr, re.M), r.stderr
        assert not os.path.exists(os.path.join(out, "result.json"))
        files_whole(out)
        # watch: the command runs and ends as usual; the run directory is refused
        wout = os.path.join(where, "watch")
        w = subprocess.run([FORKSCOPE, "watch", "--out", wout, "--", "true"], capture_output=True, text=True,
                           env=dict(os.environ, FORKSCOPE_PROBE=PROBE), timeout=HANG_BOUND)
        assert w.returncode == 125, w.stderr  # watch itself failed
        assert f"write {wout}/result.json: No space left on device" in w.stderr, w.stderr
        files_whole(wout)


def test_run_filling_the_filesystem_midway():
    """The disk fills while the trees write their events: the events files stay
    whole lines (a short write is cut back), result.json is refused, exit 2."""
    with tmpfs() as where:
        out = os.path.join(where, "run")
        r = run(["run", "--out", out, os.path.join(SRC, "scenarios/basics/tree-2x3.yaml")], timeout=HANG_BOUND * 2)
        assert r.returncode == 2, r.stderr
        assert "No space left on device" in r.stderr, r.stderr
        assert f"write {out}/result.json: No space left on device" in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(out, "result.json"))
        assert glob.glob(os.path.join(out, "cells/*/events.ndjson")), "no cell got to write events"
        files_whole(out)


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "tap", "trace", "html"])
def test_report_to_a_full_filesystem(tmp_path, fmt):
    basic_run(str(tmp_path / "run"))
    with tmpfs() as where:
        fill(where)
        target = os.path.join(where, "report." + fmt)
        r = run(["report", str(tmp_path / "run"), "--format", fmt, "-o", target])
        assert r.returncode == 2, r.stderr
        assert f"forkscope report: write {target}: No space left on device" in r.stderr, r.stderr
        assert sorted(os.listdir(where)) == ["filler"], os.listdir(where)


def test_read_only_filesystem(tmp_path):
    good = str(tmp_path / "good")
    basic_run(good)
    scenario = os.path.join(SRC, "scenarios/basics/one-child.yaml")
    with tmpfs() as where:
        os.mkdir(os.path.join(where, "existing"))
        subprocess.run(["cp", "-r", good, os.path.join(where, "old")], check=True)
        remount_ro(where)
        # a new run directory, and an existing one: refused before any tree runs
        for sub in ("new", "existing"):
            out = os.path.join(where, sub)
            r = run(["run", "--out", out, scenario], timeout=HANG_BOUND)
            assert r.returncode == 2, r.stderr
            assert f"cannot create or write the run directory {out}: Read-only file system" in r.stderr, r.stderr
            assert "PASS" not in r.stderr and "ERROR" not in r.stderr, r.stderr
            env = dict(os.environ, FORKSCOPE_PROBE=PROBE)
            w = subprocess.run([FORKSCOPE, "watch", "--out", out, "--", "true"], capture_output=True, text=True,
                               env=env, timeout=HANG_BOUND)
            assert w.returncode == 125, w.stderr  # watch itself failed
            assert f"cannot create or write the run directory {out}: Read-only file system" in w.stderr, w.stderr
        # renderings asked of run: each refused once, by name; the run itself is kept
        junit, html = os.path.join(where, "j.xml"), os.path.join(where, "r.html")
        r = run(["run", "--out", str(tmp_path / "o"), "--junit", junit, "--html", html, scenario], timeout=HANG_BOUND)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count(f"write {junit} (junit): Read-only file system") == 1, r.stderr
        assert r.stderr.count(f"write {html} (html): Read-only file system") == 1, r.stderr
        files_whole(str(tmp_path / "o"))
        # report reads a read-only run directory, and cannot write into it
        old = os.path.join(where, "old")
        assert run(["report", old, "--format", "json"]).returncode == 0
        r = run(["report", old, "--format", "html", "-o", os.path.join(old, "r.html")])
        assert r.returncode == 2
        assert f"write {old}/r.html: Read-only file system" in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(old, "r.html"))


# ---- more processes than the limit allows ----

MANY = """\
name: many
description: more actors than the process limit allows
tree:
  name: root
  steps: [{await: worker}]
  children:
    - name: worker
      count: 40
      steps: [{sleep: 2s}]
timeouts:
  run: 30s
matrix:
  backend: [mtf, fork, spawn]
expect:
  outcome: ok
  leaked: 0
"""


def check_limited_run(r, out):
    """Each cell: an infrastructure error naming the refused call and the
    limit, no hang verdict, nothing leaked; the run exits 1."""
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    with open(os.path.join(out, "result.json")) as f:
        doc = json.load(f)
    assert doc["summary"]["errors"] == len(doc["scenarios"]) == 3, doc["summary"]
    for c in doc["scenarios"]:
        assert c["outcome"] == "error", c["id"]
        assert c["infra_error"] and "process limit reached" in c["infra_error"], (c["id"], c["infra_error"])
        assert c["verdicts"] == [], (c["id"], c["verdicts"])
        assert c["leaked"] == 0, c["id"]
    assert re.search(r"^ERROR +many\[backend=mtf\]", r.stdout, re.M), r.stdout
    assert "could not run: " in r.stderr and "process limit reached" in r.stderr, r.stderr


@contextlib.contextmanager
def pids_cgroup(limit):
    base = "/sys/fs/cgroup/pids"
    if not os.path.isfile(os.path.join(base, "cgroup.procs")):
        pytest.skip("no cgroup v1 pids controller at /sys/fs/cgroup/pids")
    path = os.path.join(base, f"forkscope-faults-{os.getpid()}-{limit}")
    try:
        os.mkdir(path)
    except OSError as e:
        pytest.skip(f"cannot create a pids cgroup: {e}")
    try:
        with open(os.path.join(path, "pids.max"), "w") as f:
            f.write(str(limit))
        yield path
    finally:
        deadline = time.monotonic() + HANG_BOUND
        while True:
            reap_all()
            with open(os.path.join(path, "cgroup.procs")) as f:
                left = f.read().split()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        os.rmdir(path)
        assert not left, f"processes left in the pids cgroup: {left}"


# 3: the capture host cannot fork the root; 4: the mtf worker thread of the
# root cannot start (threads count); 8 and 20: a fork deep in the nursery.
@pytest.mark.parametrize("limit", [3, 4, 8, 20])
def test_pids_cgroup_limit_is_an_infrastructure_error(tmp_path, limit):
    spec = tmp_path / "many.yaml"
    spec.write_text(MANY)
    out = str(tmp_path / "run")
    with pids_cgroup(limit) as cg:
        r = subprocess.run(["sh", "-c", 'echo $$ > "$1/cgroup.procs" && exec "$2" run --out "$3" "$4"', "sh", cg,
                            FORKSCOPE, out, str(spec)], capture_output=True, text=True, timeout=HANG_BOUND * 2)
        check_limited_run(r, out)
        with open(os.path.join(cg, "pids.current")) as f:
            assert f.read().strip() == "0"


def test_rlimit_nproc_as_an_unprivileged_user():
    """RLIMIT_NPROC is not enforced for root: forkscope runs as nobody."""
    work = tempfile.mkdtemp(prefix="fs-faults-nproc-")
    os.chmod(work, 0o777)
    spec = os.path.join(work, "many.yaml")
    with open(spec, "w") as f:
        f.write(MANY)
    out = os.path.join(work, "run")
    # nobody's processes elsewhere count against the same limit: leave room for them
    others = sum(1 for d in os.listdir("/proc") if d.isdigit() and os.path.exists(f"/proc/{d}")
                 and _uid_of(d) == NOBODY)
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "prlimit",
                        f"--nproc={others + 12}", FORKSCOPE, "run", "--out", out, spec],
                       capture_output=True, text=True, timeout=HANG_BOUND * 2)
    if r.returncode != 1 and "setpriv" in r.stderr:
        pytest.skip(f"cannot switch to nobody: {r.stderr.strip()}")
    check_limited_run(r, out)
    subprocess.run(["rm", "-rf", work], check=True)


def _uid_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


# ---- malformed probe events given to `report` ----

def test_report_names_malformed_event_lines(tmp_path):
    out = str(tmp_path / "run")
    basic_run(out)
    with open(os.path.join(out, "result.json")) as f:
        doc = json.load(f)
    events = os.path.join(out, doc["scenarios"][0]["events_file"])
    with open(events, "rb") as f:
        lines = f.read().rstrip(b"\n").split(b"\n")
    n = len(lines)
    damage = [
        (b'{"ts_ns":1,"pid":2,"ev":"tru', r"invalid JSON: .*premature end of input"),       # truncated
        (b'{"ev":"x","pad":"' + b"a" * (2 * 1024 * 1024) + b'"}', r"line of \d+ bytes, longer than 1048576"),
        (bytes(range(0x80, 0x100)) + b"\x1b[31m", r"invalid JSON"),                        # binary garbage
        (b'{"ts_ns":1,\x00\x00"pid":2}', r"NUL byte at column 12"),                        # NUL bytes
        (b"[1,2,3]", r"not a JSON object"),
    ]
    with open(events, "ab") as f:
        for text, _ in damage:
            f.write(text + b"\n")
        f.write(b'{"ts_ns":3,"pid":4,"ev":"exit"')   # a torn last line, no newline
    for fmt in ("text", "json", "junit", "tap", "trace", "html"):
        target = str(tmp_path / f"again.{fmt}")
        r = run(["report", out, "--format", fmt, "-o", target])
        # the report is still made, the damage named on stderr by file and line
        assert r.returncode == 0, r.stderr
        assert os.path.getsize(target) > 0
        for k, (_, reason) in enumerate(damage):
            assert re.search(f"^{re.escape(events)}:{n + 1 + k}: {reason}", r.stderr, re.M), (k, r.stderr)
        assert re.search(f"^{re.escape(events)}:{n + 1 + len(damage)}: invalid JSON: .*torn write", r.stderr,
                         re.M), r.stderr
        assert "6 malformed lines" in r.stderr and "rendered from result.json" in r.stderr, r.stderr
        assert "\x1b" not in r.stderr and "\x00" not in r.stderr   # the terminal is safe
    again = json.load(open(tmp_path / "again.json"))
    assert again["summary"] == doc["summary"]
    # an events file named by result.json but missing: named too, still a report
    os.unlink(events)
    r = run(["report", out, "--format", "text"])
    assert r.returncode == 0 and f"{events}: No such file or directory" in r.stderr, r.stderr
    # result.json itself damaged: no report, where it broke, exit 2
    with open(os.path.join(out, "result.json"), "w") as f:
        f.write('{"schema_version": 1,\n "scenarios": [\n')
    r = run(["report", out, "--format", "text"])
    assert r.returncode == 2
    assert re.search(f"^{re.escape(out)}/result.json:3:\\d+: ", r.stderr, re.M), r.stderr
