"""The real-world corpus (fixtures/realworld/, issue 13): start a case through
its shim, wait until it is in place, triage it or watch it, check the verdict.

Shared by tests/test_realworld.py and tools/verdict-stability. Nothing here
sleeps to let a case "get there": each case writes a ready file, then the
processes of its session are polled in /proc until every one is where the
case says (blocked in the kernel, a zombie, stopped), three samples in a row
with the same set of pids, under a generous deadline.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

SRC = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORKSCOPE = os.environ.get("FORKSCOPE") or os.path.join(SRC, "build", "harness", "forkscope")
CORPUS = os.path.join(SRC, "fixtures", "realworld")
# Findings, not hangs (docs/verdicts.md): never counted in "Found N hangs."
FINDINGS = {"escaped", "slow-teardown", "slow-not-stuck"}
SETTLE_DEADLINE_S = 60.0
WATCH_TIMEOUT = os.environ.get("RW_WATCH_TIMEOUT", "6s")
WATCH_LINGER = os.environ.get("RW_WATCH_LINGER", "3s")

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Orphans of a case (pause-orphan, flock-orphan-holder) come back to us,
    so they can be seen, checked and ended."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def load_cases():
    with open(os.path.join(CORPUS, "cases.json")) as f:
        return {c["name"]: c for c in json.load(f)["cases"]}


# ---- /proc ----

def read_stat(pid):
    """(state, ppid, pgid, sid, starttime, comm) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]), comm


def session_members(sid):
    """{pid: stat} of every process of session sid (the case's whole tree:
    no case calls setsid, orphans included)."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_stat(int(d))
            if st and st[3] == sid:
                out[int(d)] = st
    return out


def condition(pid):
    """blocked | running | zombie | stopped | gone: blocked means every thread
    sleeps inside a kernel wait (wchan set)."""
    st = read_stat(pid)
    if st is None:
        return "gone"
    if st[0] in "ZX":
        return "zombie"
    if st[0] in "tT":
        return "stopped"
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return "gone"
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                wchan = f.read().strip()
        except OSError:
            continue
        state = s[s.rindex(")") + 2]
        if state in "tT":
            return "stopped"
        if state not in "SD" or wchan in ("", "0"):
            return "running"
    return "blocked"


# ---- starting and ending a case ----

class Case:
    def __init__(self, spec, workdir=None):
        self.spec = spec
        self.dir = workdir or tempfile.mkdtemp(prefix="fs-rw-")
        self.ready_file = os.path.join(self.dir, "ready")
        self.proc = None
        self.roles = {}

    def env(self):
        env = dict(os.environ)
        env.update(RW_READY=self.ready_file, RW_DIR=self.dir, PYTHONDONTWRITEBYTECODE="1")
        return env

    def argv(self):
        shim, script, *args = self.spec["start"]
        return [os.path.join(CORPUS, "bin", shim), os.path.join(CORPUS, "cases", script), *args]

    def start(self):
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(self.argv(), env=self.env(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr, start_new_session=True)
        return self.proc

    def read_ready(self):
        with open(self.ready_file) as f:
            return {k: int(v) for k, v in (line.strip().split("=", 1) for line in f if "=" in line)}

    def wait_ready(self, deadline_s=SETTLE_DEADLINE_S):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if os.path.exists(self.ready_file):
                self.roles = self.read_ready()
                return self.roles
            if self.proc.poll() is not None and not self.spec.get("root_exits"):
                break
            time.sleep(0.01)
        raise AssertionError(f"{self.spec['name']}: no ready file (exit {self.proc.poll()}): {self.errors()}")

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read()[-2000:]

    def resolve_comm_roles(self):
        """Roles named by command (processes the case cannot report itself,
        e.g. the members of a shell pipeline): looked up in the session."""
        for role, comm in self.spec.get("comm_roles", {}).items():
            want = self.spec.get("settle", {}).get(role, "blocked")
            hits = [p for p, st in sorted(session_members(self.proc.pid).items()) if st[5] == comm]
            fitting = [p for p in hits if want == "any" or condition(p) == want]
            if fitting or hits:
                self.roles[role] = (fitting or hits)[0]

    def settle(self, deadline_s=SETTLE_DEADLINE_S):
        """Wait until the case is in place: each role in its settle state
        (default blocked), for a hang every other process of the session not
        running, and the same pids three samples in a row."""
        want = self.spec.get("settle", {})
        hang = self.spec["kind"] == "hang"
        end = time.monotonic() + deadline_s
        stable, last, report = 0, None, ""
        while time.monotonic() < end:
            self.resolve_comm_roles()
            members = session_members(self.proc.pid)
            conds = {p: condition(p) for p in members}
            ok = all(r in self.roles for r in self.spec.get("comm_roles", {}))
            for role, pid in self.roles.items():
                w = want.get(role, "blocked" if hang else "any")
                c = conds.get(pid) or condition(pid)
                if w != "any" and c != w:
                    ok = False
            if hang:
                free = {pid for r, pid in self.roles.items() if want.get(r) == "any"}
                ok = ok and all(c != "running" for p, c in conds.items() if p not in free)
            key = tuple(sorted(members))
            stable = stable + 1 if ok and key == last else (1 if ok else 0)
            last = key
            report = f"roles {self.roles}, session {conds}"
            if stable >= 3:
                return self.roles
            time.sleep(0.05)
        raise AssertionError(f"{self.spec['name']}: not in place: {report}")

    def triage_pids(self):
        pids = [] if self.spec.get("root_exits") else [self.proc.pid]
        for pid in self.roles.values():
            if pid not in pids and read_stat(pid):
                pids.append(pid)
        return pids

    def end(self):
        """End what the case started: its process group, then anything left in
        its session (orphans we are the subreaper of, a shell's jobs)."""
        end_session(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def end_session(sid, bound_s=30.0):
    """SIGKILL the process group sid and every remaining member of session
    sid (all created by us through start_new_session), then wait until none
    is alive and reap our own children among them. Returns the pids that
    were still alive at the first look (leftovers when nothing should be)."""
    first = [p for p, st in session_members(sid).items() if st[0] not in "ZX"]
    try:
        os.killpg(sid, signal.SIGCONT)
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    end = time.monotonic() + bound_s
    while time.monotonic() < end:
        alive = [p for p, st in session_members(sid).items() if st[0] not in "ZX"]
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap_all()
        if not alive and not session_members(sid):
            break
        time.sleep(0.01)
    return first


def reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---- the verdict ----

def hang_verdicts(doc):
    return [v for v in doc.get("verdicts", []) if v["class"] not in FINDINGS]


def comm_pids(snapshot, comm):
    return {p["pid"] for p in (snapshot or {}).get("processes", []) if p.get("comm") == comm}


def check_doc(spec, doc, roles, snapshot):
    """The problems with a triage/watch document for this case ([] = right)."""
    problems = []
    hangs = hang_verdicts(doc)
    if doc.get("found_hangs") != len(hangs):
        problems.append(f"found_hangs {doc.get('found_hangs')} but {len(hangs)} hang verdicts")
    if spec["kind"] == "healthy":
        if hangs:
            problems.append(f"false verdict(s) on a healthy program: {[v['class'] for v in hangs]}")
        found = [v["class"] for v in doc.get("verdicts", [])]
        if spec.get("finding") and spec["finding"] not in found:
            problems.append(f"expected the finding {spec['finding']} (what moved), got {found or 'none'}")
        return problems
    classes = [v["class"] for v in hangs]
    if classes != [spec["class"]]:
        problems.append(f"expected exactly one {spec['class']} verdict, got {classes or 'none'}")
        return problems
    v = hangs[0]
    for role in spec["names"]:
        pids = {roles[role]} if role in roles else set()
        if role in spec.get("comm_roles", {}):
            pids |= comm_pids(snapshot, spec["comm_roles"][role])
        if not pids & set(v["pids"]):
            problems.append(f"verdict does not name {role} ({spec['roles'][role]}, pid {sorted(pids)}): {v['pids']}")
    if spec.get("resource") and not (v.get("resource") and re.search(spec["resource"], v["resource"])):
        problems.append(f"resource {v.get('resource')!r} does not match {spec['resource']!r}")
    return problems


def check_text(doc, text):
    """The text form counts exactly the verdicts it prints."""
    n = len(hang_verdicts(doc))
    printed = len(re.findall(r"^Hang: ", text, re.M))
    closing = "No hang found." if n == 0 else f"Found {n} hang{'s' if n != 1 else ''}."
    problems = []
    if closing not in text:
        problems.append(f"text lacks {closing!r}")
    if printed != n:
        problems.append(f"text prints {printed} 'Hang:' verdicts for {n} hangs")
    return problems


def back_to(pid, cond, bound_s=10.0):
    """(stat, condition) of pid once it is back in cond (a thread the
    snapshot interrupted re-enters its wait), or as it is at the bound."""
    end = time.monotonic() + bound_s
    while True:
        st, c = read_stat(pid), condition(pid)
        if c == cond or st is None or time.monotonic() > end:
            return st, c
        time.sleep(0.01)


def run_triage(case, text=True):
    """Triage the settled case. Returns (problems, doc)."""
    pids = [str(p) for p in case.triage_pids()]
    before = {p: (read_stat(p), condition(p)) for p in case.roles.values()}
    r = subprocess.run([FORKSCOPE, "triage", "--json", *pids], capture_output=True, text=True)
    if r.returncode == 2 or not r.stdout.strip():
        return [f"triage failed ({r.returncode}): {r.stderr.strip()}"], None
    doc = json.loads(r.stdout)
    problems = check_doc(case.spec, doc, case.roles, doc.get("snapshot"))
    want_rc = 1 if hang_verdicts(doc) else 0
    if r.returncode != want_rc:
        problems.append(f"triage exit {r.returncode}, expected {want_rc}")
    # Taking a snapshot must leave a hang as it was (same process, same wait).
    if case.spec["kind"] == "hang":
        for role, pid in case.roles.items():
            (st0, c0) = before[pid]
            st1, c1 = back_to(pid, c0)
            if st0 and (not st1 or st1[4] != st0[4]):
                problems.append(f"{role} (pid {pid}) exited during triage")
            elif st0 and c0 in ("blocked", "zombie", "stopped") and c1 != c0:
                problems.append(f"{role} (pid {pid}) was {c0}, after triage {c1}")
    if text:
        t = subprocess.run([FORKSCOPE, "triage", *pids], capture_output=True, text=True)
        text_problems = check_text(doc, t.stdout)
        if text_problems:
            problems += text_problems + [f"text triage (exit {t.returncode}): {t.stdout[-1500:]}"]
    return problems, doc


def run_watch(spec, timeout=WATCH_TIMEOUT, linger=WATCH_LINGER, bound_s=300):
    """forkscope watch the case from its start. Returns (problems, doc, roles)."""
    case = Case(spec)
    out = os.path.join(case.dir, "run")
    jf = os.path.join(case.dir, "watch.json")
    argv = [FORKSCOPE, "watch", "--timeout", timeout, "--linger", linger, "--out", out, "--json", jf,
            "--", *case.argv()]
    problems = []
    p = subprocess.Popen(argv, env=case.env(), cwd=case.dir, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = p.communicate(timeout=bound_s)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        problems.append(f"watch did not return within {bound_s}s")
    left = end_session(p.pid)
    if left:
        problems.append(f"processes left behind by watch: {left}")
    try:
        if not os.path.exists(case.ready_file):
            return problems + ["case not in place at the watch deadline (no ready file; raise RW_WATCH_TIMEOUT)"], None, {}
        roles = case.read_ready()
        expect_rc = 124 if not spec.get("root_exits") else 0
        if p.returncode != expect_rc:
            problems.append(f"watch exit {p.returncode}, expected {expect_rc}: {err.decode()[-500:]}")
        try:
            with open(jf) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            return problems + [f"no watch json: {e}"], None, roles
        snapshot = None
        if doc.get("snapshot_file"):
            try:
                with open(os.path.join(out, doc["snapshot_file"])) as f:
                    snapshot = json.load(f)
            except (OSError, ValueError):
                pass
        problems += check_doc(spec, doc, roles, snapshot)
        for role, comm in spec.get("comm_roles", {}).items():
            hits = comm_pids(snapshot, comm) & set(p for v in hang_verdicts(doc) for p in v["pids"])
            if hits:
                roles[role] = min(hits)
        return problems, doc, roles
    finally:
        shutil.rmtree(case.dir, ignore_errors=True)


def triage_case(spec):
    """Start, settle, triage, end. Returns (problems, doc)."""
    case = Case(spec)
    case.start()
    try:
        case.wait_ready()
        case.settle()
        return run_triage(case)
    finally:
        case.end()
