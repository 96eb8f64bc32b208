"""Keep one child process running: the report fold beside the server.

scripts/serve.sh starts `flask analytics supervise -- <the fold command>` beside the server
(under `setpriv --pdeathsig TERM`, so that it stops with the server). The supervisor starts
the command and, whenever it exits (a crash, a kill -9, the OOM killer), logs one line with
its exit status and starts it again after a back-off: 1 s, doubling up to 30 s, back to
1 s once a run lasted STABLE_S. The child gets SIGTERM when the supervisor dies, however
it dies (PR_SET_PDEATHSIG), and is stopped (SIGTERM, then SIGKILL) when the supervisor is
asked to stop. No Flask here.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STABLE_S = 60.0  # a run this long resets the back-off
STOP_GRACE_S = 10.0  # from SIGTERM to SIGKILL when stopping the child
_PR_SET_PDEATHSIG = 1


class Backoff:
    """The delays between restarts: `first` doubling up to `most`, back to `first` after
    a run of at least `stable` seconds."""

    def __init__(
        self, first: float = FIRST_DELAY_S, most: float = MAX_DELAY_S, stable: float = STABLE_S
    ) -> None:
        self.first = first
        self.most = most
        self.stable = stable
        self.next = first

    def after_run(self, ran_s: float) -> float:
        """The delay before the next start, after a run of `ran_s` seconds."""
        if ran_s >= self.stable:
            self.next = self.first
        delay = self.next
        self.next = min(self.next * 2, self.most)
        return delay


def exit_status(code: int) -> str:
    """A child's exit as people read it: "status 3", "signal 9 (SIGKILL)"."""
    if code >= 0:
        return f"status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
    return f"signal {-code} ({name})"


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM when its parent (the supervisor) dies (on
    Linux; `setpriv --pdeathsig TERM` does the same for the supervisor in serve.sh)."""
    # Looked up before the fork: the child only makes the call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def apply() -> None:
        """Ask the kernel for SIGTERM at the parent's death; exit should it be gone."""
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return apply


class Supervisor:
    """Runs `command` until stopped, restarting it whenever it exits (``run``)."""

    def __init__(self, command: Sequence[str], name: str, backoff: Backoff | None = None):
        self.command = list(command)
        self.name = name
        self.backoff = backoff or Backoff()
        self.child: subprocess.Popen | None = None
        self.restarts = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop supervising: the child is asked to stop (SIGTERM) and is not restarted."""
        self._stop.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()

    def _start(self) -> subprocess.Popen:
        """Start the command (it dies with this process)."""
        # The operator's own command (serve.sh's), never input from a request.
        return subprocess.Popen(  # noqa: S603
            self.command, preexec_fn=_die_with_parent(os.getpid())
        )

    def run(self) -> None:
        """Start the command, wait for it, log its exit and start it again after the
        back-off, until ``stop``; then stop the child."""
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self.child = self._start()
                if self._stop.is_set():  # asked to stop while it started
                    break
                log.info("%s started (pid %d)", self.name, self.child.pid)
                code = self.child.wait()
                if self._stop.is_set():
                    break
                delay = self.backoff.after_run(time.monotonic() - started)
                log.warning(
                    "%s (pid %d) exited with %s; restarting in %g s",
                    self.name,
                    self.child.pid,
                    exit_status(code),
                    delay,
                )
                self.restarts += 1
                if self._stop.wait(delay):
                    break
        finally:
            self._end_child()

    def _end_child(self) -> None:
        """Stop the child if it still runs: SIGTERM, then SIGKILL after STOP_GRACE_S."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_until_signalled(supervisor: Supervisor) -> None:
    """Run the supervisor in this (main) thread; SIGTERM and SIGINT stop it."""

    def on_signal(_signum, _frame) -> None:
        """Stop supervising (the child is stopped too)."""
        supervisor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.run()
