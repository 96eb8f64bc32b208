"""Slow-client scenario: `python -m bench.slow_clients`. A benchmark, not a test.

Starts DataLook as `make run` does (scripts/serve.sh: nginx in front, gunicorn's sync
workers behind it), then measures the normal /event load (wrk, as bench.run's scenario 2)
twice: alone, and with 100 slow clients connected beside it, each sending an event body at
one byte per second, one of them announcing a Content-Length larger than the body it sends.
Meanwhile a prober sends one valid event at a time and records how long each took. Prints a
table and writes bench/results/slow_clients.json. Exit status 0 when every probe answered
204 within the target (1 s), 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.servers import BENCH, Server, flask_cli, free_port, raised_key, server_command
from bench.wrk import example_event, run_wrk, warm_up

RESULTS = BENCH / "results" / "slow_clients.json"
TARGET_PROBE_S = 1.0


class SlowClients:
    """Connections that send a valid event body one byte per interval, on their own thread.

    The last one is a liar: it announces more bytes than it sends and then goes quiet, like a
    client whose Content-Length is wrong; `liar_answer` reads what the server said to it.
    """

    def __init__(self, host: str, port: int, count: int = 100, interval: float = 1.0) -> None:
        self.host, self.port, self.count, self.interval = host, port, count, interval
        self.body = json.dumps(example_event()).encode()
        self.sockets: list[socket.socket] = []
        self.sent: list[int] = []
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, name="slow-clients", daemon=True)

    def _request_head(self, length: int) -> bytes:
        """The request line and headers of one slow POST /event."""
        return (
            f"POST /event HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nAuthorization: Bearer dl_live_slow_client\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()

    def start(self) -> None:
        """Connect every client, send its headers (and the liar's short body), start dripping."""
        for index in range(self.count):
            sock = socket.create_connection((self.host, self.port), timeout=10)
            liar = index == self.count - 1
            if liar:
                sock.sendall(self._request_head(len(self.body) + 1000) + self.body)
            else:
                sock.sendall(self._request_head(len(self.body)) + self.body[:1])
            self.sockets.append(sock)
            self.sent.append(len(self.body) if liar else 1)
        self._thread.start()

    def _drip(self) -> None:
        """Every interval, one more byte on each honest connection (never the last one)."""
        while not self._stop.wait(self.interval):
            for index, sock in enumerate(self.sockets[:-1]):
                if self.sent[index] >= len(self.body) - 1 or sock.fileno() < 0:
                    continue
                try:
                    sock.send(self.body[self.sent[index] : self.sent[index] + 1])
                    self.sent[index] += 1
                except OSError:
                    self.closed_by_server += 1
                    sock.close()

    def liar_answer(self, timeout: float) -> tuple[str, float]:
        """What the server did to the liar (a status line, "closed by the server" or "no
        answer"), and when (seconds from this call)."""
        started = time.monotonic()
        liar = self.sockets[-1]
        liar.settimeout(timeout)
        try:
            data = liar.recv(200)
        except TimeoutError:
            return "no answer", time.monotonic() - started
        except OSError:  # reset by the server
            data = b""
        first = data.split(b"\r\n", 1)[0].decode(errors="replace")
        # nginx closes a connection whose body stopped coming without writing a 408.
        return first or "closed by the server", time.monotonic() - started

    def still_open(self) -> int:
        """How many honest connections the server has not closed (checked without blocking)."""
        selector = selectors.DefaultSelector()
        for sock in self.sockets[:-1]:
            if sock.fileno() >= 0:
                selector.register(sock, selectors.EVENT_READ)
        # Readable means the server answered or closed: a slow client was dropped.
        ready = {key.fileobj for key, _ in selector.select(timeout=0)}
        selector.close()
        return sum(1 for sock in self.sockets[:-1] if sock.fileno() >= 0 and sock not in ready)

    def stop(self) -> None:
        """Stop dripping and close every connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def probe(host: str, port: int, token: str, timeout: float) -> tuple[int, float]:
    """Send one valid event on a new connection; return its status (0: no answer) and time."""
    body = json.dumps(example_event())
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/event", body=body, headers=headers)
        status = conn.getresponse().status
    except OSError:
        status = 0
    finally:
        conn.close()
    return status, time.monotonic() - started


class Prober:
    """Sends one valid event after another on its own thread, recording each answer."""

    def __init__(self, host: str, port: int, token: str, pause: float = 0.2) -> None:
        self.args = (host, port, token)
        self.pause = pause
        self.answers: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def _run(self) -> None:
        """Probe until stopped (10 s per probe at most)."""
        while not self._stop.is_set():
            self.answers.append(probe(*self.args, timeout=10))
            self._stop.wait(self.pause)

    def start(self) -> None:
        """Start probing."""
        self._thread.start()

    def stop(self) -> list[tuple[int, float]]:
        """Stop probing; return (status, seconds) per probe."""
        self._stop.set()
        self._thread.join(timeout=15)
        return self.answers


def summary(answers: list[tuple[int, float]]) -> dict:
    """Probe count, worst and median time, and whether each was a 204 within the target."""
    times = sorted(seconds for _, seconds in answers)
    return {
        "probes": len(answers),
        "not_204": sum(1 for status, _ in answers if status != 204),
        "median_ms": round(times[len(times) // 2] * 1000, 1) if times else None,
        "max_ms": round(times[-1] * 1000, 1) if times else None,
        "pass": bool(answers)
        and all(status == 204 and s <= TARGET_PROBE_S for status, s in answers),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--slow", type=int, default=100, help="slow connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    return parser.parse_args(argv)


def phase(name: str, server: Server, token: str, body: Path, options) -> dict:
    """Run the normal load with the prober beside it; return wrk's figures and the probes'."""
    prober = Prober("127.0.0.1", server.port, token)
    prober.start()
    figures, _ = run_wrk(
        server.url + "/event", "post.lua", [str(body), token], options, options.duration
    )
    answers = prober.stop()
    result = {
        "requests_per_s": figures["requests_per_s"],
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "answers": figures["counted"],
        "probe": summary(answers),
    }
    print(
        f"  {name:<34} {result['requests_per_s']:>9.0f} req/s  p50 {result['p50_ms']:.1f} ms"
        f"  p99 {result['p99_ms']:.1f} ms  probes {result['probe']['probes']}"
        f" (max {result['probe']['max_ms']} ms, not 204: {result['probe']['not_204']})"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Run both phases and report."""
    options = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="datalook-slow-") as tmp:
        tmpdir = Path(tmp)
        instance = tmpdir / "instance"
        instance.mkdir()
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "DATALOOK_INSTANCE_PATH": str(instance),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        body = tmpdir / "event.json"
        body.write_text(json.dumps(example_event()))
        server = Server(
            "datalook",
            server_command("wsgi:app", None),
            env,
            port,
            tmpdir / "datalook.log",
            ("GET", "/healthz", None),
        )
        report: dict = {"slow_connections": options.slow, "target_probe_s": TARGET_PROBE_S}
        try:
            from datalook.config import gunicorn_settings

            server.start(gunicorn_settings(env)["workers"])
            flask_cli(env, "users", "create", "slow@example.com", "--password", "bench pw 1234")
            flask_cli(env, "sites", "create", "slow.bench.example", "--owner", "slow@example.com")
            token = raised_key(env, "slow.bench.example", "Raised")
            warm_up(server.url + "/event", options, [str(body), token])
            print(f"Normal load (wrk -t{options.threads} -c{options.connections}) and a prober:")
            report["alone"] = phase("alone", server, token, body, options)
            slow = SlowClients("127.0.0.1", port, options.slow)
            slow.start()
            try:
                time.sleep(1.0)
                report["with_slow_clients"] = phase(
                    f"beside {options.slow} slow clients", server, token, body, options
                )
                report["slow_clients_still_connected"] = slow.still_open()
                status, seconds = slow.liar_answer(timeout=30)
                report["short_body_answer"] = {"status_line": status, "after_s": round(seconds, 1)}
            finally:
                slow.stop()
        finally:
            server.stop()
    report["pass"] = report.get("with_slow_clients", {}).get("probe", {}).get("pass", False)
    print(
        f"  slow clients still connected at the end: {report.get('slow_clients_still_connected')}"
        f"; the short body got {report.get('short_body_answer')}"
    )
    print(f"Every probe a 204 within {TARGET_PROBE_S} s beside the slow clients: {report['pass']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
