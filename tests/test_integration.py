"""Integration tests: the real forkscope binary on real scenarios and fixtures.

Every test that builds process trees checks that nothing is left behind: this
process is a child subreaper, so anything forkscope failed to end would be
reparented to it and show up as a descendant.
"""
import ctypes
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

FORKSCOPE = os.environ["FORKSCOPE"]
SRC = os.environ["SOURCE_ROOT"]
FIXTURES = os.environ.get("HANG_FIXTURE_DIR", "")

PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def proc_stats():
    """{pid: (state, ppid, pgid)} of every process, from /proc/PID/stat (the
    command name may hold spaces and parentheses: split after the last ')')."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        procs[int(d)] = (rest[0], int(rest[1]), int(rest[2]))
    return procs


def descendants(root=None):
    """Live descendants of root (default: this process), by ppid links."""
    root = root or os.getpid()
    procs = {pid: (ppid, state) for pid, (state, ppid, _) in proc_stats().items()}
    out, frontier = [], {root}
    while frontier:
        nxt = {p for p, (pp, st) in procs.items() if pp in frontier}
        out += [p for p in nxt if procs[p][1] not in "ZX"]
        frontier = nxt
    return out


def reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    reap_all()
    left = descendants()
    for p in left:  # ours to end: we are their subreaper
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap_all()
    assert left == [], f"processes left behind: {left}"


def run(args, **kw):
    return subprocess.run([FORKSCOPE] + args, capture_output=True, text=True, **kw)


def run_scenarios(paths, *extra):
    out = tempfile.mkdtemp(prefix="fs-it-")
    r = run(["run", "--out", out, *extra, *paths])
    with open(os.path.join(out, "result.json")) as f:
        doc = json.load(f)
    return r, doc, out


def names_in(error):
    return [error["actor"]] + [n for c in error.get("children", []) for n in names_in(c)]


# ---- issue 2: the basics under all three backends ----

def test_basics_meet_expectations_on_every_backend():
    r, doc, _ = run_scenarios([os.path.join(SRC, "scenarios/basics")], "--matrix")
    assert r.returncode == 0, r.stdout + r.stderr
    cells = doc["scenarios"]
    assert {c["backend"] for c in cells} == {"mtf", "fork", "spawn"}
    assert re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M)
    for c in cells:
        assert c["passed"], (c["id"], c["mismatches"])
        assert c["leaked"] == 0
        # every actor that was spawned was reaped
        for a in c["actors"]:
            if a["kind"] == "actor" and a["id"] != 0 and a["pid"]:
                assert a["reap_ns"] is not None, (c["id"], a["name"])
        if c["name"] == "two-errors":
            assert c["outcome"] == "error"
            named = names_in(c["errors"][0])
            assert "a-bad" in named and "b-bad" in named, named
            for e in c["errors"][0]["children"]:
                assert e["pid"] > 0 and e["exit_status"]["code"] == 1
        if c["name"] == "ignore-cancel":
            stubborn = next(a for a in c["actors"] if a["name"] == "stubborn")
            ladder = stubborn["ladder"]
            assert ladder["cancel_sent_ns"] < ladder["sigterm_ns"] < ladder["sigkill_ns"] <= ladder["reaped_ns"]
            assert stubborn["exit_status"]["signal"] == "SIGKILL"
            phase = next(p for p in c["teardown"]["phases"] if p["actor"] == "stubborn")
            assert phase["ended_by"] == "SIGKILL"
        if c["name"] == "boot-death-raced":
            child = c["errors"][0]["children"][0]
            assert child["exit_status"]["code"] == 2
            assert "boot" in child["message"]


def test_fork_records_what_crossed():
    """mtf forks from a non-main thread of a 2-thread parent; fork forks from the main thread."""
    _, doc, _ = run_scenarios([os.path.join(SRC, "scenarios/basics/one-child.yaml")])
    by_backend = {c["backend"]: c for c in doc["scenarios"]}
    mtf_child = next(a for a in by_backend["mtf"]["actors"] if a["name"] == "child")
    fork_child = next(a for a in by_backend["fork"]["actors"] if a["name"] == "child")
    assert mtf_child["forking_thread_is_main"] is False and mtf_child["threads_at_fork"] == 2
    assert mtf_child["threads_at_start"] == 1
    assert fork_child["forking_thread_is_main"] is True
    spawn_child = next(a for a in by_backend["spawn"]["actors"] if a["name"] == "child")
    assert spawn_child["exec"] is True and spawn_child["fds_unexpected"] == []


def test_fd_scrub_decides_what_grandchildren_inherit(tmp_path):
    spec = tmp_path / "inherit.yaml"
    spec.write_text("""
name: inherit
tree:
  name: root
  steps: [{await: mid}]
  children:
    - name: mid
      steps: [{await: leaf}]
      children:
        - name: leaf
          steps: [{sleep: 10ms}]
matrix:
  fixes.fd_scrub: [off, on]
""")
    _, doc, out = run_scenarios([str(spec)])
    for c in doc["scenarios"]:
        events = [json.loads(l) for l in open(os.path.join(out, c["events_file"]))]
        start = next(e for e in events if e["ev"] == "child_start" and e["actor"] == "leaf")
        kinds = {(f["kind"], f.get("detail", "")) for f in start["fds"] if f["fd"] > 2}
        if c["cell"] == "fixes.fd_scrub=off":
            # the root's listener and mid's channel to the root came along
            assert ("socket", "unix stream listening") in kinds, kinds
            assert ("socket", "unix stream connected") in kinds, kinds
        else:
            assert kinds == set(), kinds
            scrub = next(e for e in events if e["ev"] == "fd_scrub" and e["actor"] == "leaf")
            assert scrub["n_closed"] > 0


def test_invalid_scenario_gives_file_line_col_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntree:\n  name: root\n  steps:\n    - sleep: 25 ms\n")
    r = run(["run", "--out", str(tmp_path / "o"), str(bad)])
    assert r.returncode == 2
    assert re.search(re.escape(str(bad)) + r":5:\d+: ", r.stderr), r.stderr


def test_usage_errors_exit_2():
    assert run(["run"]).returncode == 2
    assert run(["run", "--shard", "3/2", "x"]).returncode == 2
    assert run(["bogus"]).returncode == 2
    assert run(["triage"]).returncode == 2


# ---- issue 5: the catalogue, verdicts checked independently ----

# class named by each fix-off cell, written here rather than read from the files
EXPECTED_OFF = {
    ("eof-never", "fixes.fd_scrub=off,backend=mtf"): "eof-never",
    ("eof-never", "fixes.fd_scrub=off,backend=fork"): "eof-never",
    ("uncancellable-wait", "fixes.wait=thread"): "uncancellable-wait",
    ("mutual-wait", "fixes.cancel_first=off"): "mutual-wait",
    ("pipe-full", "capture=pipe,fixes.stdio=inherit"): "pipe-full",
    ("signal-blocked", "fixes.reset_sigmask=off,backend=mtf"): "signal-blocked",
    ("busy-loop", "fixes.fd_scrub=off"): "busy-loop",
    ("boot-death", "fixes.boot_race=off,backend=mtf"): "boot-death",
    ("boot-death", "fixes.boot_race=off,backend=fork"): "boot-death",
    ("boot-death", "fixes.boot_race=off,backend=spawn"): "boot-death",
    ("lost-wakeup-futex", "fixes.atfork_locks=off,backend=mtf"): "lost-wakeup-futex",
    ("lost-wakeup-futex", "fixes.atfork_locks=off,backend=fork"): "lost-wakeup-futex",
    ("slow-teardown", "timeouts.cancel_ack=500ms,timeouts.hard_kill=1600ms"): "slow-teardown",
    ("slow-teardown", "timeouts.cancel_ack=100ms,timeouts.hard_kill=1600ms"): "slow-teardown",
    ("escaped", "fixes.tree_kill=off,interrupt.signal=SIGINT"): "escaped",
    ("escaped", "fixes.tree_kill=off,interrupt.signal=SIGKILL"): "escaped",
    ("escaped", "fixes.tree_kill=on,interrupt.signal=SIGKILL"): "escaped",
    ("fd-alias", "fixes.scrub_mode=close"): "fd-alias",
}


def test_catalogue_names_every_class_and_proves_every_fix():
    files = sorted(os.path.join(SRC, "scenarios", f) for f in os.listdir(os.path.join(SRC, "scenarios"))
                   if f.endswith(".yaml"))
    assert len(files) == 11
    r, doc, out = run_scenarios(files)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    seen = set()
    for c in doc["scenarios"]:
        key = (c["name"], c["cell"])
        classes = [v["class"] for v in c["verdicts"]]
        if key in EXPECTED_OFF:
            seen.add(key)
            assert EXPECTED_OFF[key] in classes, (key, classes)
            if EXPECTED_OFF[key] not in ("slow-teardown", "escaped"):
                assert c["outcome"] == "hang", key
                assert c["snapshot_file"], key
                v = next(v for v in c["verdicts"] if v["class"] == EXPECTED_OFF[key])
                assert v["chain"] and v["pids"] and v["remedy"], key
                # the pids named are processes of this cell
                actor_pids = {a["pid"] for a in c["actors"]}
                assert set(v["pids"]) <= actor_pids, (key, v["pids"], actor_pids)
        else:
            # fix on (or a backend that does not have the hazard): clean
            assert [x for x in classes if x not in ("slow-teardown",)] == [], (key, classes)
            assert c["outcome"] != "hang", key
            assert c["leaked"] == 0, key
    assert seen == set(EXPECTED_OFF), set(EXPECTED_OFF) - seen
    # slow-teardown: the per-level, per-phase breakdown adds up to the timeouts
    slow = next(c for c in doc["scenarios"] if c["name"] == "slow-teardown" and "1600ms" in c["cell"])
    td = slow["teardown"]
    assert td["over_budget"] and td["duration_ns"] > td["budget_ns"]
    assert td["duration_ns"] >= 1_600_000_000
    assert {p["depth"] for p in td["phases"]} == {1, 2}
    # pipe-full: the tmpfile capture (what pytest --capture=fd does) does not hang,
    # and its children's stdout is a deleted regular file
    tmp = next(c for c in doc["scenarios"] if c["name"] == "pipe-full" and c["cell"] == "capture=tmpfile,fixes.stdio=inherit")
    logger = next(a for a in tmp["actors"] if a["name"] == "logger-1")
    assert logger["stdio"]["1"] == "file (deleted)"


# ---- issue 4: triage on fixtures that hang on their own ----

FIXTURE_VERDICTS = {
    "pipe_full": ("pipe-full", "parent", r"^pipe:\[\d+\] 65536/65536$"),
    "eof_never": ("eof-never", "parent", r"^pipe:\[\d+\]$"),
    "mutual_wait": ("mutual-wait", "parent", None),
    "lost_wakeup_futex": ("lost-wakeup-futex", "parent", r"^futex 0x[0-9a-f]+ owner tid \d+$"),
    "signal_blocked": ("signal-blocked", "child", r"SIGINT pending and blocked"),
    "busy_loop": ("busy-loop", "pid", r"^(recvfrom|read) on socket:\[\d+\]$"),
    "unreaped_zombie": ("unreaped-zombie", "parent", r"^zombie pid \d+$"),
    "boot_death": ("boot-death", "parent", r"^zombie pid \d+$"),
}


# fixtures with a thread that spins: "running" is the state they settle in
SPINNING = {"busy_loop", "healthy_busy", "healthy_poll"}


def start_fixture(name):
    exe = os.path.join(FIXTURES, "hang_" + name)
    p = subprocess.Popen([exe], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("READY"), line
    info = dict(kv.split("=", 1) for kv in line.split()[1:])
    return p, info


def thread_states(pids):
    """{pid: [(state, wchan) of each thread]} of the pids that can be read."""
    out = {}
    for pid in pids:
        try:
            states = []
            for t in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{t}/stat") as f:
                    s = f.read()
                with open(f"/proc/{pid}/task/{t}/wchan") as f:
                    wchan = f.read().strip()
                states.append((s[s.rindex(")") + 2], wchan))
            out[pid] = states
        except OSError:
            pass
    return out


def settled(pids, running=False):
    """Wait until every thread of every one of pids is asleep inside a kernel
    wait (wchan set), a zombie or gone - or running, for a fixture that spins
    (running=True) - in three samples in a row: the fixture reached its hang.
    A thread still on its way there is running, so "running" settles only
    the fixtures that spin. The bound is a hang detector, not a timing
    assertion: a fixture that never settles fails here, with its states."""
    ok = "RZ" if running else "Z"
    stable, states = 0, {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = thread_states(pids)
        if states and all(
                st in ok or (st == "S" and w not in ("", "0")) for ts in states.values() for st, w in ts):
            stable += 1
            if stable >= 3:
                return
        else:
            stable = 0
        time.sleep(0.05)
    pytest.fail(f"the fixture never settled: {states}")


def wait_dead(pids, pgid, bound_s=30.0):
    """SIGKILL is asynchronous: wait (bounded) until each of pids and every
    member of process group pgid is a zombie or gone (kill() returns while
    the target may still be exiting; seen on a loaded machine)."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        alive = any(state not in "ZX" and (pid in pids or pg == pgid)
                    for pid, (state, _, pg) in proc_stats().items())
        if not alive:
            return
        time.sleep(0.01)


def end_fixture(p, info):
    killed = []
    for key in ("child", "grandchild", "holder"):
        if key in info and info[key].isdigit():
            try:
                os.kill(int(info[key]), signal.SIGKILL)
                killed.append(int(info[key]))
            except ProcessLookupError:
                pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    wait_dead(killed, p.pid)
    reap_all()


def status_of(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
    return st["State"].split()[0], int(st["TracerPid"])


@pytest.mark.parametrize("name", sorted(FIXTURE_VERDICTS))
def test_triage_names_fixture_hang(name):
    cls, who, resource = FIXTURE_VERDICTS[name]
    p, info = start_fixture(name)
    try:
        # the fixture's processes and threads (holder is a thread of the parent)
        pids = [int(v) for k, v in info.items() if k in ("parent", "child", "grandchild", "pid", "holder")]
        settled([pid for pid in pids if str(pid) != info.get("holder")], running=name in SPINNING)
        target = int(info.get(who, p.pid)) if who != "pid" else p.pid
        r = run(["triage", "--json", str(target)])
        assert r.returncode == 1, r.stderr
        doc = json.loads(r.stdout)
        verdicts = doc["verdicts"]
        assert [v["class"] for v in verdicts] == [cls], verdicts
        v = verdicts[0]
        assert target in v["pids"]
        for key in ("parent", "child", "grandchild", "pid"):
            if key in info and name not in ("signal_blocked",):
                pass
        if name in ("pipe_full", "lost_wakeup_futex", "unreaped_zombie", "boot_death", "mutual_wait"):
            assert int(info["child"]) in v["pids"], (v["pids"], info)
        if name == "eof_never":
            assert int(info["grandchild"]) in v["pids"], (v["pids"], info)
        if resource:
            assert v["resource"] and re.search(resource, v["resource"]), v["resource"]
        assert v["stacks"], "stacks of the threads involved"
        # text form: the verdict and the closing line
        t = run(["triage", str(target)])
        assert t.returncode == 1 and "Found 1 hang." in t.stdout and cls in t.stdout
        # every target is as it was: not stopped, not traced
        for pid in pids:
            try:
                state, tracer = status_of(pid)
            except OSError:
                continue
            assert state not in "tT" and tracer == 0, (pid, state, tracer)
    finally:
        end_fixture(p, info)


@pytest.mark.parametrize("name", ["healthy_poll", "healthy_busy"])
def test_triage_finds_no_hang_in_healthy_trees(name):
    p, info = start_fixture(name)
    try:
        settled([p.pid] + [int(info[k]) for k in ("child",) if k in info], running=name in SPINNING)
        r = run(["triage", str(p.pid)])
        assert r.returncode == 0, r.stdout
        assert "No hang found." in r.stdout
    finally:
        end_fixture(p, info)


def test_triage_replays_a_recorded_snapshot():
    p, info = start_fixture("pipe_full")
    try:
        settled([p.pid, int(info["child"])])
        r = run(["triage", "--json", str(p.pid)])
        snap = tempfile.mktemp(suffix=".json")
        with open(snap, "w") as f:
            json.dump(json.loads(r.stdout)["snapshot"], f)
    finally:
        end_fixture(p, info)
    # the processes are gone: the recorded snapshot still gives the verdict
    again = run(["triage", "--from", snap, "--explain"])
    assert again.returncode == 1 and "pipe-full" in again.stdout and "waits for:" in again.stdout


def test_triage_of_a_missing_pid_exits_2():
    r = run(["triage", "999999999"])
    assert r.returncode == 2


def test_user_rules_extend_and_bad_rules_are_refused(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("""rules:
  - name: fixture-reader
    class: my-pipe-reader-stuck
    title: the fixture's reader is stuck
    remedy: read while waiting
    priority: 200
    match:
      comm: '^hang_pipe_full$'
      syscall: '^wait4$'
    require: [stuck]
""")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - class: x\n    require: [no_such_predicate]\n")
    r = run(["triage", "--rules", str(bad), "1"])
    assert r.returncode == 2 and re.search(re.escape(str(bad)) + r":3:\d+: unknown predicate", r.stderr), r.stderr
    p, info = start_fixture("pipe_full")
    try:
        settled([p.pid, int(info["child"])])
        r = run(["triage", "--json", "--rules", str(rules), str(p.pid)])
        classes = [v["class"] for v in json.loads(r.stdout)["verdicts"]]
        assert classes == ["my-pipe-reader-stuck"], classes
    finally:
        end_fixture(p, info)


def test_triage_without_ptrace_reports_why(tmp_path):
    """As an unprivileged user on root's tree (issue 8, fault injection): no
    stacks, the reason for each process, no crash; the processes are there
    and partly readable (stat, status, wchan), so the exit status is 0 or 1
    (DESIGN: 2 only when nothing could be read), and the targets are left as
    they were."""
    p, info = start_fixture("mutual_wait")
    try:
        pids = [p.pid, int(info["child"])]
        settled(pids)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", FORKSCOPE, "triage"]
        r = subprocess.run(nobody + ["--json", str(p.pid)], capture_output=True, text=True)
        assert r.returncode in (0, 1), r.stderr
        doc = json.loads(r.stdout)
        procs = {pr["pid"]: pr for pr in doc["snapshot"]["processes"]}
        for pid in pids:
            pr = procs[pid]
            assert pr["state"], pr  # what an unprivileged user may read, was read
            assert re.search(r"ptrace: Operation not permitted .*CAP_SYS_PTRACE", pr["stacks_error"] or ""), pr
            assert pr["partial"] and "fd: Permission denied" in pr["partial_reason"], pr
            assert not any(t.get("stack") for t in pr["threads"]), pr
        # the same said on stderr next to the JSON, and in the text report
        assert "Incomplete snapshot" in r.stderr and "no stacks: ptrace" in r.stderr, r.stderr
        t = subprocess.run(nobody + [str(p.pid)], capture_output=True, text=True)
        assert t.returncode in (0, 1), t.stderr
        assert re.search(rf"^  pid {p.pid} \(hang_mutual_wai\): no stacks: ptrace: Operation not permitted", t.stdout,
                         re.M), t.stdout
        assert "Run triage as root" in t.stdout, t.stdout
        assert re.search(r"^(No hang found\.|Found \d+ hangs?\.)$", t.stdout, re.M), t.stdout
        for pid in pids:
            state, tracer = status_of(pid)
            assert state not in "tT" and tracer == 0, (pid, state, tracer)
    finally:
        end_fixture(p, info)


# ---- run: --hold, SIGKILL of forkscope, reports ----

def test_hold_leaves_the_tree_and_says_how_to_end_it(tmp_path):
    # the held tree keeps forkscope's stdio open: use files, not pipes
    err_path = tmp_path / "stderr"
    pgid = None
    try:
        with open(err_path, "w") as err, open(os.devnull, "w") as out:
            p = subprocess.Popen([FORKSCOPE, "run", "--hold", "--out", str(tmp_path / "o"), "--set",
                                  "backend=fork", os.path.join(SRC, "scenarios/mutual-wait.yaml")],
                                 stdout=out, stderr=err)
            assert p.wait(timeout=120) in (0, 1)
        stderr = err_path.read_text()
        m = re.search(r"process group (\d+)", stderr)
        assert m and "kill -INT -- -" in stderr, stderr
        pgid = int(m.group(1))
        assert descendants(), "the held tree should still be there"
    finally:
        # end the held tree (and anything else of ours) by pid and by its group
        left = descendants()
        if pgid is not None:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_dead(left, pgid if pgid is not None else -1)
        reap_all()


# A tree that stays up, asleep, until it is killed: 1 root, 2 workers, 4 leaves.
SLEEPERS = """\
name: sleepers
tree:
  name: root
  steps: [{await: worker}]
  children:
    - name: worker
      count: 2
      steps: [{await: leaf}]
      children:
        - name: leaf
          count: 2
          steps: [{sleep: 3600s}]
timeouts:
  run: 3600s
"""


def started_actors(out):
    """{actor name: pid} of the actors of the one cell of run directory out that
    have said so in their events: the root's `ready`, the others' `child_start`."""
    actors = {}
    for path in glob.glob(os.path.join(out, "cells", "*", "events.ndjson")):
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):  # a line being written is read next time
                    e = json.loads(line)
                    if e["ev"] == "child_start" or (e["ev"] == "ready" and e.get("actor") == "root"):
                        actors[e["actor"] + f"@{e.get('ppid', 0)}"] = e["pid"]
    return actors


def kill_tree_of(p):
    """SIGKILL p and every process below it, by pid, until none is left (the
    clean-up of a test that failed before its own kill; orphans come to us)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        reap_all()
        left = ([p.pid] if p.poll() is None else []) + descendants()
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    p.wait(timeout=60)


@pytest.mark.parametrize("victim", ["worker", "guardian"])
def test_sigkill_of_forkscope_leaves_nothing(tmp_path, victim):
    spec = tmp_path / "sleepers.yaml"
    spec.write_text(SLEEPERS)
    out = str(tmp_path / "o")
    p = subprocess.Popen([FORKSCOPE, "run", "--out", out, str(spec)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # wait until every one of the 7 actors is up (a hang detector bound)
        deadline = time.monotonic() + 60
        while len(started_actors(out)) < 7:
            assert p.poll() is None, "forkscope ended before its tree was up"
            assert time.monotonic() < deadline, ("the tree never came up", started_actors(out))
            time.sleep(0.02)
        actors = set(started_actors(out).values())
        tree = descendants(p.pid)
        assert actors <= set(tree), (actors, tree)
        with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
            worker = int(f.read().split()[0])
        os.kill(worker if victim == "worker" else p.pid, signal.SIGKILL)
        p.wait(timeout=60)
        # SIGKILL is asynchronous: wait (bounded) until the tree has exited
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reap_all()
            if not descendants():
                break
            time.sleep(0.02)
        assert descendants() == []
    finally:
        kill_tree_of(p)


def test_reports_from_a_run_directory(tmp_path):
    r, doc, out = run_scenarios([os.path.join(SRC, "scenarios/boot-death.yaml")],
                                "--junit", str(tmp_path / "j.xml"), "--tap", str(tmp_path / "t.tap"),
                                "--trace", str(tmp_path / "trace.json"), "--html", str(tmp_path / "r.html"))
    assert r.returncode == 0
    assert subprocess.run(["xmllint", "--noout", str(tmp_path / "j.xml")]).returncode == 0
    trace = json.load(open(tmp_path / "trace.json"))
    assert all("dur" in e for e in trace["traceEvents"] if e.get("ph") == "X")
    tap = open(tmp_path / "t.tap").read()
    assert tap.startswith("TAP version 13") and "1..6" in tap
    html = open(tmp_path / "r.html").read()
    assert "<svg" in html and "forkscope-data" in html
    for fmt in ("text", "json", "junit", "tap", "trace", "html"):
        rr = run(["report", out, "--format", fmt, "-o", str(tmp_path / f"again.{fmt}")])
        assert rr.returncode == 0, rr.stderr
    again = json.load(open(tmp_path / "again.json"))
    assert again["summary"] == doc["summary"]
    assert run(["report", str(tmp_path / "nowhere"), "--format", "text"]).returncode == 2


# ---- issue 9: Python frames in triage ----

def test_triage_shows_python_frames_of_the_threads_involved():
    script = os.path.join(SRC, "fixtures/python/lock_blocked.py")
    p = subprocess.Popen(["/usr/bin/python3", script], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("READY")
        settled([p.pid])
        r = run(["triage", "--json", str(p.pid)])
        assert r.returncode == 1, r.stderr
        doc = json.loads(r.stdout)
        v = doc["verdicts"][0]
        frames = [f for ts in v["stacks"][str(p.pid)] for f in ts["frames"]]
        assert any(re.search(r"blocked_worker \(.*lock_blocked\.py:\d+\)", f) for f in frames), frames
        assert any(re.search(r"Thread\.join \(.*threading\.py:\d+\)", f) for f in frames), frames
        py = doc["snapshot"]["processes"][0]["python"]
        assert py["version"].startswith("3.")
        off = json.loads(run(["triage", "--json", "--python=off", str(p.pid)]).stdout)
        frames = [f for ts in off["verdicts"][0]["stacks"][str(p.pid)] for f in ts["frames"]]
        assert not any("lock_blocked.py" in f for f in frames)
    finally:
        p.kill()
        p.wait()
