"""The floors of the flood scenario (bench/flood.py): the same flood, answered for nothing.

A flood at the highest rate its client can reach costs the machine something whatever the
app does: the client's own CPU, nginx's, and, for an answer that comes from the app's
server, gunicorn's sync worker reading and answering each request. Two servers answer every
request with a fixed 429 in the envelope, so that the flood scenario can measure what is
left of the valid key's throughput when refusing costs the app nothing:

* `NginxFloor`: nginx alone on a port of its own (`return 429`; nothing reaches Python);
* `app`: a WSGI app that answers 429 without reading anything, served exactly as DataLook
  is (scripts/front.sh: the same nginx front, the same gunicorn configuration).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

BODY = b'{"error":{"code":"rate_limited","message":"Too many requests."}}\n'
HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(BODY))),
    ("Retry-After", "10"),
]


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """Answer 429 to everything, unread; 200 to GET /healthz (the benchmark's ready check)."""
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Length", "0")])
        return []
    start_response("429 TOO MANY REQUESTS", HEADERS)
    return [BODY]


# As deploy/nginx.conf: one worker process, the same body limits; every request gets 429.
_CONF = """worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr warn;
{user_line}
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    client_max_body_size 1m;
    client_body_buffer_size 1m;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type application/json;
            add_header Retry-After 10 always;
            return 429 '{body}';
        }}
    }}
}}
"""


class NginxFloor:
    """nginx on its own port, answering every request 429 (no upstream, no Python)."""

    def __init__(self, folder: Path, port: int) -> None:
        """Write the configuration into `folder`; `start` runs it on `port`."""
        self.folder = folder
        self.port = port
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        # As root, nginx would switch its worker to "nobody"; keep the invoking user.
        user_line = "user root;" if os.getuid() == 0 else ""
        (folder / "nginx.conf").write_text(
            _CONF.format(folder=folder, port=port, user_line=user_line, body=BODY.decode().strip())
        )

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start nginx in the foreground; return once it has written its pid file."""
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        conf = self.folder / "nginx.conf"
        self.process = subprocess.Popen(
            [binary, "-p", str(self.folder), "-c", str(conf), "-g", "daemon off;"],
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.folder / "nginx.pid").exists():
                return
            if self.process.poll() is not None:
                raise RuntimeError("the nginx floor could not start (see above)")
            time.sleep(0.05)
        raise RuntimeError(f"the nginx floor did not start in {timeout:.0f} s")

    def stop(self) -> None:
        """Stop nginx (its master stops its worker)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
