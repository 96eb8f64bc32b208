"""The report fold is supervised: restarted after a crash with a back-off, the crash logged
in one line, its state in /readyz, and it dies with the server."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests

from datalook.analytics import heartbeat, supervisor
from tests.factories import bearer
from tests.live import ROOT, LiveServer


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the running children of a process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append((int(entry.name), name))
    return found


def wait_for(condition, timeout: float, what: str):
    """Poll `condition` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


# --- the back-off and the log line -----------------------------------------------------------


def test_the_back_off_doubles_from_one_second_to_thirty_and_resets_after_a_long_run():
    backoff = supervisor.Backoff()
    assert [backoff.after_run(0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.after_run(supervisor.STABLE_S) == 1  # it ran a while: from the start
    assert backoff.after_run(3) == 2


def test_the_exit_status_is_said_plainly():
    assert supervisor.exit_status(3) == "status 3"
    assert supervisor.exit_status(-9) == "signal 9 (SIGKILL)"
    assert supervisor.exit_status(-15) == "signal 15 (SIGTERM)"


def run_in_thread(watcher: supervisor.Supervisor) -> threading.Thread:
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return thread


def test_a_child_that_keeps_crashing_is_restarted_each_time_and_logged(caplog):
    caplog.set_level(logging.INFO, logger=supervisor.__name__)
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    watcher = supervisor.Supervisor(command, "crasher", supervisor.Backoff(0.05, 0.2, 60))
    thread = run_in_thread(watcher)
    try:
        wait_for(lambda: watcher.restarts >= 3, 30, "three restarts")
    finally:
        watcher.stop()
        thread.join(10)
    assert not thread.is_alive()
    lines = [r.getMessage() for r in caplog.records if "exited" in r.getMessage()]
    assert len(lines) >= 3
    assert lines[0].startswith("crasher (pid ") and lines[0].endswith(
        "exited with status 3; restarting in 0.05 s"
    )
    assert lines[1].endswith("restarting in 0.1 s") and lines[2].endswith("restarting in 0.2 s")


def test_a_killed_child_comes_back_and_stopping_ends_it(caplog):
    caplog.set_level(logging.INFO, logger=supervisor.__name__)
    watcher = supervisor.Supervisor(["sleep", "600"], "sleeper")
    thread = run_in_thread(watcher)
    try:
        first = wait_for(lambda: watcher.child and watcher.child.pid, 10, "a child")
        os.kill(first, signal.SIGKILL)
        second = wait_for(
            lambda: watcher.child.pid != first and watcher.child.pid, 10, "another child"
        )
        assert alive(second)
        assert f"sleeper (pid {first}) exited with signal 9 (SIGKILL); restarting in 1 s" in [
            r.getMessage() for r in caplog.records
        ]
    finally:
        watcher.stop()
        thread.join(20)
    assert not thread.is_alive()
    assert not alive(second)


def test_the_child_dies_with_the_supervisor(tmp_path):
    code = (
        "from datalook.analytics import supervisor\n"
        "supervisor.run_until_signalled(supervisor.Supervisor(['sleep', '600'], 'sleeper'))\n"
    )
    boss = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        child = wait_for(lambda: children(boss.pid), 30, "a child")[0][0]
        boss.kill()  # kill -9: it cannot stop its child itself
        boss.wait(10)
        wait_for(lambda: not alive(child), 10, "the child ending")
    finally:
        if boss.poll() is None:
            boss.kill()


def test_sigterm_stops_the_supervisor_and_its_child():
    code = (
        "from datalook.analytics import supervisor\n"
        "supervisor.run_until_signalled(supervisor.Supervisor(['sleep', '600'], 'sleeper'))\n"
    )
    boss = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        child = wait_for(lambda: children(boss.pid), 30, "a child")[0][0]
        boss.terminate()
        assert boss.wait(20) == 0
        wait_for(lambda: not alive(child), 10, "the child ending")
    finally:
        if boss.poll() is None:
            boss.kill()


# --- the real server: kill -9 the fold ------------------------------------------------------


def fold_processes(server: LiveServer) -> tuple[int, int]:
    """(the supervisor's pid, the fold's pid): the supervisor is the gunicorn master's child
    named flask, the fold its only child."""
    assert server.process is not None
    supervisors = [pid for pid, name in children(server.process.pid) if name == "flask"]
    assert len(supervisors) == 1, children(server.process.pid)
    folds = children(supervisors[0])
    assert len(folds) <= 1, folds
    return supervisors[0], folds[0][0] if folds else 0


def running_fold(server: LiveServer):
    """(supervisor, fold) once both run, else None."""
    found = fold_processes(server)
    return found if all(found) else None


def stamp_heartbeat(server: LiveServer, seconds_ago: float) -> None:
    """Make the host's heartbeat `seconds_ago` old, as if the fold had not ticked since."""
    name = heartbeat.row_name()
    with closing(sqlite3.connect(server.instance / "datalook.db", timeout=10)) as connection:
        connection.execute(
            "UPDATE analytics_cursor SET updated_at = datetime('now', ?) WHERE name = ?",
            (f"-{seconds_ago} seconds", name),
        )
        connection.commit()


def stop_between_writes(server: LiveServer, pid: int) -> None:
    """SIGSTOP the process while it does not hold the database's writers' lock (stopped
    holding it, it would hold every event writer up)."""
    lock = os.open(f"{server.instance / 'datalook.db'}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for _ in range(200):
            os.kill(pid, signal.SIGSTOP)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.01)
                continue
            fcntl.flock(lock, fcntl.LOCK_UN)
            return
    finally:
        os.close(lock)
    raise AssertionError("the fold held the writers' lock throughout")


def send_events(server: LiveServer, token: str, count: int) -> None:
    """POST `count` events through /events, 500 per request."""
    for first in range(0, count, 500):
        events = [
            {"event_name": "pageview", "page_path": f"/p{n % 7}", "success_user_id": f"u{n % 50}"}
            for n in range(first, min(count, first + 500))
        ]
        response = requests.post(
            f"{server.url}/events", json={"events": events}, headers=bearer(token), timeout=30
        )
        assert response.status_code == 200, response.text[:300]


@pytest.mark.slow
def test_a_killed_fold_comes_back_and_drains_the_backlog(tmp_path):
    server = LiveServer(tmp_path / "live", workers=2, extra_env={"ANALYTICS_FOLD_INTERVAL_S": "1"})
    server.start()
    try:
        body = server.wait_for_fold()
        assert body["status"] == "ok" and body["checks"]["fold"] == "ok"
        boss, fold = wait_for(lambda: running_fold(server), 30, "the fold")
        token = server.new_token()

        # A hung fold: it stops ticking, events pile up, and once its heartbeat is older
        # than max(3 intervals, 30 s) /readyz says so, yet keeps the server in service.
        stop_between_writes(server, fold)
        send_events(server, token, 2_000)
        stamp_heartbeat(server, 31)
        response = requests.get(f"{server.url}/readyz", timeout=5)
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["checks"]["fold"] == "down"
        assert response.json()["fold"]["pending_events"] >= 2_000

        killed_at = time.monotonic()
        os.kill(fold, signal.SIGKILL)
        line = f"analytics fold (pid {fold}) exited with signal 9 (SIGKILL); restarting in 1 s"
        wait_for(lambda: line in server.read_log(), 30, "the supervisor's log line")
        back = wait_for(lambda: fold_processes(server)[1] not in (0, fold), 30, "a new fold")
        back = fold_processes(server)[1]
        assert fold_processes(server)[0] == boss  # the same supervisor
        assert alive(back)

        def caught_up():
            found = server.readiness()
            drained = found["checks"]["fold"] == "ok" and found["fold"]["pending_events"] == 0
            return drained and found

        body = wait_for(caught_up, 60, "the backlog drained")
        assert body["status"] == "ok"
        assert time.monotonic() - killed_at < 60
        with closing(sqlite3.connect(server.instance / "datalook.db", timeout=10)) as connection:
            folded = connection.execute(
                "SELECT last_event_id FROM analytics_cursor WHERE name = 'events'"
            ).fetchone()[0]
            newest = connection.execute("SELECT max(id) FROM events").fetchone()[0]
        assert folded == newest
        assert "Traceback" not in server.read_log()
    finally:
        server.stop()
    # The supervisor and its fold stop with the server.
    wait_for(lambda: not alive(boss) and not alive(back), 15, "the supervisor and fold ending")
