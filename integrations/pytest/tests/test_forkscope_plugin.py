"""pytest-forkscope end to end: inner pytest sessions that hang in the ways
forkscope names, run with the plugin and the real forkscope binary.

Deadlines of a few seconds are the mechanism under test; every assertion
is on an outcome (verdict, report, files, processes), never on a time."""
import json
import os
import re
import xml.etree.ElementTree as ET

import pytest

# Verdict classes a hang may get; the engine may refine them (docs/verdicts.md).
HANG_CLASSES = {"pipe-full", "eof-never", "mutual-wait", "uncancellable-wait", "lost-wakeup-futex",
                "lock-deadlock", "signal-blocked", "orphan", "unreaped-zombie", "boot-death", "busy-loop"}

# The deadline of the hanging inner tests: far more than the hang takes to
# form (a python child filling a pipe), also on a loaded machine.
D = 5

WRITER = "import os\\nb = b'x' * 200000\\nwhile b:\\n    b = b[os.write(1, b):]\\n"

PIPE_DEADLOCK = f'''
import subprocess, sys
from conftest import record

def test_pipe_deadlock():
    p = subprocess.Popen([sys.executable, "-c", "{WRITER}"], stdout=subprocess.PIPE)
    record(p.pid)
    p.wait()
    assert p.returncode == 0

def test_after():
    pass
'''


def junit(path):
    """{test name: (outcome element tag or 'passed', {property: value})}"""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        tags = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        out[case.get("name")] = (tags[0] if tags else "passed", props)
    return out


def section(result, test):
    """The forkscope section of test's failure report ('' when absent)."""
    lines = result.stdout.lines
    heading = re.compile(rf"^_+ {re.escape(test)} _+$")
    end_of_block = re.compile(r"^(_{3,} \S.* _{3,}|={3,}.*|-+ generated xml file.*)$")
    for i, line in enumerate(lines):
        if heading.match(line):
            block = []
            for nxt in lines[i + 1:]:
                if end_of_block.match(nxt):
                    break
                block.append(nxt)
            for j, b in enumerate(block):
                if re.match(r"^-+ forkscope -+$", b):
                    return "\n".join(block[j:])
    return ""


def test_pipe_deadlock_gets_pipe_full_and_the_session_goes_on(inner, pytester):
    pytester.makepyfile(test_hang=PIPE_DEADLOCK)
    xml = pytester.path / "junit.xml"
    r = inner.run(f"--forkscope-timeout={D}", f"--junitxml={xml}")
    r.assert_outcomes(failed=1, passed=1)
    r.stdout.fnmatch_lines([f"*forkscope: deadline of {D}s passed during call (pipe-full)*"])
    sec = section(r, "test_pipe_deadlock")
    assert "Hang: pipe-full" in sec
    assert "Popen.wait" in sec  # the test's own stack, taken before anything was ended
    assert re.search(rf"SIGINT -> \S+ \({inner.recorded_pids()[0]}\)", sec)
    cases = junit(xml)
    outcome, props = cases["test_pipe_deadlock"]
    assert outcome == "failure"
    assert props["forkscope_verdict"] == "pipe-full"
    run_dir = props["forkscope_run_dir"]
    snap = json.loads(open(os.path.join(run_dir, "snapshot.json")).read())
    assert any(p.get("pid") == inner.recorded_pids()[0] for p in snap["processes"])
    verdicts = json.loads(open(os.path.join(run_dir, "verdicts.json")).read())
    assert [v["class"] for v in verdicts["verdicts"]] == ["pipe-full"]
    assert "Hang: pipe-full" in open(os.path.join(run_dir, "verdict.txt")).read()
    assert cases["test_after"] == ("passed", {})


def test_lock_inherited_across_fork(inner, pytester):
    pytester.makepyfile(test_lock='''
import os, threading
from conftest import record

def test_child_blocks_on_inherited_lock():
    lock = threading.Lock()
    held, release = threading.Event(), threading.Event()
    def holder():
        with lock:
            held.set()
            release.wait()
    t = threading.Thread(target=holder, daemon=True)
    t.start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        try:
            lock.acquire()  # held by a thread that did not cross the fork
        finally:
            os._exit(0)
    record(pid)
    try:
        os.waitpid(pid, 0)
    finally:
        release.set()
        t.join()

def test_after():
    pass
''')
    xml = pytester.path / "junit.xml"
    r = inner.run(f"--forkscope-timeout={D}", f"--junitxml={xml}")
    r.assert_outcomes(failed=1, passed=1)
    outcome, props = junit(xml)["test_child_blocks_on_inherited_lock"]
    assert outcome == "failure"
    classes = set(props["forkscope_verdict"].split(","))
    assert classes <= HANG_CLASSES, props["forkscope_verdict"]
    sec = section(r, "test_child_blocks_on_inherited_lock")
    assert "Found " in sec and "Run directory: " in sec
    assert f"({inner.recorded_pids()[0]})" in sec  # the forked child was ended


def test_child_that_never_exits_and_ignores_sigint(inner, pytester):
    pytester.makepyfile(test_forever='''
import subprocess, sys
from conftest import record

CHILD = "import signal\\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\\nprint('ready', flush=True)\\nwhile True:\\n    signal.pause()\\n"

def test_child_never_exits():
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE)
    record(p.pid)
    assert p.stdout.readline() == b"ready\\n"  # SIGINT is ignored from here on
    p.wait()

def test_after():
    pass
''')
    r = inner.run(f"--forkscope-timeout={D}")
    r.assert_outcomes(failed=1, passed=1)
    sec = section(r, "test_child_never_exits")
    pid = inner.recorded_pids()[0]
    assert re.search(rf"SIGINT -> \S+ \({pid}\)", sec)
    assert re.search(rf"SIGTERM -> \S+ \({pid}\)", sec)  # SIGINT was ignored: the ladder went on


def test_slow_test_under_the_deadline_passes_without_verdict(inner, pytester):
    pytester.makepyfile(test_slow='''
import subprocess, sys
from conftest import record

def test_slow(record_property):
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    record(p.pid)
    assert p.wait() == 0
''')
    xml = pytester.path / "junit.xml"
    base = pytester.path / "fsdir"
    r = inner.run("--forkscope-timeout=60", f"--forkscope-dir={base}", f"--junitxml={xml}")
    r.assert_outcomes(passed=1)
    assert "forkscope" not in r.stdout.str().split("test session starts")[1].replace("forkscope-", "")
    assert junit(xml)["test_slow"] == ("passed", {})
    assert not base.exists() or list(base.iterdir()) == []


def test_xfail_is_honoured_and_the_evidence_kept(inner, pytester):
    pytester.makepyfile(test_xf=PIPE_DEADLOCK.replace(
        "def test_pipe_deadlock", "import pytest\n@pytest.mark.xfail(reason='known deadlock')\ndef test_pipe_deadlock"))
    xml = pytester.path / "junit.xml"
    r = inner.run(f"--forkscope-timeout={D}", f"--junitxml={xml}")
    r.assert_outcomes(xfailed=1, passed=1)
    outcome, props = junit(xml)["test_pipe_deadlock"]
    assert outcome == "skipped"
    assert props["forkscope_verdict"] == "pipe-full"
    assert os.path.isfile(os.path.join(props["forkscope_run_dir"], "snapshot.json"))


def test_in_process_deadlock_is_interrupted(inner, pytester):
    pytester.makepyfile(test_self='''
import threading

def test_self_deadlock():
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()

def test_after():
    pass
''')
    r = inner.run(f"--forkscope-timeout={D}")
    r.assert_outcomes(failed=1, passed=1)
    r.stdout.fnmatch_lines(["*lock.acquire()*", f"E*Failed: forkscope: deadline of {D}s passed during call*"])
    assert "No process started by the test was left to end." in section(r, "test_self_deadlock")


def test_forkscope_marker_without_session_option(inner, pytester):
    pytester.makepyfile(test_mark=PIPE_DEADLOCK.replace(
        "def test_pipe_deadlock", f"import pytest\n@pytest.mark.forkscope(timeout={D})\ndef test_pipe_deadlock"))
    r = inner.run()
    r.assert_outcomes(failed=1, passed=1)
    assert "Hang: pipe-full" in section(r, "test_pipe_deadlock")


def test_pytest_timeout_marker_is_the_deadline(inner, pytester):
    pytest.importorskip("pytest_timeout")
    pytester.makepyfile(test_to=PIPE_DEADLOCK.replace(
        "def test_pipe_deadlock", f"import pytest\n@pytest.mark.timeout({D})\ndef test_pipe_deadlock"))
    r = inner.run("-p", "timeout", "--forkscope-timeout=600")
    r.assert_outcomes(failed=1, passed=1)
    r.stdout.fnmatch_lines([f"*forkscope: deadline of {D}s passed during call (pipe-full)*"])
    assert "Timeout >" not in r.stdout.str()  # pytest-timeout's own timer was not armed


def test_setup_hang_is_triaged_before_teardown(inner, pytester):
    pytester.makepyfile(test_fix=f'''
import os, subprocess, sys, pytest
from conftest import record

@pytest.fixture
def server():
    p = subprocess.Popen([sys.executable, "-c", "{WRITER}"], stdout=subprocess.PIPE)
    record(p.pid)
    p.wait()  # hangs in setup
    yield p

def test_uses_server(server):
    pass
''')
    r = inner.run(f"--forkscope-timeout={D}")
    r.assert_outcomes(errors=1)
    r.stdout.fnmatch_lines([f"*forkscope: deadline of {D}s passed during setup (pipe-full)*"])


def test_xdist_workers_triage_their_own_tests(inner, pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_a=PIPE_DEADLOCK, test_b=PIPE_DEADLOCK.replace("test_after", "test_after_b"))
    xml = pytester.path / "junit.xml"
    r = inner.run("-p", "xdist", "-n", "2", f"--forkscope-timeout={D}", f"--junitxml={xml}")
    r.assert_outcomes(failed=2, passed=2)
    dirs = set()
    for case in ET.parse(xml).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if case.get("name") == "test_pipe_deadlock":
            assert props["forkscope_verdict"] == "pipe-full"
            dirs.add(props["forkscope_run_dir"])
    assert len(dirs) == 2 and all(os.path.isfile(os.path.join(d, "snapshot.json")) for d in dirs)


def test_probe_events_feed_the_verdict(inner, pytester):
    if not os.environ.get("FORKSCOPE_PROBE"):
        pytest.skip("FORKSCOPE_PROBE is not set")
    pytester.makepyfile(test_probe=PIPE_DEADLOCK)
    xml = pytester.path / "junit.xml"
    r = inner.run(f"--forkscope-timeout={D}", "--forkscope-probe", f"--junitxml={xml}")
    r.assert_outcomes(failed=1, passed=1)
    cases = junit(xml)
    run_dir = cases["test_pipe_deadlock"][1]["forkscope_run_dir"]
    assert cases["test_pipe_deadlock"][1]["forkscope_verdict"] == "pipe-full"
    events = [json.loads(line) for line in open(os.path.join(run_dir, "events.ndjson"))]
    child = inner.recorded_pids()[0]
    assert any(e.get("ev") == "exec" and e.get("pid") == child for e in events)
    assert json.loads(open(os.path.join(run_dir, "verdicts.json")).read())["with_events"] is True
    assert "Verdicts use the probe events" in section(r, "test_pipe_deadlock")


def test_report_stacks_are_cut_at_pytest_and_leave_the_watchdog_out():
    from pytest_forkscope.triage import shorten_stacks
    text = "\n".join([
        "Hang: pipe-full — writers blocked",
        "  Stacks of the threads involved:",
        '    python3 (pid 10) thread 10 "python3":',
        "      #0  wait4 (wait4.c:30)",
        "      #1  test_pipe (/t/test_x.py:6)",
        "      #2  pytest_pyfunc_call (/usr/lib/python3/dist-packages/_pytest/python.py:195)",
        "      #3  _multicall (/usr/lib/python3/dist-packages/pluggy/_callers.py:39)",
        "      #4  _start+0x21 (python3.11)",
        '    python3 (pid 10) thread 12 "forkscope-wd":',
        "      #0  pause (pause.c:29)",
        "  Remedy: drain the pipe.",
    ])
    assert shorten_stacks(text).splitlines() == [
        "Hang: pipe-full — writers blocked",
        "  Stacks of the threads involved:",
        '    python3 (pid 10) thread 10 "python3":',
        "      #0  wait4 (wait4.c:30)",
        "      #1  test_pipe (/t/test_x.py:6)",
        "      ... 3 more frames (pytest, the interpreter; whole in verdict.txt)",
        "  Remedy: drain the pipe.",
    ]


def test_without_forkscope_the_deadline_still_ends_and_fails(inner, pytester):
    pytester.makepyfile(test_nofs=PIPE_DEADLOCK)
    pytester._monkeypatch.setenv("FORKSCOPE", str(pytester.path / "no-such-forkscope"))
    pytester._monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no forkscope on it
    xml = pytester.path / "junit.xml"
    r = inner.run(f"--forkscope-timeout={D}", f"--junitxml={xml}")
    r.assert_outcomes(failed=1, passed=1, warnings=1)
    props = junit(xml)["test_pipe_deadlock"][1]
    assert props["forkscope_verdict"].startswith("error: no forkscope binary")
    sec = section(r, "test_pipe_deadlock")
    assert "forkscope triage did not run" in sec
    assert re.search(rf"SIGINT -> \S+ \({inner.recorded_pids()[0]}\)", sec)


def test_triage_sees_the_tree_before_the_fixture_tears_it_down(inner, pytester):
    pytester.makepyfile(test_td=f'''
import os, subprocess, sys, pytest
from conftest import record

@pytest.fixture
def producer():
    p = subprocess.Popen([sys.executable, "-c", "{WRITER}"], stdout=subprocess.PIPE)
    record(p.pid)
    yield p
    p.kill()  # the teardown that would take the evidence away
    p.wait()
    with open(os.environ["FS_PIDS"] + ".teardown", "w") as f:
        f.write("ran")

def test_reads_too_late(producer):
    producer.wait()
''')
    xml = pytester.path / "junit.xml"
    r = inner.run(f"--forkscope-timeout={D}", f"--junitxml={xml}")
    r.assert_outcomes(failed=1)
    props = junit(xml)["test_reads_too_late"][1]
    assert props["forkscope_verdict"] == "pipe-full"
    snap = json.loads(open(os.path.join(props["forkscope_run_dir"], "snapshot.json")).read())
    child = [p for p in snap["processes"] if p.get("pid") == inner.recorded_pids()[0]]
    assert child and child[0].get("state") not in (None, "Z", "X")  # alive when triaged
    assert open(str(inner.pids_file) + ".teardown").read() == "ran"  # and torn down after


def test_thread_that_cannot_be_interrupted_ends_the_session_with_the_report(inner, pytester):
    pytester.makepyfile(test_c='''
import ctypes

def test_c_deadlock():
    libc = ctypes.CDLL(None)
    m = ctypes.create_string_buffer(64)  # a default mutex: all zeros
    libc.pthread_mutex_lock(m)
    libc.pthread_mutex_lock(m)  # its futex wait restarts after every signal
''')
    r = inner.run(f"--forkscope-timeout={D}")
    assert r.ret == 1
    err = r.stderr.str()
    assert f"forkscope: deadline of {D}s passed during call" in err
    assert "Run directory: " in err and "Found " in err
    assert "does not respond to interruption" in err


def test_probed_pytest_keeps_the_forks_of_the_test_process(inner, pytester):
    """pytest itself run with the probe (as under `forkscope watch`): the
    test's slice of the session's events goes into its run directory,
    os.fork() of the test body included."""
    probe = os.environ.get("FORKSCOPE_PROBE")
    if not probe:
        pytest.skip("FORKSCOPE_PROBE is not set")
    pytester.makepyfile(test_fork='''
import os, select
from conftest import record

def test_forked_child_waits_for_eof():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)  # the parent's copy still keeps EOF away
            select.select([r], [], [])
        finally:
            os._exit(0)
    record(pid)
    os.waitpid(pid, 0)
''')
    session = pytester.path / "session-events.ndjson"
    pytester._monkeypatch.setenv("LD_PRELOAD", probe)
    pytester._monkeypatch.setenv("FORKSCOPE_EVENTS", str(session))
    xml = pytester.path / "junit.xml"
    r = inner.run(f"--forkscope-timeout={D}", f"--junitxml={xml}")
    r.assert_outcomes(failed=1)
    run_dir = junit(xml)["test_forked_child_waits_for_eof"][1]["forkscope_run_dir"]
    events = [json.loads(line) for line in open(os.path.join(run_dir, "events.ndjson"))]
    child = inner.recorded_pids()[0]
    assert any(e.get("ev") == "fork" and e.get("child_pid") == child for e in events)
    assert any(e.get("ev") == "child_start" and e.get("pid") == child for e in events)
    assert json.loads(open(os.path.join(run_dir, "verdicts.json")).read())["with_events"] is True


def test_processes_left_running_are_ended_at_the_end_of_the_session(inner, pytester):
    pytester.makepyfile(test_left='''
import subprocess, sys
from conftest import record

def test_starts_and_forgets():
    p = subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(1000)"])
    record(p.pid)
''')
    r = inner.run("--forkscope-timeout=600")
    r.assert_outcomes(passed=1)
    pid = inner.recorded_pids()[0]
    r.stdout.fnmatch_lines(["*processes the tests started still ran at the end of the session:*",
                            f"*SIGINT -> * ({pid})*"])
