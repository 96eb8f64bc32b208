"""The servers a benchmark measures: started as `make run` starts them (or with a chosen
gunicorn worker class), their processes' CPU time and memory, and the flask CLI against them."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """Ask the kernel for a free TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (index 0 is the state)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (the server's workers and the fold's supervisor; not the
    nginx front beside them)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat_fields(int(entry))
                if int(fields[1]) == pid and not _is_front(int(entry)):
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    return found


def _all_children(pid: int) -> list[int]:
    """PIDs whose parent is `pid`, whatever they are."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat_fields(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    return found


def _is_front(pid: int) -> bool:
    """Whether a process is the nginx front that scripts/front.sh starts."""
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip() == "nginx"
    except OSError:
        return False  # exited while we looked


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each live process, in seconds."""
    times = {}
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return times


def peak_rss_kib(pids: list[int]) -> int:
    """Sum of VmHWM (peak resident set) over the processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


@dataclass
class Server:
    """A server's master (plus workers) started for the benchmark."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    ready_check: tuple[str, str, bytes | None]  # method, path, body
    cpus: str | None = None  # taskset's CPU list for the server and all it starts
    process: subprocess.Popen | None = None
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, workers: int, timeout: float = 60.0) -> None:
        """Start the server; return when it answers and all its workers are up."""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        pinned = ["taskset", "-c", self.cpus] if self.cpus else []  # taskset execs the command
        self.process = subprocess.Popen(
            [*pinned, *self.command],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} server exited during start-up:\n{tail}")
            if self._answers() and len(children(self.process.pid)) >= workers:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} server did not become ready in {timeout:.0f} s")

    def _answers(self) -> bool:
        """Whether the ready check request gets a 2xx answer."""
        method, path, body = self.ready_check
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            return 200 <= conn.getresponse().status < 300
        except OSError:
            return False
        finally:
            conn.close()

    def pids(self) -> list[int]:
        """The master and its workers."""
        assert self.process is not None
        return [self.process.pid, *children(self.process.pid)]

    def front_pids(self) -> list[int]:
        """The nginx front's master and worker (children of the server's master)."""
        assert self.process is not None
        masters = [pid for pid in _all_children(self.process.pid) if _is_front(pid)]
        return [pid for master in masters for pid in (master, *_all_children(master))]

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM the master (workers finish and flush), wait; return the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log is not None:
            self._log.close()
        return self.process.returncode


def server_env(workers: int | None) -> dict[str, str]:
    """The environment a benchmark's server starts with: this one, minus the settings that
    would point it at an operator's database or rate-limit storage, on 127.0.0.1."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "RATELIMIT_STORAGE_URI", "DATALOOK_ACCESS_LOG")
    }
    env["HOST"] = "127.0.0.1"
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    return env


# The stacks a benchmark compares, each behind the same nginx front (scripts/front.sh), so
# that every side of a ratio pays for it: "served" is exactly what `make run` serves
# (scripts/serve.sh: granian's workers through server.py, and the fold process beside them);
# "granian" is server.py alone with the given app; "gunicorn" is the conventional
# deployment, gunicorn's sync workers with gunicorn.conf.py.
STACKS = ("served", "granian", "gunicorn")


def server_command(app: str, worker_class: str | None, stack: str = "served") -> list[str]:
    """How to start a server: serve.sh as `make run` does (DataLook, stack "served"), or
    `app` behind the front on granian (server.py) or gunicorn (with `-k worker_class`)."""
    if app == "wsgi:app" and stack == "served" and worker_class is None:
        return [str(ROOT / "scripts" / "serve.sh")]
    front = str(ROOT / "scripts" / "front.sh")
    if stack == "granian" or (stack == "served" and worker_class is None):
        return [front, sys.executable, str(ROOT / "server.py"), "--app", app]
    command = [front, str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"]
    if worker_class:
        command += ["-k", worker_class]
    return [*command, app]


def flask_cli(env: dict[str, str], *args: str) -> str:
    """Run `python -m flask --app wsgi ARGS` against the benchmark database; return stdout."""
    result = subprocess.run(
        [*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def raised_key(env: dict[str, str], domain: str, name: str) -> str:
    """Create a key through the CLI with its limit raised so far that 429 never interferes;
    return its token."""
    from datalook.keys import tokens

    token = flask_cli(env, "keys", "create", "--site", domain, "--name", name).strip()
    flask_cli(env, "keys", "set-limit", tokens.parse(token).key_id, "100000000 per 10 seconds")
    return token
