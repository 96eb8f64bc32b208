"""scripts/system-deps.sh: what `make run`, `make test` and CI install, or the one command to
run. Driven with stand-in dpkg-query, id and apt-get first on PATH (nothing is installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "system-deps.sh"


def _stand_ins(tmp_path: Path, missing: set[str], uid: int) -> dict[str, str]:
    """A PATH whose dpkg-query reports `missing` as absent, id says `uid`, apt-get logs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    absent = " ".join(sorted(missing))
    (bin_dir / "dpkg-query").write_text(
        "#!/bin/sh\n"
        f"for p in {absent}; do\n"
        '  [ "$p" = "$3" ] && { echo "unknown ok not-installed"; exit 0; }\n'
        "done\n"
        'echo "install ok installed"\n'
    )
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "apt.log"}\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    # Only the stand-ins and this Python: no real tool on PATH can answer for a package.
    return {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}"}


def _run(env: dict[str, str], need: str) -> subprocess.CompletedProcess:
    """Run the script as `make` would."""
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), need], env=env, capture_output=True, text=True, timeout=60
    )


def test_nothing_missing_installs_nothing(tmp_path):
    env = _stand_ins(tmp_path, set(), uid=0)
    done = _run(env, "test")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "apt.log").exists()


def test_as_root_the_missing_packages_are_installed(tmp_path):
    env = _stand_ins(tmp_path, {"nginx", "redis-server"}, uid=0)
    done = _run(env, "test")
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "apt.log").read_text().splitlines()
    assert log[0] == "update -qq"
    assert "nginx" in log[1].split() and "redis-server" in log[1].split()


def test_without_root_it_stops_with_the_one_command_to_run(tmp_path):
    env = _stand_ins(tmp_path, {"nginx"}, uid=1000)
    done = _run(env, "run")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "datalook: missing system packages; run: sudo apt-get install -y nginx"
    )
    assert not (tmp_path / "apt.log").exists()


def test_make_run_does_not_ask_for_the_test_tools(tmp_path):
    env = _stand_ins(tmp_path, {"chromium", "elixir"}, uid=1000)
    assert _run(env, "run").returncode == 0
    assert _run(env, "test").returncode == 1


def test_make_bench_asks_for_the_load_generator_only(tmp_path):
    env = _stand_ins(tmp_path, {"wrk", "chromium"}, uid=0)
    assert _run(env, "bench").returncode == 0
    log = (tmp_path / "apt.log").read_text().splitlines()
    assert log[1].split()[-1] == "wrk" and "chromium" not in log[1].split()


@pytest.mark.parametrize("argument", ["", "deploy", "--help"])
def test_an_unknown_argument_is_refused(tmp_path, argument):
    done = subprocess.run(["bash", str(SCRIPT), argument], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
