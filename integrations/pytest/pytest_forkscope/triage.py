"""Running `forkscope triage` on the test's tree and keeping what it said."""
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

PROBE_NAME = "libforkscope-probe.so"
# Where `forkscope watch` looks for the probe, relative to its binary.
PROBE_DIRS = (
    "../probes",  # the build tree
    "../lib/forkscope",
    "../lib64/forkscope",
    "../lib/x86_64-linux-gnu/forkscope",
    "../lib/aarch64-linux-gnu/forkscope",
)
# Bound on one triage: a snapshot of a few hundred processes takes well under
# a second; this only keeps a wedged triage from wedging the session.
TRIAGE_BOUND_S = 120

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_runner.py")
# Wakes the watchdog thread from its wait; a Python handler is installed for
# it while a test runs (watch.py: INTERRUPT_SIGNAL, which it is).
WAKE_SIGNAL = signal.SIGRTMIN + 6

PR_SET_PTRACER = 0x59616D61
PR_SET_PTRACER_ANY = ctypes.c_ulong(-1).value


def find_forkscope(explicit=None):
    for cand in (explicit, os.environ.get("FORKSCOPE"), shutil.which("forkscope")):
        if cand and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return None


def find_probe(binary, explicit=None):
    for cand in (explicit, os.environ.get("FORKSCOPE_PROBE")):
        if cand and os.path.isfile(cand):
            return os.path.abspath(cand)
    if binary:
        here = os.path.dirname(os.path.realpath(binary))
        for d in PROBE_DIRS:
            cand = os.path.normpath(os.path.join(here, d, PROBE_NAME))
            if os.path.isfile(cand):
                return cand
    return None


def session_events():
    """The events log of this process when it runs with the probe (under
    `forkscope watch`, or LD_PRELOAD and FORKSCOPE_EVENTS set by hand): its
    own forks, and those of everything it starts, are written there."""
    path = os.environ.get("FORKSCOPE_EVENTS")
    if not path or not os.path.isabs(path):
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            loaded = any(line.rstrip().endswith("/" + PROBE_NAME) for line in f)
    except OSError:
        return None
    return path if loaded else None


def copy_events_since(src, offset, dst):
    """The lines appended to src since offset (whole lines only) into dst."""
    with open(src, "rb") as f:
        f.seek(offset)
        data = f.read()
    data = data[:data.rfind(b"\n") + 1]
    with open(dst, "wb") as f:
        f.write(data)
    return dst


def _allow_ptrace_by_children(on):
    """Under Yama ptrace_scope=1 a child may not trace its parent; triage is
    our child and must trace us. Without Yama prctl fails: nothing to do."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(PR_SET_PTRACER_ANY if on else 0), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Triage:
    """What one deadline's triage found. verdicts is the list of verdict
    objects of `forkscope triage --json`; error is set when there was no
    usable answer."""

    def __init__(self):
        self.verdicts = []
        self.gaps = ""
        self.error = None
        self.rc = None
        self.with_events = False

    @property
    def classes(self):
        return [v.get("class", "?") for v in self.verdicts]

    def verdict_property(self):
        """The forkscope_verdict JUnit property: the verdict classes, 'none'
        when triage named nothing, 'error: ...' when it did not run."""
        if self.error:
            return "error: " + self.error
        return ",".join(self.classes) or "none"

    def text(self):
        if self.error:
            return f"forkscope triage did not run: {self.error}"
        parts = [v.get("text", "").rstrip() for v in self.verdicts]
        hangs = sum(1 for v in self.verdicts if v.get("class") not in ("slow-teardown", "escaped"))
        if self.gaps.strip():
            parts.append(self.gaps.rstrip())
        parts.append(f"Found {hangs} hang{'s' if hangs != 1 else ''}." if hangs else "No hang found.")
        return "\n".join(p for p in parts if p)


_FRAME = re.compile(r"^(\s+)#\d+ ")
_WATCHDOG_THREAD = re.compile(r'^\s+\S.* thread \d+ "forkscope-wd":$')
_HARNESS_FRAME = re.compile(r"/(_pytest|pluggy|xdist|execnet)/")


def shorten_stacks(text):
    """Stacks of the test process run down through pytest's own machinery
    (some 90 frames): in the report, cut each stack at its first pytest or
    pluggy frame, and leave out the plugin's own watchdog thread (waiting
    asleep while triage runs). verdict.txt in the run directory keeps all."""
    out, cut, indent, skipping = [], 0, "", False
    for line in text.splitlines():
        m = _FRAME.match(line)
        if skipping and m:
            continue
        skipping = False
        if m and cut:
            cut += 1
            continue
        if cut:
            out.append(f"{indent}... {cut} more frames (pytest, the interpreter; whole in verdict.txt)")
            cut = 0
        if _WATCHDOG_THREAD.search(line):
            skipping = True
            continue
        if m and _HARNESS_FRAME.search(line):
            cut, indent = 1, m.group(1)
            continue
        out.append(line)
    if cut:
        out.append(f"{indent}... {cut} more frames (pytest, the interpreter; whole in verdict.txt)")
    return "\n".join(out)


def _clean_env(env):
    """The triage process itself must not load the probe."""
    env = dict(env)
    env.pop("FORKSCOPE_EVENTS", None)
    pre = [p for p in env.get("LD_PRELOAD", "").replace(" ", ":").split(":")
           if p and os.path.basename(p) != PROBE_NAME]
    if pre:
        env["LD_PRELOAD"] = ":".join(pre)
    else:
        env.pop("LD_PRELOAD", None)
    return env


def run(binary, root, run_dir, env, sleeper, events=None):
    """Triage the live tree of root (its threads and every descendant) and
    write snapshot.json, verdicts.json and verdict.txt into run_dir. With an
    events file the verdicts are recomputed from the snapshot with the probe
    events (`triage --from SNAPSHOT --events EVENTS`). Returns a Triage."""
    t = Triage()
    if not binary:
        t.error = "no forkscope binary (set FORKSCOPE, --forkscope-bin, or put forkscope on PATH)"
        return t
    env = _clean_env(env)
    out_path = os.path.join(run_dir, "triage.json")
    err_path = os.path.join(run_dir, "triage.stderr")
    _allow_ptrace_by_children(True)
    cmd = [binary, "triage", "--json", str(root)]
    try:
        if callable(signal.getsignal(WAKE_SIGNAL)) and sleeper is not None:
            status = _run_asleep(env, out_path, err_path, cmd, sleeper)
        else:
            status = _run_waiting(env, out_path, err_path, cmd)
    except OSError as e:
        t.error = f"{binary} triage: {e}"
        return t
    finally:
        _allow_ptrace_by_children(False)
    if status == "timeout":
        t.error = f"forkscope triage did not finish within {TRIAGE_BOUND_S}s"
        return t
    t.rc = int(status) if status.lstrip("-").isdigit() else None
    with open(err_path, encoding="utf-8", errors="replace") as f:
        t.gaps = f.read()
    if not t.gaps:
        os.unlink(err_path)
    try:
        with open(out_path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        t.error = f"forkscope triage exited {t.rc}: {t.gaps.strip() or 'no JSON on stdout'}"
        return t
    snap_path = os.path.join(run_dir, "snapshot.json")
    _write_json(snap_path, doc.get("snapshot", {}))
    os.unlink(out_path)
    t.verdicts = doc.get("verdicts", [])
    if events and os.path.isfile(events) and os.path.getsize(events) > 0:
        _with_events(t, binary, snap_path, events, env)
    _write_json(os.path.join(run_dir, "verdicts.json"),
                {"verdicts": t.verdicts, "with_events": t.with_events, "triage_status": t.rc})
    with open(os.path.join(run_dir, "verdict.txt"), "w", encoding="utf-8") as f:
        f.write(t.text() + "\n")
    return t


def _run_waiting(env, out_path, err_path, cmd):
    """Without a handler for WAKE_SIGNAL (the test does not run in the main
    thread) the wait cannot be interrupted safely: a plain wait, which forkscope
    counts as able to act, so a knot through this process goes unnamed."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            return str(subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                      timeout=TRIAGE_BOUND_S).returncode)
        except subprocess.TimeoutExpired:
            return "timeout"


class Sleeper:
    """Where the watchdog thread waits while triage runs: sem_wait(3) on a
    semaphore of its own, called directly. forkscope sees a futex wait that
    only this process could release, like the test's own blocked threads,
    so the watchdog neither makes the test process look able to act nor
    breaks a knot of its threads (a poll, a wait4 on the triage, or a
    timed sleep would). The runner's signal interrupts it (EINTR, never
    restarted); post() releases it when the test is over."""

    def __init__(self):
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._sem = ctypes.create_string_buffer(64)  # sizeof(sem_t) is 32
        self._libc.sem_init(self._sem, 0, 0)

    def wait(self):
        self._libc.sem_wait(self._sem)

    def post(self):
        self._libc.sem_post(self._sem)


def _run_asleep(env, out_path, err_path, cmd, sleeper):
    """Run cmd through _runner.py and wait in sleeper until it says it is
    done; returns its status line (the exit status, "timeout", "error ...")."""
    done = out_path + ".done"
    ack_r, ack_w = os.pipe2(os.O_CLOEXEC)
    try:
        runner = subprocess.Popen(
            [sys.executable, RUNNER, done, str(ack_r), str(os.getpid()), str(threading.get_native_id()),
             str(int(WAKE_SIGNAL)), str(TRIAGE_BOUND_S), out_path, err_path, "--"] + cmd,
            stdin=subprocess.DEVNULL, env=env, pass_fds=(ack_r,))
    finally:
        os.close(ack_r)
    try:
        while not os.path.exists(done):
            if runner.poll() is not None and not os.path.exists(done):
                return "error: the triage runner exited " + str(runner.returncode)
            sleeper.wait()
    finally:
        os.close(ack_w)
        runner.wait()
    with open(done, encoding="utf-8") as f:
        status = f.read().strip()
    os.unlink(done)
    return status


def _with_events(t, binary, snap_path, events, env):
    try:
        r = subprocess.run([binary, "triage", "--from", snap_path, "--events", events, "--json"],
                           stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=TRIAGE_BOUND_S)
        doc = json.loads(r.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return  # the live verdicts stand
    if r.returncode in (0, 1) and isinstance(doc.get("verdicts"), list):
        t.verdicts = doc["verdicts"]
        t.with_events = True


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
