"""wrk: running it with a Lua script of bench/, reading its figures, and the body it posts."""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess

from bench.servers import BENCH

INSTALL_WRK = """wrk is not installed; the benchmark drives the server with it.
Install it with:  sudo apt-get install wrk   (Debian/Ubuntu; macOS: brew install wrk)"""


def example_event() -> dict:
    """The example event of the docs page (the same object the snippets send)."""
    from datalook.snippets.render import EXAMPLE_EVENT

    return dict(EXAMPLE_EVENT)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    """'1.23ms' / '850.00us' / '1.02s' in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """Requests/s, latency percentiles and non-2xx count from wrk --latency output."""
    figures: dict = {}
    match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    figures["requests_per_s"] = float(match.group(1)) if match else 0.0
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE)
        figures[f"p{pct}_ms"] = _ms(match.group(1)) if match else None
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    figures["non_2xx"] = int(match.group(1)) if match else 0
    match = re.search(r"^BENCH_JSON (\{.*\})$", output, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no BENCH_JSON summary:\n{output[-2000:]}")
    figures["counted"] = json.loads(match.group(1))
    return figures


def run_wrk(
    url: str, script: str, script_args: list[str], options: argparse.Namespace, seconds: float
) -> tuple[dict, str]:
    """Run wrk once; return the parsed figures and its raw output."""
    command = [
        "wrk",
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / script),
        url,
        "--",
        *script_args,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    figures = parse_wrk(result.stdout)
    figures["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return figures, result.stdout


def warm_up(url: str, options: argparse.Namespace, script_args: list[str]) -> None:
    """Two seconds of the measured POSTs, so that every worker has booted and has served
    them (connections opened, statements compiled) before anything is measured."""
    subprocess.run(
        [
            "wrk",
            f"-t{options.threads}",
            f"-c{options.connections}",
            "-d2s",
            "-s",
            str(BENCH / "post.lua"),
            url,
            "--",
            *script_args,
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
