"""A real DataLook server process for tests: started by scripts/serve.sh like `make run`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]


def free_port() -> int:
    """Ask the kernel for a free TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The server (as `make run` serves it) on its own instance folder; CLI helpers."""

    def __init__(self, instance: Path, workers: int = 2, extra_env: dict | None = None) -> None:
        self.instance = instance
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.event_url = f"{self.url}/event"
        self.env = {
            **os.environ,
            "DATALOOK_INSTANCE_PATH": str(instance),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": str(workers),
            "PUBLIC_URL": self.url,
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None
        self._site_counter = 0

    def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until it answers /healthz (a first start on a busy
        machine imports and migrates for a while); one that does not is stopped."""
        self.instance.mkdir(parents=True, exist_ok=True)
        self.log = open(self.instance / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(ROOT / "scripts" / "serve.sh")],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.read_log()[-2000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still booting
                time.sleep(0.1)
        self.stop()  # never leave a server running behind a failed start
        raise RuntimeError("server did not become healthy in time")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server gracefully (SIGTERM) and wait for it."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()

    def readiness(self) -> dict:
        """The body of /readyz."""
        return requests.get(f"{self.url}/readyz", timeout=5).json()

    def wait_for_fold(self, timeout: float = 60.0) -> dict:
        """Wait until the report fold beside the server has stamped its heartbeat (/readyz
        no longer reports it down); the /readyz body."""
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            body = self.readiness()
            if body["checks"].get("fold") not in ("down", None):
                return body
            time.sleep(0.2)
        raise RuntimeError(f"the fold process did not start in time: {body}")

    def read_log(self) -> str:
        """Return what the server has printed so far."""
        return (self.instance / "server.log").read_text(errors="replace")

    def cli(self, *args: str) -> str:
        """Run `flask <args>` against this server's database and return stdout."""
        result = subprocess.run(
            [*FLASK, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def cli_batch(self, *commands: list[str]) -> list[dict]:
        """Run several `flask` commands in one process (tests.cli_batch) against this
        server's database: each one's exit code, stdout and stderr."""
        result = subprocess.run(
            [sys.executable, "-m", "tests.cli_batch", json.dumps(list(commands))],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask commands {commands} failed: {result.stderr}")
        return json.loads(result.stdout.splitlines()[-1])

    def new_token(self, domain: str | None = None, name: str = "Test key") -> str:
        """Create a user, a site and a key through the CLI (one process); return the token.
        The user and the site may exist already."""
        if domain is None:
            self._site_counter += 1
            domain = f"site{self._site_counter}.example.com"
        email = f"owner@{domain}"
        *_, key = self.cli_batch(
            ["users", "create", email, "--password", "correct horse battery"],
            ["sites", "create", domain, "--owner", email],
            ["keys", "create", "--site", domain, "--name", name],
        )
        if key["code"] != 0:
            raise RuntimeError(f"flask keys create failed: {key['stderr']}")
        self.last_domain = domain
        return key["stdout"].strip()

    def stored_events(self, domain: str | None = None) -> list[dict]:
        """Return the stored events of a site, read back through `events export`."""
        out = self.cli("events", "export", "--site", domain or self.last_domain)
        return [json.loads(line) for line in out.splitlines() if line.strip()]
