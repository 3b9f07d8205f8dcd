"""`forkscope watch` end to end: the probe in real Python programs (threads,
pytest --capture=fd), the event log under concurrency and SIGKILL, exit
status passthrough, leftovers, timeouts and the self-dump with ptrace denied.

Run by meson (tests/meson.build) with FORKSCOPE, FORKSCOPE_PROBE,
PROBE_CHECK and SELFDUMP_FIXTURE set. The test process is a child subreaper
and every test asserts that no process it started is left."""
import ctypes
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

FORKSCOPE = os.environ.get("FORKSCOPE", "")
PY = sys.executable
PR_SET_CHILD_SUBREAPER = 36

pytestmark = pytest.mark.skipif(not FORKSCOPE, reason="FORKSCOPE is not set (run through meson test)")

libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def descendants():
    """Live processes below us, after reaping the zombies that are ours."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [os.getpid()]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    left = descendants()
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    descendants()
    assert not left, f"processes left running: {left}"


def watch(tmp_path, cmd, *options, timeout=120, user=None, name="run"):
    """Run forkscope watch; stdout and stderr go through files, not pipes, so
    a tree left running (--hold) cannot keep us waiting for EOF."""
    out = tmp_path / name
    args = [FORKSCOPE, "watch", "--out", str(out), *options, "--", *cmd]
    extra = {}
    if user is not None:
        extra = dict(user=user, group=user, extra_groups=[])
    with open(tmp_path / f"{name}.stdout", "w+b") as o, open(tmp_path / f"{name}.stderr", "w+b") as e:
        proc = subprocess.run(args, stdout=o, stderr=e, timeout=timeout, stdin=subprocess.DEVNULL, **extra)
        o.seek(0)
        e.seek(0)
        proc.stdout, proc.stderr = o.read(), e.read()
    return proc, out


def load_events(run_dir):
    """Every line must parse: a torn or interleaved line fails here."""
    events = []
    with open(run_dir / "events.ndjson", "rb") as f:
        data = f.read()
    assert data.endswith(b"\n")
    for n, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            ev = json.loads(line)
        except ValueError as e:
            pytest.fail(f"events.ndjson:{n}: {e}: {line[:200]!r}")
        assert isinstance(ev, dict) and {"ts_ns", "pid", "tid", "ev"} <= ev.keys(), line[:200]
        events.append(ev)
    return events


def result(run_dir):
    with open(run_dir / "result.json") as f:
        return json.load(f)


def of(events, name, **match):
    return [e for e in events if e["ev"] == name and all(e.get(k) == v for k, v in match.items())]


THREAD_FORKS = textwrap.dedent("""
    import os, threading
    def worker():
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                os.write(1, b"child %d wrote\\n" % i)
                os._exit(0)
            os.waitpid(pid, 0)
    t = threading.Thread(target=worker, name="forker")
    t.start()
    t.join()
    print("parent done", flush=True)
""")


def test_thread_forks_three_children(tmp_path):
    plain = subprocess.run([PY, "-c", THREAD_FORKS], capture_output=True, timeout=60)
    proc, run = watch(tmp_path, [PY, "-c", THREAD_FORKS])
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == plain.stdout == b"child 0 wrote\nchild 1 wrote\nchild 2 wrote\nparent done\n"

    ev = load_events(run)
    top = of(ev, "exec")[0]
    py = top["pid"]
    forks = of(ev, "fork", pid=py)
    assert len(forks) == 3
    for f in forks:
        assert f["forking_thread_is_main"] is False
        assert f["forking_tid"] != py
        assert len(f["threads"]) == 2
        assert {t["tid"] for t in f["threads"]} == {py, f["forking_tid"]}
        assert all(t["name"] and t["state"] for t in f["threads"])
    children = {f["child_pid"] for f in forks}
    starts = [e for e in of(ev, "child_start") if e["pid"] in children]
    assert len(starts) == 3 and all(s["ppid"] == py and s["threads"] == 1 for s in starts)
    exits = [e for e in of(ev, "exit") if e["pid"] in children]
    assert len(exits) == 3 and all(e["code"] == 0 and e["via"] == "_exit" for e in exits)
    reaped = of(ev, "reaped", pid=py)
    assert {r["child_pid"] for r in reaped} == children and all(r["code"] == 0 for r in reaped)

    doc = result(run)
    assert doc["command"] == "watch" and doc["outcome"] == "ok" and doc["leaked"] == 0
    assert doc["scenarios"][0]["name"] == doc["name"]
    actors = doc["actors"]
    assert actors[0]["pid"] == py and actors[0]["depth"] == 0
    kids = [a for a in actors if a["pid"] in children]
    assert len(kids) == 3
    for a in kids:
        assert a["depth"] == 1 and a["parent"] == actors[0]["id"] and a["ppid"] == py
        assert a["threads_at_fork"] == 2 and a["forking_thread_is_main"] is False
        assert a["exit_status"] == {"code": 0, "signal": None}
        assert a["fork_ns"] is not None and a["reap_ns"] >= a["exit_ns"] >= a["fork_ns"]
        assert a["stdio"]["1"] == "file"  # watch() sends output to a file


PYTEST_FORKS = textwrap.dedent("""
    import os
    def test_fork():
        pid = os.fork()
        if pid == 0:
            os.write(1, b"hello from the child\\n")
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
""")


def test_pytest_capture_fd_gives_children_a_deleted_file(tmp_path):
    test_file = tmp_path / "test_forks.py"
    test_file.write_text(PYTEST_FORKS)
    proc, run = watch(tmp_path, [PY, "-m", "pytest", "--capture=fd", "-q", "-p", "no:cacheprovider",
                                 str(test_file)])
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    ev = load_events(run)
    py = of(ev, "exec")[0]["pid"]
    forks = of(ev, "fork", pid=py)
    assert len(forks) == 1
    start = [e for e in of(ev, "child_start") if e["pid"] == forks[0]["child_pid"]][0]
    fd1 = [f for f in start["fds"] if f["fd"] == 1][0]
    assert fd1["kind"] == "file" and fd1.get("deleted") is True, fd1
    assert start["stdio"]["1"] == "file (deleted)"
    # ... and pytest's dup of the real stdout (watch()'s file) sits at a higher fd.
    outer = str(tmp_path / "run.stdout")
    assert any(f["fd"] > 2 and f["target"] == outer for f in start["fds"]), start["fds"]
    child = [a for a in result(run)["actors"] if a["pid"] == start["pid"]][0]
    assert child["stdio"]["1"] == "file (deleted)"
    assert any(u["target"] == outer for u in child["fds_unexpected"])


SPAMMERS = textwrap.dedent("""
    import os, signal, sys, time
    N, ROUNDS = 50, 400
    r, w = os.pipe()
    pids = []
    for i in range(N):
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)          # start together
            for _ in range(ROUNDS):
                try:
                    os.kill(2147483647, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
            os._exit(0)
        pids.append(pid)
    os.close(r)
    os.close(w)
    time.sleep(0.05)
    killed = pids[::4]
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        os.waitpid(pid, 0)
    print(" ".join(map(str, killed)))
""")


def test_concurrent_writers_and_sigkill_never_tear_a_line(tmp_path):
    proc, run = watch(tmp_path, [PY, "-c", SPAMMERS], timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()
    killed = {int(p) for p in proc.stdout.split()}
    assert len(killed) == 13
    ev = load_events(run)  # every line parses
    py = of(ev, "exec")[0]["pid"]
    children = {f["child_pid"] for f in of(ev, "fork", pid=py)}
    assert len(children) == 50
    for pid in children - killed:
        assert len(of(ev, "child_start", pid=pid)) == 1
        sent = of(ev, "signal_sent", pid=pid)
        assert len(sent) == 400 and all(s["errno"] == 3 and s["target_pid"] == 2147483647 for s in sent)
        assert len(of(ev, "exit", pid=pid)) == 1
    reaped = {r["child_pid"]: r for r in of(ev, "reaped", pid=py)}
    assert set(reaped) == children
    for pid in killed:
        assert reaped[pid].get("signal") == "SIGKILL" or reaped[pid].get("code") == 0
    assert len([s for s in of(ev, "signal_sent", pid=py) if s["signal"] == "SIGKILL"]) == 13
    actors = result(run)["actors"]
    assert len(actors) == 51 and {a["pid"] for a in actors} == children | {py}
    hit = [a for a in actors if [(s["from_pid"], s["signal"]) for s in a["signals_received"]] == [(py, "SIGKILL")]]
    assert {a["pid"] for a in hit} == killed


@pytest.mark.parametrize("cmd, status", [
    (["true"], 0),
    (["sh", "-c", "exit 3"], 3),
    ([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], 128 + 15),
    (["sh", "-c", "kill -KILL $$"], 128 + 9),
])
def test_exit_status_passthrough(tmp_path, cmd, status):
    proc, run = watch(tmp_path, cmd)
    assert proc.returncode == status, proc.stderr.decode()
    doc = result(run)
    assert doc["outcome"] == ("ok" if status == 0 else "error")
    if status > 128:
        assert doc["exit"] == {"code": None, "signal": signal.Signals(status - 128).name}
    else:
        assert doc["exit"] == {"code": status, "signal": None}


def test_exec_failure_and_usage(tmp_path):
    proc, _ = watch(tmp_path, ["/nonexistent/command"])
    assert proc.returncode == 127
    proc, _ = watch(tmp_path, ["forkscope-no-such-command"])
    assert proc.returncode == 127
    for args in (["watch"], ["watch", "--timeout", "soon", "--", "true"], ["watch", "--bogus", "--", "true"]):
        p = subprocess.run([FORKSCOPE, *args], capture_output=True, timeout=60)
        # watch's own failures exit 125 (as timeout(1)): never confused with
        # a command's own status 2
        assert p.returncode == 125, (args, p.stderr)
        assert p.stderr.startswith(b"forkscope watch: "), p.stderr


LIST_FDS = textwrap.dedent("""
    import os
    def listing(who):
        d = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        out = []
        for fd in sorted(int(n) for n in os.listdir(d)):
            if fd == d:
                continue
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            out.append(f"{who} {fd} {target.split('[')[0]} {os.get_inheritable(fd)}")
        os.close(d)
        return "\\n".join(out) + "\\n"
    os.write(1, listing("parent").encode())
    pid = os.fork()
    if pid == 0:
        os.write(1, listing("child").encode())
        os._exit(0)
    os.waitpid(pid, 0)
""")


def test_fds_seen_by_the_program_are_unchanged(tmp_path):
    with open(tmp_path / "plain.stdout", "w+b") as o, open(tmp_path / "plain.stderr", "wb") as e:
        subprocess.run([PY, "-c", LIST_FDS], stdout=o, stderr=e, timeout=60, stdin=subprocess.DEVNULL)
        o.seek(0)
        plain = o.read().decode()
    proc, run = watch(tmp_path, [PY, "-c", LIST_FDS])
    assert proc.returncode == 0
    events = str(run / "events.ndjson")
    watched = proc.stdout.decode()
    for name in ("stdout", "stderr"):
        plain = plain.replace(str(tmp_path / f"plain.{name}"), name.upper())
        watched = watched.replace(str(tmp_path / f"run.{name}"), name.upper())
    ours = [line for line in watched.splitlines() if events in line]
    # The probe's own fd, in the parent and the forked child: high, not inherited by exec.
    assert len(ours) == 2 and all(int(line.split()[1]) >= 63 and line.endswith("False") for line in ours)
    assert [line for line in watched.splitlines() if events not in line] == plain.splitlines()


# A daemon left behind, asleep: the command ends only once the daemon is
# `sleep` (exec'd) and inside its nanosleep, so what watch finds does not
# depend on how fast a loaded machine runs the exec.
DAEMON = """\
setsid sleep 300 & d=$!
while :; do
  c=; w=; read -r c < /proc/$d/comm; read -r w < /proc/$d/wchan
  case "$c $w" in "sleep "*nanosleep*) break;; esac
  sleep 0.01
done
echo started
"""


def test_daemon_left_behind_is_reported_then_ended(tmp_path):
    proc, run = watch(tmp_path, ["sh", "-c", DAEMON], "--linger", "300ms")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"started\n"
    doc = result(run)
    assert doc["leaked"] == 1
    left = doc["leftovers"][0]
    assert left["name"] == "sleep"
    assert "setsid" in left["how"] and "reparented to the subreaper" in left["how"]
    assert left["ended_by"] in ("SIGINT", "SIGTERM", "SIGKILL")
    assert left["doing"] and "nanosleep" in left["doing"]
    assert [v["class"] for v in doc["verdicts"]] == ["escaped"]
    assert b"outlived" in proc.stderr
    assert os.path.exists(run / "snapshot.json")


HANGS = textwrap.dedent("""
    import os, time
    if os.fork() == 0:
        time.sleep(3600)
        os._exit(0)
    time.sleep(3600)
""")


def kill_descendants():
    """SIGKILL what is left of a held tree and wait (bounded) until it is gone."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = descendants()
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def watch_timeout(tmp_path, cmd, was_up, *options, user=None):
    """watch with --timeout 1s, the path under test being what a timeout does
    to a tree that is up. was_up(proc, run) tells whether the command's
    tree was up when the timeout fired; when it was not (python starting on a
    loaded machine), the same again with twice the timeout, up to 64 s. No
    bet on how fast a tree starts; the checks run on a tree that was up."""
    seconds = 1
    while True:
        name = f"run-{seconds}s"
        proc, run = watch(tmp_path, cmd, "--timeout", f"{seconds}s", *options, user=user, name=name,
                          timeout=120 + 2 * seconds)
        if was_up(proc, run):
            return proc, run
        kill_descendants()   # a --hold tree that was not up yet
        assert seconds < 64, f"the tree was never up at the timeout: {proc.stderr.decode()}"
        seconds *= 2


def hangs_up(proc, run):
    """The snapshot taken at the timeout holds both processes of HANGS."""
    try:
        return len(json.loads((run / "snapshot.json").read_text())["processes"]) >= 2
    except (OSError, ValueError, KeyError):
        return True   # no snapshot: the checks that follow say what went wrong


def test_timeout_triages_then_ends_the_tree(tmp_path):
    proc, run = watch_timeout(tmp_path, [PY, "-c", HANGS], hangs_up)
    assert proc.returncode == 124, proc.stderr.decode()
    doc = result(run)
    assert doc["outcome"] == "hang" and doc["exit"] is None
    assert doc["snapshot_file"] == "snapshot.json"
    snap = json.loads((run / "snapshot.json").read_text())
    top = of(load_events(run), "exec")[0]["pid"]
    assert top in {p["pid"] for p in snap["processes"]}
    ended = doc["teardown"]["phases"]
    assert len(ended) == 2 and all(p["ended_by"] in ("SIGINT", "SIGTERM", "SIGKILL") for p in ended)
    assert doc["leaked"] == 0


def test_hold_leaves_the_tree_and_says_how_to_end_it(tmp_path):
    try:
        proc, run = watch_timeout(tmp_path, [PY, "-c", HANGS], hangs_up, "--hold")
        assert proc.returncode == 124
        assert b"--hold" in proc.stderr and b"kill -INT --" in proc.stderr
        left = descendants()
        assert len(left) == 2, left  # the command and its child, untouched
        assert result(run)["outcome"] == "hang"
    finally:
        # SIGKILL is asynchronous: wait (bounded, a hang detector only) until
        # the ended tree has exited and been reaped, before the leftover check.
        kill_descendants()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_selfdump_when_ptrace_is_denied(tmp_path):
    # Somewhere nobody can write: pytest's own tmp_path is private to root.
    shared = pathlib.Path(tempfile.mkdtemp(prefix="forkscope-watch-nobody-"))
    os.chmod(shared, 0o777)
    fixture = os.environ["SELFDUMP_FIXTURE"]
    try:
        proc, run = watch_timeout(shared, [fixture, "nodump"], lambda proc, run: b"READY" in proc.stdout,
                                  "--selfdump", user=65534)
        check_selfdump(proc, run)
    finally:
        shutil.rmtree(shared)


def check_selfdump(proc, run):
    assert proc.returncode == 124, proc.stderr.decode()
    snap = json.loads((run / "snapshot.json").read_text())
    p = [p for p in snap["processes"] if p["pid"] == of(load_events(run), "exec")[0]["pid"]][0]
    assert "ptrace" in (p.get("stacks_error") or "")
    functions = set()
    for t in p["threads"]:
        assert t.get("stack_source") == "selfdump"
        functions |= {f["function"] for f in t["stack"]["frames"]}
    assert {"fixture_main_read", "fixture_thread_cond_wait", "fixture_thread_nanosleep"} <= functions
