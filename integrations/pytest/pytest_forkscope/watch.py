"""One test's deadline: a watchdog thread that, when the deadline passes
while the test still runs, triages the live tree, ends the processes the
test started (SIGINT first) and interrupts the test's thread."""
import ctypes
import os
import signal
import sys
import threading
import time

from . import procs, triage

# The signal that interrupts the test's thread: a real-time one, unlikely to
# be used by the code under test (SIGRTMIN+3 is the probe's self-dump default).
INTERRUPT_SIGNAL = triage.WAKE_SIGNAL
# Interrupt attempts before the last resort (os._exit): a thread blocked in C
# code that retries on EINTR never returns to Python.
INTERRUPT_TRIES = 5


def _name_thread(name):
    try:
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class DeadlineExceeded(BaseException):
    """Raised in a test thread that cannot be signalled (not the main one)."""


def _ladder_text(steps):
    if not steps:
        return "No process started by the test was left to end."
    lines = ["Ended the processes the test started (SIGINT first):"]
    for sig, sent in steps:
        who = ", ".join(f"{name} ({pid})" for pid, name in sent)
        lines.append(f"  {sig} -> {who}")
    return "\n".join(lines)


class Watch:
    def __init__(self, item, deadline, settings, run_dir_for):
        self.item = item
        self.deadline = deadline
        self.settings = settings
        self._run_dir_for = run_dir_for
        self.run_dir = None
        self.events = None
        self.session_events = None  # (path, offset at the start of the test)
        self.phase = None  # "setup", "call", "teardown" or None between them
        self.last_phase = None
        self.fired_phase = None
        self.fired = False
        self.delivered = False
        self.interrupt_requested = False
        self.triage = None
        self.steps = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._left_phase = threading.Event()
        self._thread = None
        self._sleeper = triage.Sleeper()
        self._root = os.getpid()
        self._main = threading.main_thread().ident
        self._test_thread = threading.get_ident()
        self._env = dict(os.environ)
        table = procs.proc_table()
        self._baseline = procs.descendants(self._root, table)
        self._baseline_all = procs.descendants(self._root, table, live_only=False)

    # ---- main thread side ----

    def start(self):
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="forkscope-watchdog", daemon=True)
        self._thread.start()

    def stop(self):
        """The test is over: disarm, and wait for a fired watchdog to finish."""
        self._stop.set()
        self._sleeper.post()  # a watchdog whose runner died waits there
        if self._thread:
            self._thread.join()
        if self.fired:
            self._reap_zombies()

    def disarm(self):
        """No deadline any more (the debugger was entered); unless it already
        fired, the watchdog does nothing."""
        self._stop.set()

    def settle(self):
        """Block until a fired watchdog has finished triage and the ladder,
        so nothing (teardown, the next phase) runs before the evidence is
        taken."""
        if self.fired:
            # bounded: a runner SIGKILLed before it said it was done never
            # wakes the watchdog (stop() releases it)
            self._done.wait(triage.TRIAGE_BOUND_S + 60)

    def set_phase(self, phase):
        with self._lock:
            if phase:
                self.last_phase = phase
            elif self.fired:
                self._left_phase.set()
            self.phase = phase

    def claim_interrupt(self, by_signal=False):
        """True once, for whoever fails the test for its deadline: the
        signal handler (only once the watchdog asks: the same signal wakes
        the watchdog itself) or the wrapper around the test function."""
        with self._lock:
            if not self.fired or self.delivered or self.phase != self.fired_phase:
                return False
            if by_signal and not self.interrupt_requested:
                return False
            self.delivered = True
            self._left_phase.set()
            return True

    def message(self):
        classes = self.triage.classes if self.triage and not self.triage.error else []
        what = ", ".join(classes) if classes else (
            "triage did not run" if self.triage and self.triage.error else "no verdict")
        return (f"forkscope: deadline of {self.deadline:g}s passed during {self.fired_phase} "
                f"({what}); run dir {self.run_dir}")

    def section(self):
        parts = [f"Deadline {self.deadline:g}s passed during {self.fired_phase}; "
                 f"triage of pid {self._root} and its descendants.",
                 f"Run directory: {self.run_dir}"]
        if self.triage:
            if self.triage.with_events:
                parts.append("Verdicts use the probe events (events.ndjson).")
            parts.append(triage.shorten_stacks(self.triage.text()))
        parts.append(_ladder_text(self.steps))
        return "\n\n".join(parts)

    # ---- watchdog thread ----

    def _run(self):
        _name_thread(b"forkscope-wd")  # how it shows in the triage's stacks
        if self._stop.wait(self.deadline):
            return
        with self._lock:
            if self._stop.is_set():
                return
            self.fired = True
            # between two phases: the one that just ended (its report may
            # not be made yet)
            self.fired_phase = self.phase or self.last_phase or "setup"
        try:
            self._on_deadline()
        finally:
            self._done.set()
        self._interrupt()

    def _on_deadline(self):
        self.run_dir = self.run_dir or self._run_dir_for(self.item)
        os.makedirs(self.run_dir, exist_ok=True)
        if self.session_events:
            try:
                self.events = triage.copy_events_since(*self.session_events,
                                                       os.path.join(self.run_dir, "events.ndjson"))
            except OSError:
                self.events = None
        try:
            self.triage = triage.run(self.settings.binary, self._root, self.run_dir, self._env,
                                     self._sleeper, self.events)
        except Exception as e:  # the processes must still be ended and the test failed
            self.triage = triage.Triage()
            self.triage.error = f"{type(e).__name__}: {e}"
        self.steps = procs.end_tree(self._root, self._baseline, self.settings.grace)
        with open(os.path.join(self.run_dir, "teardown.txt"), "w", encoding="utf-8") as f:
            f.write(_ladder_text(self.steps) + "\n")

    def _interrupt(self):
        """The test's thread may move on once its children died: give it the
        grace to leave the phase by itself (it then fails with the deadline
        message where it returned); if it does not, interrupt it."""
        self._left_phase.wait(self.settings.grace)
        for _ in range(INTERRUPT_TRIES):
            with self._lock:
                if self.delivered or self.phase != self.fired_phase or self._stop.is_set():
                    return
                self.interrupt_requested = True
            if self._test_thread == self._main:
                signal.pthread_kill(self._main, INTERRUPT_SIGNAL)
            else:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._test_thread),
                                                           ctypes.py_object(DeadlineExceeded))
            if self._stop.wait(self.settings.grace):
                return
        self._last_resort()

    def _last_resort(self):
        """The test's thread never came back (blocked in C code that ignores
        EINTR): say why on stderr and end this process, as pytest-timeout's
        thread method does; pytest-xdist replaces a worker that died. The
        run directory keeps the evidence either way."""
        with self._lock:
            if self.delivered or self.phase != self.fired_phase or self._stop.is_set():
                return
        try:
            captured = ("", "")
            capman = self.item.config.pluginmanager.getplugin("capturemanager")
            if capman is not None:
                # fd 1 and 2 are pytest's capture files: give them back
                capman.suspend_global_capture(in_=True)
                captured = capman.read_global_capture()
            out = sys.stderr
            bar = "+" * 20
            for name, text in zip(("stdout", "stderr"), captured):
                if text:
                    out.write(f"\n{bar} captured {name} of {self.item.nodeid} {bar}\n{text}")
            out.write(f"\n{bar} forkscope: {self.item.nodeid} {bar}\n")
            out.write(self.message() + "\n\n" + self.section() + "\n")
            out.write("forkscope: the test's thread does not respond to interruption "
                      "(blocked in code that retries on EINTR); ending this process.\n")
            out.flush()
        finally:
            os._exit(1)

    def _reap_zombies(self):
        """Children of ours that the test started and left as zombies (their
        Popen was interrupted before its wait)."""
        procs.reap_zombie_children(self._baseline_all)
