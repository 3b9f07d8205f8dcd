"""Runs one command for the watchdog thread of a test process, then wakes
that thread with a thread-directed signal until it acknowledges.

Why not a plain subprocess.run: the watchdog thread would wait for its
child (triage) in wait4 or poll, which forkscope counts as "able to act",
so the test process would look live and no knot would be found. It waits
in sem_wait(3) (triage.Sleeper); this interrupts it.

usage: _runner.py DONE ACK_FD PID TID SIGNAL BOUND_S OUT ERR -- CMD...
"""
import ctypes
import os
import select
import subprocess
import sys


def main(argv):
    done, ack_fd, pid, tid, sig, bound, out, err = argv[:8]
    cmd = argv[9:]
    status = "error"
    try:
        with open(out, "wb") as o, open(err, "wb") as e:
            status = str(subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                        timeout=float(bound)).returncode)
    except subprocess.TimeoutExpired:
        status = "timeout"
    except OSError as ex:
        status = f"error {ex}"
    finally:
        with open(done + ".tmp", "w") as f:
            f.write(status + "\n")
        os.replace(done + ".tmp", done)
    libc = ctypes.CDLL(None, use_errno=True)
    poller = select.poll()
    poller.register(int(ack_fd), select.POLLIN)
    # Re-sent until the waiter closes its end: a signal that lands before it
    # enters sem_wait would otherwise be lost.
    for _ in range(12000):
        if libc.tgkill(int(pid), int(tid), int(sig)) != 0:
            return 0  # the thread is gone
        if poller.poll(50):
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
