"""pytest-forkscope: triage a test's process tree at its deadline, before
its fixtures tear the evidence down (docs/pytest.md)."""
import os
import re
import shutil
import signal
import threading
import time

import pytest

from . import procs, triage
from .watch import INTERRUPT_SIGNAL, Watch

WATCH_KEY = pytest.StashKey()
SETTINGS_KEY = pytest.StashKey()
_FAILED_KEY = pytest.StashKey()


class Settings:
    def __init__(self, config):
        self.config = config
        self.timeout = _float(config.getoption("forkscope_timeout"), config.getini("forkscope_timeout"),
                              "forkscope timeout")
        self.grace = _float(config.getoption("forkscope_grace"), config.getini("forkscope_grace"),
                            "forkscope grace")
        if self.grace is None:
            self.grace = 2.0
        self.probe = bool(config.getoption("forkscope_probe") or _true(config.getini("forkscope_probe")))
        explicit = config.getoption("forkscope_bin")
        if explicit and not os.access(explicit, os.X_OK):
            raise pytest.UsageError(f"--forkscope-bin: {explicit}: not an executable")
        self.binary = triage.find_forkscope(explicit)
        self.probe_lib = triage.find_probe(self.binary) if self.probe else None
        # pytest itself runs with the probe: every test's events are in its log
        self.session_events = triage.session_events()
        self.dir = config.getoption("forkscope_dir") or config.getini("forkscope_dir") or None
        self.session_enabled = bool(self.timeout) or self.probe
        keep = config.getoption("forkscope_leftovers") or config.getini("forkscope_leftovers") or "end"
        if keep not in ("end", "keep"):
            raise pytest.UsageError(f"--forkscope-leftovers: expected end or keep, not {keep!r}")
        self.end_leftovers = keep == "end"
        self._used = set()
        self._session_dir = None
        self.triaged = []  # (nodeid, verdict, run dir), filled from reports (xdist: on the controller)

    def base_dir(self):
        """--forkscope-dir, else one directory per session under
        $XDG_STATE_HOME/forkscope/pytest: evidence outlives pytest's basetemp
        (only the last three are kept). xdist workers share their session's."""
        if self.dir:
            return os.path.abspath(self.dir)
        if self._session_dir is None:
            state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
            run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
            name = f"xdist-{run[:12]}" if run else time.strftime("%Y%m%d-%H%M%S-") + str(os.getpid())
            self._session_dir = os.path.join(state, "forkscope", "pytest", name)
        return self._session_dir

    def run_dir_for(self, item):
        name = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", item.nodeid).strip("_")[:200] or "test"
        base = self.base_dir()
        path, n = os.path.join(base, name), 1
        while path in self._used or os.path.exists(path):
            n += 1
            path = os.path.join(base, f"{name}-{n}")
        self._used.add(path)
        return path


def _true(v):
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def _float(opt, ini, what):
    v = opt if opt is not None else (ini or None)
    if v is None or v == "":
        return None
    try:
        return float(v)
    except ValueError:
        raise pytest.UsageError(f"{what}: not a number of seconds: {v!r}")


def pytest_addoption(parser):
    g = parser.getgroup("forkscope", "forkscope: triage of hung process trees")
    g.addoption("--forkscope-timeout", dest="forkscope_timeout", metavar="S", default=None,
                help="deadline of each test in seconds: at it, triage the test's process tree, end the "
                     "processes it started (SIGINT first) and fail the test. 0: off")
    g.addoption("--forkscope-dir", dest="forkscope_dir", metavar="DIR", default=None,
                help="where the per-test run directories go (default: one directory per session "
                     "under $XDG_STATE_HOME/forkscope/pytest)")
    g.addoption("--forkscope-probe", dest="forkscope_probe", action="store_true", default=None,
                help="run the processes tests start with libforkscope-probe.so (events.ndjson per test)")
    g.addoption("--forkscope-grace", dest="forkscope_grace", metavar="S", default=None,
                help="seconds between SIGINT, SIGTERM and SIGKILL when ending a test's processes (2)")
    g.addoption("--forkscope-bin", dest="forkscope_bin", metavar="PATH", default=None,
                help="the forkscope binary (default: $FORKSCOPE, then forkscope on PATH)")
    g.addoption("--forkscope-leftovers", dest="forkscope_leftovers", choices=("end", "keep"), default=None,
                help="processes the tests started that still run when the session ends: end them "
                     "SIGINT first and list them (end, the default when forkscope is on), or keep them")
    parser.addini("forkscope_leftovers", "end or keep (see --forkscope-leftovers)")
    parser.addini("forkscope_timeout", "deadline of each test in seconds (see --forkscope-timeout)")
    parser.addini("forkscope_dir", "where the per-test run directories go")
    parser.addini("forkscope_probe", "run the processes tests start with the probe (true/false)")
    parser.addini("forkscope_grace", "seconds between the signals of the SIGINT-first ladder")


def pytest_configure(config):
    config.addinivalue_line("markers", "forkscope(timeout=S): this test's forkscope deadline in seconds "
                                       "(0: none); overrides --forkscope-timeout and the timeout marker")
    settings = Settings(config)
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(_Summary(settings), "forkscope-summary")
    if settings.session_enabled and not settings.binary:
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            "forkscope: no forkscope binary (FORKSCOPE, --forkscope-bin, PATH): deadlines end the test's "
            "processes but cannot triage them"), stacklevel=2)
    if settings.probe and not settings.probe_lib and not settings.session_events:
        raise pytest.UsageError("--forkscope-probe: libforkscope-probe.so not found (set FORKSCOPE_PROBE)")



def _marker_timeout(marker):
    if marker is None:
        return None
    v = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    return None if v is None else float(v)


def deadline_of(item, settings):
    """forkscope marker, then pytest-timeout's marker, then --forkscope-timeout
    (or its ini), then pytest-timeout's own --timeout when forkscope is on."""
    fs = item.get_closest_marker("forkscope")
    if fs is not None and _marker_timeout(fs) is not None:
        return _marker_timeout(fs)
    if fs is None and not settings.session_enabled:
        return None
    t = _marker_timeout(item.get_closest_marker("timeout"))
    if t is not None:
        return t
    if settings.timeout is not None:
        return settings.timeout
    return getattr(item.config, "_env_timeout", None)


def _on_interrupt_signal(signum, frame):
    w = _current.watch
    if w is not None and w.claim_interrupt(by_signal=True):
        __tracebackhide__ = True
        pytest.fail(w.message())


class _Current:
    watch = None


_current = _Current()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    settings = item.config.stash[SETTINGS_KEY]
    deadline = deadline_of(item, settings)
    if not deadline or deadline <= 0:
        deadline = None
    if deadline is None and not settings.probe:
        yield
        return
    w = Watch(item, deadline, settings, settings.run_dir_for)
    item.stash[WATCH_KEY] = w
    restore_env = None
    if settings.session_events and deadline is not None:
        path = settings.session_events
        w.session_events = (path, os.path.getsize(path) if os.path.exists(path) else 0)
    elif settings.probe:
        restore_env = _probe_env(w, settings)
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(INTERRUPT_SIGNAL, _on_interrupt_signal)
    _current.watch = w
    original_runtest = item.runtest
    item.runtest = _runtest_wrapper(w, original_runtest)
    if deadline is not None:
        w.start()
    try:
        yield
    finally:
        w.stop()
        _current.watch = None
        del item.runtest  # back to the class's method
        if old_handler is not None:
            signal.signal(INTERRUPT_SIGNAL, old_handler)
        if restore_env:
            restore_env()
        if w.run_dir and not w.fired and not item.stash.get(_FAILED_KEY, False):
            shutil.rmtree(w.run_dir, ignore_errors=True)


def _probe_env(w, settings):
    """Children the test starts (exec'ed, environment inherited) load the
    probe and append to this test's events.ndjson."""
    w.run_dir = settings.run_dir_for(w.item)
    os.makedirs(w.run_dir, exist_ok=True)
    w.events = os.path.join(w.run_dir, "events.ndjson")
    saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "FORKSCOPE_EVENTS")}
    old = saved["LD_PRELOAD"]
    os.environ["LD_PRELOAD"] = settings.probe_lib + (":" + old if old else "")
    os.environ["FORKSCOPE_EVENTS"] = w.events

    def restore():
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return restore


def _runtest_wrapper(w, original):
    def runtest():
        __tracebackhide__ = True
        try:
            original()
        except BaseException as e:
            # e.g. the assertion on the returncode of a child that was ended;
            # claimed before settle() so that no interrupt lands in it
            claimed = w.claim_interrupt()
            w.settle()
            if claimed:
                first = (str(e).splitlines() or [""])[0]
                first = first if len(first) <= 200 else first[:200] + "..."
                raise pytest.fail.Exception(
                    f"{w.message()}\nthen, once its processes were ended, the test raised "
                    f"{type(e).__name__}: {first}", pytrace=False) from None
            raise
        claimed = w.claim_interrupt()
        w.settle()
        # The test returned because its children were ended: it still ran
        # past its deadline. Raised here, in the call, so xfail sees it.
        if claimed:
            pytest.fail(w.message(), pytrace=False)
    return runtest


def _phase_wrapper(when):
    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def hook(item):
        w = item.stash.get(WATCH_KEY, None)
        if w is not None:
            w.set_phase(when)
        try:
            yield
        finally:
            if w is not None:
                w.settle()
                w.set_phase(None)
    return hook


pytest_runtest_setup = _phase_wrapper("setup")
pytest_runtest_call = _phase_wrapper("call")
pytest_runtest_teardown = _phase_wrapper("teardown")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    w = item.stash.get(WATCH_KEY, None)
    if w is not None and w.fired and w.fired_phase == call.when:
        w.settle()
        if not any(k == "forkscope_verdict" for k, _ in item.user_properties):
            verdict = w.triage.verdict_property() if w.triage else "none"
            item.user_properties.append(("forkscope_verdict", verdict))
            item.user_properties.append(("forkscope_run_dir", w.run_dir))
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item.stash[_FAILED_KEY] = True
    if w is None or not w.fired or w.fired_phase != call.when:
        return
    rep.sections.append(("forkscope", w.section()))
    if call.when != "call" and rep.passed:
        # setup or teardown came back once the children were ended, yet
        # ran past the deadline
        rep.outcome = "failed"
        rep.longrepr = w.message()
        item.stash[_FAILED_KEY] = True


class _Summary:
    """Tests that passed their deadline, from their reports: under xdist
    the controller gets them from the workers."""

    def __init__(self, settings):
        self.settings = settings

    def pytest_runtest_logreport(self, report):
        props = dict(p for p in report.user_properties if isinstance(p, tuple) and len(p) == 2)
        if report.when == "teardown" and "forkscope_verdict" in props:
            self.settings.triaged.append((report.nodeid, props["forkscope_verdict"],
                                          props.get("forkscope_run_dir")))

    def pytest_sessionstart(self, session):
        self.baseline = procs.descendants(os.getpid()) if self._ends_leftovers() else None
        self.leftovers = []

    def _ends_leftovers(self):
        config = self.settings.config
        # an xdist controller's children are its workers; each worker ends its own
        controller = config.getoption("dist", "no") not in ("no", None) and not hasattr(config, "workerinput")
        return self.settings.end_leftovers and self.settings.session_enabled and not controller

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        """Every fixture is torn down by now: what the session started and
        still runs would outlive pytest."""
        if self.baseline is None:
            return
        self.leftovers = procs.end_tree(os.getpid(), self.baseline, self.settings.grace)
        procs.reap_zombie_children(self.baseline)

    def pytest_terminal_summary(self, terminalreporter):
        if self.settings.triaged or self.leftovers:
            terminalreporter.section("forkscope")
        for nodeid, verdict, run_dir in self.settings.triaged:
            terminalreporter.write_line(f"{nodeid}: deadline passed; verdict {verdict}; {run_dir}")
        if self.leftovers:
            terminalreporter.write_line("processes the tests started still ran at the end of the session:")
            for sig, sent in self.leftovers:
                who = ", ".join(f"{name} ({pid})" for pid, name in sent)
                terminalreporter.write_line(f"  {sig} -> {who}")


def pytest_enter_pdb(config, pdb):
    """A person at the debugger is not a hang."""
    if _current.watch is not None:
        _current.watch.disarm()


# pytest-timeout: when forkscope is on for a test, the timeout (its marker or
# --timeout) is forkscope's deadline, and pytest-timeout arms no timer of its
# own (its documented hooks for alternative timeout implementations).
@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(item, settings):
    return True if _has_deadline(item) else None


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_cancel_timer(item):
    return True if _has_deadline(item) else None


def _has_deadline(item):
    w = item.stash.get(WATCH_KEY, None)
    return w is not None and w.deadline is not None
