"""The command line, run as a real process from a shell without the server's environment:
it reads the settings `make run` wrote (instance/datalook.env), says in one line what to run
when the database is not set up (and never creates one), and prints snippets that point at
the served URL."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from datalook.cli.demo import _folded_in_words
from datalook.config import SHARED_SETTINGS, read_settings_file, served_url
from tests.live import FLASK, ROOT, LiveServer

# The server's settings a shell that did not start it lacks.
SERVER_ONLY = ("DATABASE_URL", "PUBLIC_URL", "HOST", "PORT", "SECRET_KEY")


def _shell_env(instance: Path, **extra: str) -> dict[str, str]:
    """A shell's environment: none of the server's settings, the instance folder given."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ONLY}
    return {**env, "DATALOOK_INSTANCE_PATH": str(instance), **extra}


def _flask(instance: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """`flask --app wsgi <args>` as a separate process, from the repository root."""
    return subprocess.run(
        [*FLASK, *args],
        cwd=ROOT,
        env=_shell_env(instance, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["sites", "snippet", "example.com"],
        ["demo", "seed", "--site", "example.com", "--events", "10"],
    ],
)
def test_without_a_database_one_line_says_what_to_run_and_nothing_is_created(tmp_path, args):
    instance = tmp_path / "instance"
    result = _flask(instance, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: the database is not set up: there is no database file")
    assert "make run" in lines[0] and "flask --app wsgi db upgrade" in lines[0]
    assert not (instance / "datalook.db").exists()  # never created empty


def test_an_empty_database_file_is_not_set_up_either(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "datalook.db").write_bytes(b"")
    result = _flask(instance, "sites", "snippet", "example.com")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "db upgrade" in result.stderr and "Traceback" not in result.stderr
    assert (instance / "datalook.db").stat().st_size == 0  # left as it was


def test_help_needs_no_database(tmp_path):
    result = _flask(tmp_path / "instance", "sites", "snippet", "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_the_cli_uses_the_settings_make_run_wrote(tmp_path):
    server = LiveServer(tmp_path / "instance", workers=1, extra_env={"PUBLIC_URL": ""})
    server.start()
    try:
        written = server.instance / "datalook.env"
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        settings = read_settings_file(written)
        assert settings == {"HOST": "127.0.0.1", "PORT": str(server.port)}
        assert set(settings) <= set(SHARED_SETTINGS)
        # A shell without the server's environment: the same database, the served URL.
        made = _flask(
            server.instance,
            "users",
            "create",
            "o@shop.example",
            "--password",
            "correct horse battery",
        )
        assert made.returncode == 0, made.stderr
        site = _flask(
            server.instance, "sites", "create", "shop.example", "--owner", "o@shop.example"
        )
        assert site.returncode == 0, site.stderr
        snippet = _flask(server.instance, "sites", "snippet", "shop.example")
        assert snippet.returncode == 0, snippet.stderr
        assert f'src="http://127.0.0.1:{server.port}/' in snippet.stdout
        assert ":5000" not in snippet.stdout
        assert snippet.stderr == (
            f"PUBLIC_URL is not set: the snippet points at http://127.0.0.1:{server.port}\n"
        )
        # What the environment sets wins over the file.
        public = _flask(
            server.instance, "sites", "snippet", "shop.example", PUBLIC_URL="https://stats.example"
        )
        assert 'src="https://stats.example/' in public.stdout and public.stderr == ""
    finally:
        server.stop()
    assert re.search(r"^PORT=\d+$", written.read_text(), re.MULTILINE)


@pytest.mark.parametrize(
    ("config", "url"),
    [
        ({"PUBLIC_URL": "https://stats.example", "PORT": 8000}, "https://stats.example"),
        ({"PUBLIC_URL": None, "HOST": "0.0.0.0", "PORT": 8000}, "http://127.0.0.1:8000"),  # noqa: S104
        ({"PUBLIC_URL": None, "HOST": "192.0.2.5", "PORT": 80}, "http://192.0.2.5:80"),
        ({"PUBLIC_URL": None, "HOST": "::1", "PORT": 8000}, "http://[::1]:8000"),
    ],
)
def test_the_served_url(config, url):
    assert served_url(config) == url


def test_the_fold_says_what_it_did_in_plain_words():
    assert _folded_in_words(1200) == "added 1,200 events to the report summaries"
    assert "already held them" in _folded_in_words(0)
