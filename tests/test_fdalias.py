"""fd-alias (issue 14) end to end: the CPython reproduction on its own and
through `forkscope watch` (probe events fd_close / fd_reuse /
fd_write_sample, the fd-alias verdict), its dup2-/dev/null control, and the
probe's fd wrappers one by one.

Run by meson (tests/meson.build) with FORKSCOPE and FIXTURE set. The test
process is a child subreaper; every test kills what it started in a finally
and asserts that no process is left. No sleeps: the fixture writes a ready
file when the hang is in place."""
import ctypes
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

FORKSCOPE = os.environ.get("FORKSCOPE", "")
FIXTURE = os.environ.get("FIXTURE", "")
PY = sys.executable
PR_SET_CHILD_SUBREAPER = 36
GENEROUS = 60.0  # seconds: a deadline for waits on 2 noisy cores, never an assertion on time

pytestmark = pytest.mark.skipif(not FORKSCOPE or not FIXTURE, reason="FORKSCOPE/FIXTURE not set (run through meson test)")

libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def descendants():
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


def group_alive(pgid):
    descendants()  # reaps what has become a zombie of ours
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def end_group(pgid):
    """SIGKILL a process group we created and wait until every member is gone
    (a killed process is still running its exit for a moment)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + GENEROUS
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    # What the test ended may still be exiting: wait for it, within reason.
    deadline = time.monotonic() + GENEROUS
    while descendants() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = descendants()
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    descendants()
    assert not left, f"processes left running: {left}"


def wait_for(pred, what):
    deadline = time.monotonic() + GENEROUS
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    pytest.fail(f"gave up waiting for {what}")


def proc_syscall(pid):
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()
    except OSError:
        return []


def load_events(run_dir):
    events = []
    for n, line in enumerate((run_dir / "events.ndjson").read_bytes().split(b"\n")[:-1], 1):
        try:
            events.append(json.loads(line))
        except ValueError as e:
            pytest.fail(f"events.ndjson:{n}: {e}: {line[:200]!r}")
    return events


def of(events, name, **match):
    return [e for e in events if e["ev"] == name and all(e.get(k) == v for k, v in match.items())]


def watch(tmp_path, cmd, *options, name="run"):
    out = tmp_path / name
    args = [FORKSCOPE, "watch", "--out", str(out), "--json", str(tmp_path / f"{name}.json"), *options, "--", *cmd]
    with open(tmp_path / f"{name}.stdout", "w+b") as o, open(tmp_path / f"{name}.stderr", "w+b") as e:
        proc = subprocess.run(args, stdout=o, stderr=e, timeout=300, stdin=subprocess.DEVNULL)
        o.seek(0)
        e.seek(0)
        proc.stdout, proc.stderr = o.read(), e.read()
    return proc, out


# ---- the reproduction on its own ----

def test_reproduction_hangs_on_the_aliased_fd(tmp_path):
    ready = tmp_path / "ready"
    p = subprocess.Popen([PY, FIXTURE, "--ready", str(ready)], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(ready.exists, "the ready file")
        doc = json.loads(ready.read_text())
        assert doc["fd"] == 4
        assert doc["head"] == "ERRO"  # the log record's first bytes, read as a length
        assert doc["frame_len"] == int.from_bytes(b"ERRO", "big")
        assert doc["root"] == p.pid
        # The peer sits in a read (recvfrom = 45 on x86-64; any read-like
        # syscall elsewhere), the spawner in wait4 for it, the root in wait4.
        wait_for(lambda: proc_syscall(doc["peer"])[:1] not in ([], ["running"]), "the peer to block")
        wait_for(lambda: proc_syscall(doc["spawner"])[:1] == [str(61)] if os.uname().machine == "x86_64"
                 else proc_syscall(doc["spawner"])[:1] not in ([], ["running"]), "the spawner to wait")
        assert p.poll() is None
    finally:
        end_group(p.pid)
        p.wait()


def test_devnull_scrub_control_ends_clean(tmp_path):
    ready = tmp_path / "ready"
    r = subprocess.run([PY, FIXTURE, "--scrub", "devnull", "--ready", str(ready)], timeout=300,
                       stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(ready.read_text()) == {"clean": True, "fd": 4}


# ---- through forkscope watch ----

def test_watch_names_fd_alias(tmp_path):
    ready = tmp_path / "ready"
    proc, run = watch(tmp_path, [PY, FIXTURE, "--ready", str(ready)], "--timeout", "15")
    assert proc.returncode == 124, proc.stderr.decode()
    doc = json.loads(ready.read_text())  # written by the stalled peer before the deadline
    res = json.loads((tmp_path / "run.json").read_text())
    verdicts = res["verdicts"]  # watch's result: one cell, its fields at the top
    assert [v["class"] for v in verdicts] == ["fd-alias"], proc.stderr.decode()
    v = verdicts[0]
    ev = v["evidence"]
    assert ev["fd"] == 4
    assert ev["writer_pid"] == doc["spawner"]
    assert ev["stalled_pid"] == doc["peer"]
    assert ev["was"]["target"] == "/dev/null"
    assert ev["was"]["inherited_from"] == doc["root"]
    assert ev["was"]["closed_via"] == "close"
    assert ev["now"]["via"] in ("accept", "accept4")
    assert ev["now"]["target"].startswith("socket:[")
    writers = ev["writers"]
    assert len(writers) == 2
    stale = [w for w in writers if w["stale"]]
    assert len(stale) == 1 and stale[0]["bytes"].startswith("ERROR") and stale[0]["via"] == "write"
    other = [w for w in writers if not w["stale"]][0]
    assert other["bytes"] == "\\x00\\x00\\x00\\x05hello" and other["via"] == "send"
    assert set(v["chain"]) == {doc["peer"], doc["spawner"], doc["root"]}
    text = proc.stderr.decode()  # watch prints its triage on stderr
    assert "Hang: fd-alias" in text and "fd 4 of" in text and '"ERROR    ' in text
    assert f"(pid {doc['peer']}) stalls" in text

    events = load_events(run)
    closes = of(events, "fd_close", pid=doc["spawner"], fd=4)
    assert len(closes) == 1 and closes[0]["target"] == "/dev/null" and closes[0]["via"] == "close"
    reuse = of(events, "fd_reuse", pid=doc["spawner"], fd=4)
    assert len(reuse) == 1
    assert reuse[0]["now"]["local"].startswith("127.0.0.1:") and reuse[0]["now"]["peer"].startswith("127.0.0.1:")
    assert reuse[0]["was"]["closed_ns"] < reuse[0]["ts_ns"]


def test_watch_control_is_clean_and_retires(tmp_path):
    proc, run = watch(tmp_path, [PY, FIXTURE, "--scrub", "devnull"], "--timeout", "120")
    assert proc.returncode == 0, proc.stderr.decode()
    events = load_events(run)
    assert not of(events, "fd_write_sample")
    spawner = [e["pid"] for e in of(events, "child_start") if e["ppid"] == of(events, "exec")[0]["pid"]]
    assert len(spawner) == 1
    retired = [e for e in of(events, "fd_reuse", pid=spawner[0]) if e["fd"] in (3, 4)]
    assert len(retired) == 2 and all(e.get("retired") is True for e in retired)
    assert all(e["now"]["target"] == "/dev/null" for e in retired)


# ---- the wrappers one by one ----

WRAPPERS = textwrap.dedent("""
    import os, socket, sys
    fds = {}
    def keep(name, fd):
        fds[name] = fd
    # Ten plain fds for the child to close and reuse: 3..12.
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(10)]
    assert held == list(range(3, 13)), held
    pid = os.fork()
    if pid == 0:
        for fd in held:
            os.close(fd)
        try:
            os.close(held[0])          # a second close: EBADF passes through, no event
        except OSError as e:
            assert e.errno == 9
        r, w = os.pipe()                          # 3, 4 (pipe2)
        a, b = socket.socketpair()                # 5, 6
        e = os.eventfd(0)                         # 7
        f = os.open(os.devnull, os.O_WRONLY)      # 8 (open64 / openat)
        d = os.dup(f)                             # 9 (fcntl F_DUPFD_CLOEXEC)
        s = socket.socket()                       # 10
        assert (r, w, a.fileno(), b.fileno(), e, f, d, s.fileno()) == (3, 4, 5, 6, 7, 8, 9, 10)
        os.dup2(w, 11)                            # onto a closed inherited number
        # five writers on the reused socket 5: at most four sites are sampled
        a.send(b"\\x00\\x00\\x00\\x02hi")
        os.write(a.fileno(), b"plain text line")
        a.sendmsg([b"\\x01msg"])
        os.writev(a.fileno(), [b"vec", b"tor"])
        a.sendall(b"again")                       # the same C call site as send: no new sample
        os.write(a.fileno(), b"second from the same site")
        try:
            a.sendto(b"fifth site", "/nonexistent")   # a fifth site: over the cap, not sampled
        except OSError:
            pass
        out = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)   # 12
        hi = os.open(os.devnull, os.O_WRONLY)
        os.write(hi, b"not a reused number")
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(st))
""")


def test_probe_records_close_and_each_reusing_call(tmp_path):
    proc, run = watch(tmp_path, [PY, "-c", WRAPPERS], "--timeout", "120")
    assert proc.returncode == 0, proc.stderr.decode()
    events = load_events(run)
    root = of(events, "exec")[0]["pid"]
    child = [e["pid"] for e in of(events, "child_start") if e["ppid"] == root]
    assert len(child) == 1
    c = child[0]
    closes = of(events, "fd_close", pid=c)
    assert sorted(e["fd"] for e in closes) == list(range(3, 13))
    assert all(e["target"] == "/dev/null" and e["inherited_from"] == root for e in closes)
    reuse = {e["fd"]: e for e in of(events, "fd_reuse", pid=c)}
    assert set(reuse) == set(range(3, 13)), sorted(reuse)
    assert reuse[3]["via"] in ("pipe", "pipe2") and reuse[3]["now"]["kind"] == "pipe"
    assert reuse[4]["via"] in ("pipe", "pipe2")
    assert reuse[5]["via"] == "socketpair" and reuse[5]["now"]["kind"] == "socket"
    assert reuse[7]["via"] == "eventfd" and reuse[7]["now"]["kind"] == "eventfd"
    assert reuse[8]["via"] in ("open", "open64", "openat", "openat64")
    assert reuse[8]["retired"] is True  # /dev/null: a retirement, not sniffed
    assert reuse[9]["via"].startswith("fcntl(F_DUPFD")
    assert reuse[10]["via"] == "socket"
    assert reuse[11]["via"] in ("dup2", "dup3")
    assert reuse[12]["retired"] is True
    for fd in (3, 5, 7, 10, 11):
        assert reuse[fd]["was"]["target"] == "/dev/null" and reuse[fd]["was"]["closed_via"] == "close"
    samples = of(events, "fd_write_sample", pid=c)
    assert all(s["fd"] == 5 for s in samples), samples
    assert len(samples) == 4  # FDT_SITES
    assert len({s["site"]["addr"] for s in samples}) == 4
    by_via = {s["via"]: s for s in samples}
    assert set(by_via) == {"send", "write", "sendmsg", "writev"}
    assert by_via["send"]["bytes"] == r"\x00\x00\x00\x02hi"
    assert by_via["send"]["hex"] == "000000026869"
    assert by_via["write"]["bytes"] == "plain text line"
    assert by_via["sendmsg"]["hex"] == "016d7367"
    assert by_via["writev"]["bytes"] == "vector" and by_via["writev"]["len"] == 6
    assert all(s["site"].get("module") for s in samples)


def test_probe_keeps_errno_and_ignores_the_parent(tmp_path):
    prog = textwrap.dedent("""
        import os, errno
        for call in (lambda: os.close(999), lambda: os.dup(999), lambda: os.dup2(999, 5), lambda: os.write(999, b"x")):
            try:
                call()
            except OSError as e:
                assert e.errno == errno.EBADF, e
            else:
                raise SystemExit("no error")
        fd = os.open(os.devnull, os.O_RDONLY)
        os.close(fd)
        os.open(os.devnull, os.O_RDONLY)
    """)
    proc, run = watch(tmp_path, [PY, "-c", prog], "--timeout", "120")
    assert proc.returncode == 0, proc.stderr.decode()
    events = load_events(run)
    # No fork: nothing crossed one, nothing to record.
    assert not of(events, "fd_close") and not of(events, "fd_reuse")


def test_probe_stays_out_of_vfork_children(tmp_path):
    # subprocess (vfork + close_range of every fd >= 3 in the vfork child,
    # which shares the forked parent's memory) must neither write events as
    # the vfork child nor clear the parent's watch on its inherited fds.
    prog = textwrap.dedent("""
        import os, subprocess, sys
        held = os.open(os.devnull, os.O_RDONLY)
        assert held == 3, held
        pid = os.fork()
        if pid == 0:
            subprocess.run(["/bin/true"], close_fds=True, check=True)
            os.close(held)
            os._exit(0)
        _, st = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(st))
    """)
    proc, run = watch(tmp_path, [PY, "-c", prog], "--timeout", "120")
    assert proc.returncode == 0, proc.stderr.decode()
    events = load_events(run)
    root = of(events, "exec")[0]["pid"]
    child = [e["pid"] for e in of(events, "child_start") if e["ppid"] == root]
    assert len(child) == 1
    vforked = [e["child_pid"] for e in of(events, "fork", pid=child[0]) if e.get("via") == "vfork"]
    assert vforked, "subprocess did not vfork here"
    closes = of(events, "fd_close")
    assert [(e["pid"], e["fd"]) for e in closes if e["fd"] == 3] == [(child[0], 3)], closes
    assert not [e for e in closes if e["pid"] in vforked]
