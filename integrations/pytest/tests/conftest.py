"""pytester-based tests of pytest-forkscope: each test writes a test file,
runs pytest on it in a subprocess with the plugin and the freshly built
forkscope (FORKSCOPE, FORKSCOPE_PROBE), and checks the outcome, the report
and that nothing the inner tests started is left."""
import ctypes
import os
import signal
import time
from importlib import metadata

import pytest

pytest_plugins = ["pytester"]

PR_SET_CHILD_SUBREAPER = 36

# The inner tests record the pids of the processes they start here.
INNER_CONFTEST = r'''
import os

def record(pid):
    with open(f"/proc/{pid}/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    with open(os.environ["FS_PIDS"], "a") as f:
        f.write(f"{pid} {start}\n")
'''


def _stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def descendants(root):
    table = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st:
                table[int(d)] = st
    out, frontier = [], {root}
    while frontier:
        nxt = {p for p, (_, pp) in table.items() if pp in frontier}
        out += [p for p in nxt if table[p][0] not in "ZX"]
        frontier = nxt
    return out


def reap_children():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@pytest.fixture(scope="session", autouse=True)
def subreaper():
    """Orphans of the inner runs come back to this process, so the leftover
    check below sees every process they started, daemons included."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def plugin_args():
    """-p for the plugin when it is not installed (the meson test runs it
    from the source tree through PYTHONPATH)."""
    names = {ep.name for ep in metadata.entry_points(group="pytest11")}
    return [] if "forkscope" in names else ["-p", "pytest_forkscope.plugin"]


class Inner:
    def __init__(self, pytester, tmp_path):
        self.pytester = pytester
        self.pids_file = tmp_path / "pids.txt"
        self.pids_file.write_text("")
        pytester.makeconftest(INNER_CONFTEST)

    def run(self, *args):
        self.pytester._monkeypatch.setenv("FS_PIDS", str(self.pids_file))
        # the default run directories go under it: keep them in the test's tmp
        self.pytester._monkeypatch.setenv("XDG_STATE_HOME", str(self.pytester.path / "state"))
        return self.pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider",
                                                  "--forkscope-grace=1", *args, timeout=600)

    def recorded_pids(self):
        return [int(line.split()[0]) for line in self.pids_file.read_text().splitlines()]

    def recorded_alive(self):
        """The recorded processes that still run (same pid, same start time)."""
        alive = []
        for line in self.pids_file.read_text().splitlines():
            pid, start = (int(x) for x in line.split())
            try:
                with open(f"/proc/{pid}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(rest[19]) == start and rest[0] not in "ZX":
                alive.append(pid)
        return alive


@pytest.fixture
def inner(pytester, tmp_path):
    """Runs inner sessions; afterwards asserts that no process they started
    is alive, and ends (by pid) and reaps whatever is."""
    if not os.environ.get("FORKSCOPE"):
        pytest.skip("FORKSCOPE (the forkscope binary to test) is not set")
    i = Inner(pytester, tmp_path)
    try:
        yield i
        # SIGKILL is asynchronous: a process may still be exiting when the
        # inner run returns. Wait (bounded) for the exact pids, then check.
        end = time.monotonic() + 30
        while time.monotonic() < end and descendants(os.getpid()):
            reap_children()
            time.sleep(0.05)
        left = descendants(os.getpid())
        recorded_alive = i.recorded_alive()
        assert left == [], f"processes left by the inner run: {left}"
        assert recorded_alive == [], f"processes the inner tests started are alive: {recorded_alive}"
    finally:
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap_children()
