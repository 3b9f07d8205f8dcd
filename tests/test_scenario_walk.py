"""The real forkscope binary on scenario directories that once broke the walk
(issue 17): symlink loops, FIFOs named *.yaml, unreadable subdirectories, and
an `image` the root cannot allocate.

`timeout=` on subprocess.run is a hang guard (these inputs once made forkscope
run forever), not a timing assertion: it is minutes, the runs take
milliseconds. This process is a child subreaper, so anything forkscope failed
to end shows up as a descendant and fails the test.
"""
import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile

import pytest

FORKSCOPE = os.environ["FORKSCOPE"]
HANG_GUARD = 300

PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

MINIMAL = "name: {name}\ntree:\n  name: root\n"


def descendants():
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
        procs[int(d)] = (int(rest[1]), rest[0])
    out, frontier = [], {os.getpid()}
    while frontier:
        nxt = {p for p, (pp, _) in procs.items() if pp in frontier}
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


@pytest.fixture
def tree():
    d = tempfile.mkdtemp(prefix="fs-walk-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        for root, dirs, _ in os.walk(d):
            for x in dirs:
                p = os.path.join(root, x)
                if not os.path.islink(p):
                    os.chmod(p, 0o755)
        shutil.rmtree(d)


def scenario(path, name):
    with open(path, "w") as f:
        f.write(MINIMAL.format(name=name))


def forkscope(args, **kw):
    return subprocess.run([FORKSCOPE] + args, capture_output=True, text=True,
                          timeout=HANG_GUARD, **kw)


def test_two_self_symlinks_do_not_loop(tree):
    scenario(os.path.join(tree, "a.yaml"), "a")
    os.symlink(".", os.path.join(tree, "x"))
    os.symlink(".", os.path.join(tree, "y"))
    r = forkscope(["scenarios", tree])
    assert r.returncode == 0, r.stderr
    assert [l.split()[0] for l in r.stdout.splitlines() if l.strip()] == ["a"]
    for link in ("x", "y"):
        assert (f"forkscope: warning: {tree}/{link}: skipped, the same directory as {tree}"
                in r.stderr), r.stderr


def test_parent_symlink_runs_each_scenario_once(tree):
    scenario(os.path.join(tree, "one.yaml"), "one")
    os.mkdir(os.path.join(tree, "sub"))
    os.symlink("..", os.path.join(tree, "sub", "up"))
    out = os.path.join(tree, "out")
    r = forkscope(["run", "--out", out, tree])
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(out, "result.json")) as f:
        cells = json.load(f)["scenarios"]
    assert [c["id"] for c in cells] == ["one"]
    assert "1 passed, 0 failed" in r.stdout


@pytest.mark.parametrize("as_argument", [False, True])
def test_fifo_named_yaml_is_refused(tree, as_argument):
    scenario(os.path.join(tree, "good.yaml"), "good")
    fifo = os.path.join(tree, "x.yaml")
    os.mkfifo(fifo)
    r = forkscope(["scenarios", fifo if as_argument else tree])
    assert r.returncode == 2
    assert (f"{fifo}: not a regular file (a FIFO); a scenario must be a regular file"
            in r.stderr), r.stderr


def drop_to_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def test_unreadable_subdirectory_is_a_warning(tree):
    scenario(os.path.join(tree, "a.yaml"), "a")
    locked = os.path.join(tree, "locked")
    os.mkdir(locked)
    scenario(os.path.join(locked, "b.yaml"), "b")
    os.chmod(os.path.join(tree, "a.yaml"), 0o644)
    os.chmod(locked, 0)
    # root reads a mode 000 directory anyway: run as nobody then
    pre = drop_to_nobody if os.geteuid() == 0 else None
    r = forkscope(["scenarios", tree], preexec_fn=pre)
    assert r.returncode == 0, r.stderr
    assert [l.split()[0] for l in r.stdout.splitlines() if l.strip()] == ["a"]
    assert (f"forkscope: warning: {locked}: cannot read directory (Permission denied); "
            "the scenarios in it are skipped" in r.stderr), r.stderr


def test_image_that_cannot_be_allocated_is_an_infra_error(tree):
    path = os.path.join(tree, "image.yaml")
    with open(path, "w") as f:
        f.write("name: image-too-big\nimage: 2GiB\ntree:\n  name: root\n")
    out = os.path.join(tree, "out")

    def small_address_space():
        # below the image, far above what forkscope itself needs
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    r = forkscope(["run", "--out", out, path], preexec_fn=small_address_space)
    assert r.returncode != 0, r.stdout
    with open(os.path.join(out, "result.json")) as f:
        cell = json.load(f)["scenarios"][0]
    assert not cell["passed"]
    assert cell["infra_error"].startswith(
        "malloc of the 2147483648-byte image failed with ENOMEM in root"), cell["infra_error"]
