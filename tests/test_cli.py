"""The command line as a user meets it (issues 12, 15, 17): per-command help,
global options before the verb, one error shape, honest labels, limits and
bad input said in words rather than misread as hangs.

Run by meson (tests/meson.build) with FORKSCOPE, FORKSCOPE_PROBE and
SOURCE_ROOT set. This process is a child subreaper; every test asserts that
nothing it started is left.
"""
import json
import os
import pathlib
import resource
import signal
import subprocess

import pytest

from proctree import become_subreaper, nothing_left_behind  # noqa: F401 (autouse fixture)

FORKSCOPE = os.environ.get("FORKSCOPE", "")
SRC = os.environ.get("SOURCE_ROOT", "")

pytestmark = pytest.mark.skipif(not FORKSCOPE, reason="FORKSCOPE is not set (run through meson test)")

become_subreaper()


def fs(*args, nofile=None, timeout=300, **kw):
    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return subprocess.run([FORKSCOPE, *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit if nofile else None, **kw)


@pytest.mark.parametrize("verb", ["run", "watch", "triage", "report", "scenarios"])
def test_each_command_has_its_own_help(verb):
    r = fs(verb, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"usage: forkscope {verb}"), r.stdout
    again = fs("help", verb)
    assert again.stdout == r.stdout


def test_global_usage_lists_every_option():
    r = fs("--help")
    for option in ("--linger", "--selfdump", "--junit", "--no-stacks", "--rules", "--probes", "--explain",
                   "--shard", "--matrix", "-p PID"):
        assert option in r.stdout, option


def test_global_options_before_the_verb():
    r = fs("--color=never", "scenarios", f"{SRC}/scenarios/basics")
    assert r.returncode == 0, r.stderr
    assert "one-child" in r.stdout


def test_errors_have_one_shape():
    r = fs("triage", "999999")
    assert r.returncode == 2
    assert r.stderr.startswith("forkscope triage: pid 999999: no such process"), r.stderr
    r = fs("triage", "--color=bogus", "1")
    assert r.returncode == 2 and r.stderr.startswith("forkscope triage: --color"), r.stderr
    r = fs("trage", "1")
    assert r.returncode == 2 and "did you mean 'triage'" in r.stderr
    r = fs("run", "/nonexistent/scenario.yaml")
    assert r.returncode == 2 and "/nonexistent/scenario.yaml" in r.stderr
    r = fs("run", "--bogus")
    assert r.returncode == 2 and r.stderr.startswith("forkscope run: "), r.stderr


def test_triage_takes_p_as_well_as_positional_pids():
    r = fs("triage", "-p", "999998", "-p", "999999")
    assert r.returncode == 2 and "none of the 2 pids" in r.stderr


@pytest.mark.parametrize("args,words", [
    (["--shard", "1/-1"], "--shard"),
    (["--shard", "0/3"], "--shard"),
    (["--repeat", "1000000000"], "too many"),
    (["--repeat", "-3"], "positive"),
])
def test_run_refuses_bad_numbers(args, words):
    r = fs("run", *args, f"{SRC}/scenarios/basics/one-child.yaml")
    assert r.returncode == 2
    assert words in r.stderr, r.stderr


def test_backend_never_mislabels_a_cell(tmp_path):
    out = tmp_path / "run"
    r = fs("run", "--backend", "mtf", "--out", str(out), f"{SRC}/scenarios/basics/one-child.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((out / "result.json").read_text())
    assert doc["scenarios"], doc
    for cell in doc["scenarios"]:
        assert cell["backend"] == "mtf"
        assert "backend=fork" not in cell["id"] and "backend=spawn" not in cell["id"], cell["id"]


def test_fd_limit_is_an_infra_error_not_a_hang(tmp_path):
    out = tmp_path / "run"
    r = fs("run", "--backend", "mtf", "--out", str(out), f"{SRC}/scenarios/basics/tree-2x3.yaml", nofile=16)
    doc = json.loads((out / "result.json").read_text())
    cell = doc["scenarios"][0]
    assert cell["outcome"] == "error", cell["outcome"]
    assert "EMFILE" in (cell["infra_error"] or ""), cell["infra_error"]
    assert "RLIMIT_NOFILE" in cell["infra_error"]
    # the limit is the cell's cause, said first; a tree that the refusal left
    # waiting (as under ASan, whose runtime holds more fds) may still carry
    # the triage's findings as consequences, never as the cell's outcome
    assert not cell["passed"]
    assert any("EMFILE" in m for m in cell["mismatches"]), cell["mismatches"]


def test_watch_says_why_it_cannot_start_under_a_low_fd_limit():
    r = fs("watch", "--", "echo", "hi", nofile=5)
    assert r.returncode == 125
    assert "Too many open files" in r.stderr and "RLIMIT_NOFILE" in r.stderr, r.stderr


def test_triage_from_missing_fifo_and_hostile_names(tmp_path):
    r = fs("triage", "--from", str(tmp_path / "missing.json"))
    assert r.returncode == 2
    assert "missing.json: No such file or directory" in r.stderr and ":-1:-1:" not in r.stderr, r.stderr
    fifo = tmp_path / "snap.json"
    os.mkfifo(fifo)
    r = fs("triage", "--from", str(fifo), timeout=30)
    assert r.returncode == 2 and "not a regular file" in r.stderr, r.stderr
    hostile = tmp_path / "bad\x1b[31m.json"
    hostile.write_text("{")
    r = fs("triage", "--from", str(hostile))
    assert r.returncode == 2 and "\x1b" not in r.stderr and "\\x1b" in r.stderr, r.stderr


def test_triage_from_names_a_bad_rules_file(tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps({"schema_version": 1, "processes": []}))
    rules = tmp_path / "bad.yaml"
    rules.write_text("rules:\n  - name: x\n    bogus: [\n")
    r = fs("triage", "--from", str(snap), "--rules", str(rules))
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr and "not a forkscope snapshot" not in r.stderr, r.stderr


def test_report_does_not_follow_links_out_of_the_run_dir(tmp_path):
    out = tmp_path / "run"
    r = fs("run", "--out", str(out), f"{SRC}/scenarios/basics/one-child.yaml", "--backend", "fork")
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "result.json").read_text())
    events = out / doc["scenarios"][0]["events_file"]
    secret = tmp_path / "secret"
    secret.write_text("hunter2 is the password\n")
    events.unlink()
    events.symlink_to(secret)
    r = fs("report", str(out))
    assert r.returncode == 0
    assert "hunter2" not in r.stderr and "hunter2" not in r.stdout
    assert "outside the run directory" in r.stderr, r.stderr


def test_runs_are_kept_under_the_state_dir_and_cleaned(tmp_path):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    dirs = []
    for _ in range(3):
        r = fs("watch", "--", "true", env=env)
        assert r.returncode == 0, r.stderr
        line = [l for l in r.stderr.splitlines() if "run directory" in l][-1]
        dirs.append(pathlib.Path(line.split("run directory ", 1)[1]))
    base = tmp_path / "state" / "forkscope" / "runs"
    assert all(d.parent == base and (d / "result.json").exists() for d in dirs), dirs
    (base / "not-a-run").mkdir()
    r = fs("clean", "--keep", "1", "--dry-run", env=env)
    assert r.returncode == 0 and all(d.exists() for d in dirs)
    r = fs("clean", "--keep", "1", env=env)
    assert r.returncode == 0, r.stderr
    left = sorted(p.name for p in base.iterdir())
    assert len(left) == 2 and "not-a-run" in left, left


def test_watch_says_when_the_probe_cannot_be_loaded():
    static = os.environ.get("STATIC_FIXTURE")
    if not static:
        pytest.skip("STATIC_FIXTURE is not set")
    r = fs("watch", "--", static)
    assert r.returncode == 0, r.stderr
    assert "static hello" in r.stdout
    assert "statically linked" in r.stderr, r.stderr
    assert "probe was not loaded into the command" in r.stderr, r.stderr


def test_a_timeout_without_a_knot_says_so_and_shows_the_waits(tmp_path):
    out = tmp_path / "w"
    r = fs("watch", "--timeout", "1s", "--out", str(out), "--", "sleep", "60")
    assert r.returncode == 124, r.stderr
    doc = json.loads((out / "result.json").read_text())
    # a hang is a verdict of a hang class: none here, and the counts agree
    assert doc["found_hangs"] == 0 and doc["hang_unexplained"] is True
    assert "Found 1 hang" not in r.stderr
    assert "timed out with no hang verdict" in r.stderr.lower()
    assert any(p["comm"] == "sleep" for p in doc["waits"]), doc["waits"]
    assert "clock_nanosleep" in r.stderr
