"""Processes of the test: who descends from it, and the SIGINT-first ladder.

Everything is addressed by pid, checked against the process start time so a
reused pid is never signalled, and signalled through a pidfd once opened.
"""
import os
import select
import signal
import time

LADDER = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def _stat(pid):
    """(state, ppid, starttime) from /proc/PID/stat, or None when gone. The
    command name may hold spaces and parentheses: split after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def proc_table():
    """{pid: (state, ppid, starttime)} of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st:
                table[int(name)] = st
    return table


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def descendants(root, table=None, live_only=True):
    """{pid: starttime} of the processes below root, by ppid links. Zombies
    are dead: left out unless live_only is false."""
    table = table if table is not None else proc_table()
    children = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, stack = {}, [root]
    while stack:
        for pid in children.get(stack.pop(), ()):
            stack.append(pid)
            state, _, start = table[pid]
            if not live_only or state not in "ZX":
                out[pid] = start
    return out


def alive(pid, start):
    st = _stat(pid)
    return st is not None and st[2] == start and st[0] not in "ZX"


def _open(pid, start):
    """A pidfd for pid if it is still the process born at start."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if not alive(pid, start):
        os.close(fd)
        return None
    return fd


def _wait_exit(fds, seconds):
    """Wait until every pidfd is readable (its process exited) or seconds
    passed; returns the fds still alive."""
    left = dict(fds)
    poller = select.poll()
    for fd in left:
        poller.register(fd, select.POLLIN)
    # One deadline for the whole set: a process that ignores the signal must
    # not multiply the grace.
    end = _now() + seconds
    while left:
        ms = max(0, int((end - _now()) * 1000))
        for fd, _ in poller.poll(ms):
            poller.unregister(fd)
            left.pop(fd, None)
        if _now() >= end:
            break
    return left


def _now():
    return time.monotonic()


def end_processes(targets, grace):
    """SIGINT, then SIGTERM, then SIGKILL, each to the processes of targets
    ({pid: starttime}) still alive, waiting up to grace seconds after each
    of the first two. Returns [(signal name, [(pid, comm)])] of what was
    sent."""
    fds, names = {}, {}
    for pid, start in sorted(targets.items()):
        name = comm(pid)
        fd = _open(pid, start)
        if fd is not None:
            fds[fd] = pid
            names[pid] = name
    steps = []
    try:
        for i, sig in enumerate(LADDER):
            if not fds:
                break
            sent = []
            for fd, pid in fds.items():
                try:
                    signal.pidfd_send_signal(fd, sig)
                    sent.append((pid, names[pid]))
                except ProcessLookupError:
                    pass
            if sent:
                steps.append((signal.Signals(sig).name, sent))
            still = _wait_exit(fds, grace if i + 1 < len(LADDER) else 30.0)
            for fd in set(fds) - set(still):
                os.close(fd)
            fds = still
    finally:
        for fd in fds:
            os.close(fd)
    return steps


def end_tree(root, baseline, grace, rounds=5):
    """End what descends from root and was not in baseline ({pid: starttime}
    taken when the test began). Children forked while the ladder ran get
    their own ladder in the next round; at most rounds rounds."""
    steps = []
    for _ in range(rounds):
        now = descendants(root)
        targets = {p: s for p, s in now.items() if baseline.get(p) != s}
        if not targets:
            break
        steps += end_processes(targets, grace)
    return steps


def reap_zombie_children(baseline_all):
    """Reap our zombie children that were not in baseline_all ({pid:
    starttime}): children whose waiter was interrupted or is gone."""
    me = os.getpid()
    for pid, (state, ppid, start) in proc_table().items():
        if ppid == me and state == "Z" and baseline_all.get(pid) != start:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
