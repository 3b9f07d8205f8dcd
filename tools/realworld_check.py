#!/usr/bin/env python3
"""Real programs that hang (and some that are only slow), triaged N times.

Each case starts a small real program (python3 stdlib, sh, util-linux flock,
mkfifo) in its own session, waits until the exact processes it needs are in
the expected kernel wait (a /proc check in a loop, no fixed sleep), runs
`forkscope triage` on it N times and counts the verdict classes. Used for the
stability figure of docs/verdicts.md and to record the snapshots the unit
tests replay (--record DIR).

  tools/realworld_check.py [--forkscope PATH] [-n 50] [--hogs 2] [--shim]
                           [--record DIR] [CASE...]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (expected class or None for "no hang", script kind, source, wait check)
# wait check: list of (argv substring, wchan regex) that must all be present.
CASES = {
    "flock-cycle": ("file-lock", "sh", r'''
cd "$WORK"
flock la -c 'touch ra; while [ ! -e rb ]; do sleep 0.05; done; flock lb true' &
flock lb -c 'touch rb; while [ ! -e ra ]; do sleep 0.05; done; flock la true' &
wait
''', [("flock lb true", "locks_lock_inode_wait|flock"), ("flock la true", "locks_lock_inode_wait|flock")]),
    "fifo-no-writer": ("fifo-no-partner", "sh", r'''
cd "$WORK" && mkfifo ff
cat ff &
wait
''', [("cat ff", "wait_for_partner|fifo")]),
    "lock-across-fork": ("lost-wakeup-futex", "py", r'''
import os, threading, time
lock = threading.Lock()
ready = threading.Event()
def holder():
    with lock:
        ready.set()
        time.sleep(1000)
threading.Thread(target=holder, daemon=True, name="holder").start()
ready.wait()
pid = os.fork()
if pid == 0:
    lock.acquire()
    os._exit(0)
os.waitpid(pid, 0)
''', [("CHILD", "futex")]),
    "tcp-peers-wait": ("mutual-wait", "py", r'''
import os, socket, selectors
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
port = srv.getsockname()[1]
pid = os.fork()
if pid == 0:
    srv.close()
    own = socket.socket(); own.bind(("127.0.0.1", 0)); own.listen()  # its own listener, like an actor
    c = socket.create_connection(("127.0.0.1", port))
    sel = selectors.DefaultSelector()
    sel.register(c, selectors.EVENT_READ)
    sel.register(own, selectors.EVENT_READ)
    sel.select()
    os._exit(0)
conn, _ = srv.accept()
sel = selectors.DefaultSelector()
sel.register(conn, selectors.EVENT_READ)
sel.register(srv, selectors.EVENT_READ)
sel.select()
os.waitpid(pid, 0)
''', [("CHILD", "epoll"), ("ROOT", "epoll")]),
    "capture-bg-job": ("eof-never", "py", r'''
import subprocess
p = subprocess.Popen(["sh", "-c", "sleep 1000 & exit 0"], stdout=subprocess.PIPE)
p.stdout.read()
''', [("ROOT", "pipe_read|pipe_wait"), ("sleep 1000", "nanosleep|do_syscall")]),
    "popen-pipe-full": ("pipe-full", "py", r'''
import subprocess, sys
p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.write('x' * 200000)"], stdout=subprocess.PIPE)
p.wait()
''', [("ROOT", "do_wait"), ("CHILD", "pipe_write|pipe_wait")]),
    "stopped-child": ("stopped", "sh", r'''
sleep 1000 &
kill -STOP $!
wait
''', [("CHILD", "do_signal_stop")]),
    "shell-waits-long-sleep": ("wait-knot", "sh", r'''
sleep 1000
true
''', [("sleep 1000", "nanosleep")]),
    "lone-pause": ("none", "py", r'''
import signal
signal.pause()
''', [("ROOT", "pause")]),
    "slow-drain": (None, "py", r'''
import subprocess, sys
p = subprocess.Popen([sys.executable, "-c", "import sys\nfor i in range(10**9): sys.stdout.write('x'*100+'\\n'); sys.stdout.flush()"], stdout=subprocess.PIPE)
for line in p.stdout:
    pass
''', [("CHILD", "")]),
}


def procs_of_session(sid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            if int(fields[3]) != sid:
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{d}/wchan") as f:
                wchan = f.read()
            out.append((int(d), int(fields[1]), fields[0], argv, wchan))
        except (OSError, ValueError):
            continue
    return out


def ready(root, checks):
    import re
    ps = procs_of_session(root)
    for sub, wre in checks:
        ok = False
        for pid, ppid, state, argv, wchan in ps:
            if sub == "ROOT":
                hit = pid == root
            elif sub == "CHILD":
                hit = ppid == root and pid != root
            else:
                hit = sub in argv
            if hit and (re.search(wre, wchan) if wre else True) and (wre or state in "RS"):
                ok = True
        if not ok:
            return False
    return True


def start(case, work, shim):
    cls, kind, src, checks = CASES[case]
    path = os.path.join(work, case + (".sh" if kind == "sh" else ".py"))
    with open(path, "w") as f:
        f.write(src)
    if kind == "sh":
        argv = ["sh", path]
    elif shim:
        # a wrapper that execs the interpreter, like pyenv's python3
        sp = os.path.join(work, "python3-shim")
        with open(sp, "w") as f:
            f.write("#!/bin/sh\nexec python3 \"$@\"\n")
        os.chmod(sp, 0o755)
        argv = [sp, path]
    else:
        argv = ["python3", path]
    env = dict(os.environ, WORK=work)
    p = subprocess.Popen(argv, cwd=work, env=env, start_new_session=True,
                         stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready(p.pid, checks):
        if time.monotonic() > deadline or p.poll() is not None:
            kill(p)
            raise RuntimeError(f"{case}: never reached its wait")
        time.sleep(0.05)
    return p


def kill(p):
    try:
        os.killpg(p.pid, signal.SIGCONT)
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    # orphans of the session (a background job reparented to init)
    for pid, *_ in procs_of_session(p.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def strip(snapshot):
    for pr in snapshot.get("processes", []):
        pr.pop("unmatched_stacks", None)
        pr["python"] = None
        for t in pr.get("threads", []):
            st = t.get("stack")
            if isinstance(st, dict):
                st["frames"] = st.get("frames", [])[:4]
    return snapshot


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forkscope", default=os.path.join(HERE, "..", "build", "harness", "forkscope"))
    ap.add_argument("-n", type=int, default=1)
    ap.add_argument("--hogs", type=int, default=0)
    ap.add_argument("--shim", action="store_true")
    ap.add_argument("--record")
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.hogs)]
    failed = 0
    try:
        for case in a.cases or list(CASES):
            expect = CASES[case][0]
            with tempfile.TemporaryDirectory(prefix="fs-rw-") as work:
                p = start(case, work, a.shim)
                counts = {}
                try:
                    for i in range(a.n):
                        r = subprocess.run([a.forkscope, "triage", "--json", str(p.pid)], capture_output=True, text=True)
                        doc = json.loads(r.stdout)
                        hang = [v["class"] for v in doc["verdicts"]]
                        key = ",".join(hang) or "none"
                        counts[key] = counts.get(key, 0) + 1
                        if a.record and i == 0:
                            os.makedirs(a.record, exist_ok=True)
                            with open(os.path.join(a.record, case + ".json"), "w") as f:
                                json.dump({"expect": expect, "root": p.pid,
                                           "snapshot": strip(doc["snapshot"])}, f, indent=1)
                finally:
                    kill(p)
            want = expect or "slow-not-stuck"
            good = sum(c for k, c in counts.items() if k.split(",")[0] == want)
            ok = good * 50 >= a.n * 49
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {case}: {good}/{a.n} {want}  {counts}", flush=True)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
