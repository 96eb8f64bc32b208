"""The refused-request log of the live debugger: recorded cheaply, written in batches.

A refused request whose key could be identified (a real key id with a wrong or revoked
secret, or a valid token with a bad body, too large, the wrong type, over its limit) is
kept for the site's owner: when, which key, the status, the error codes and fields, and a
short excerpt of the body with PII-matching keys and anything token-like removed. The
secret never is: it lives only in the Authorization header, which is never read here.

A flood of bad requests must neither fill the disk nor slow the good ones, so:
* each process admits at most PER_KEY_PER_SECOND records per key per second (the rest are
  only counted, and the next record says how many were skipped), and holds at most
  MAX_PENDING records in memory;
* a thread of the process writes them in one transaction every FLUSH_INTERVAL seconds, off
  every request's path, then prunes each site it wrote to to its newest KEEP_PER_SITE
  records and KEEP_FOR (reads ignore older records too).
Accepted events pay nothing here; duplicates (accepted, not stored again) and server
events whose context was too old to join their visit are recorded the same way so the live
view can show them.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

import orjson
from sqlalchemy import Table, delete, event, insert, select
from sqlalchemy.engine import Engine

from ..keys.tokens import TOKEN_IN_TEXT
from ..models import RefusedRequest
from ..sql.connections import write_lock
from .pii import is_pii_key, is_pii_value

PER_KEY_PER_SECOND = 5
MAX_PENDING = 500
FLUSH_INTERVAL = 1.0  # seconds
KEEP_PER_SITE = 1000
KEEP_FOR = timedelta(days=7)
EXCERPT_CHARS = 300
MAX_ERRORS = 10
# Where read_json leaves the raw body in the WSGI environ, for the excerpt of a refusal.
RAW_BODY = "datalook.raw_body"
DUPLICATE = "duplicate"
# An accepted server event whose context names a day too old to join its visit.
CONTEXT_TOO_OLD = "context_too_old"

log = logging.getLogger(__name__)
_table = cast(Table, RefusedRequest.__table__)
# A server event's context.user_agent is only read, never kept: not in an excerpt either
# (its context.ip goes as every "ip" key does, by the PII rule).
_NEVER_KEPT = frozenset({"user_agent"})
# A "key": value pair of JSON text that could not be parsed (for the excerpt of bad JSON).
_JSON_PAIR = re.compile(r'"((?:[^"\\]|\\.){0,200})"\s*:\s*("(?:[^"\\]|\\.)*"?|[^,}\]]*)')


class IdentifiedKey(Protocol):
    """What the log needs of a key (authentication.AuthenticatedKey or KnownKey)."""

    @property
    def id(self) -> int: ...
    @property
    def site_id(self) -> int: ...
    @property
    def is_test(self) -> bool: ...


@dataclass(slots=True)
class _Budget:
    """How many records one key has spent in the current second, and how many were skipped."""

    second: int
    used: int
    skipped: int


def scrub_text(text: str) -> str:
    """Replace anything shaped like a DataLook token (the secret with it)."""
    return TOKEN_IN_TEXT.sub("[token removed]", text)


def _without_pii(value: object, depth: int = 0) -> object:
    """A JSON value without PII-matching keys at any depth, and without token-like text."""
    if depth > 20:
        return "…"
    if isinstance(value, dict):
        return {
            scrub_text(str(k)): _without_pii(v, depth + 1)
            for k, v in value.items()
            if not is_pii_key(str(k)) and str(k) not in _NEVER_KEPT and not is_pii_value(v)
        }
    if isinstance(value, list):
        return [_without_pii(v, depth + 1) for v in value[:20]]
    if isinstance(value, str):
        return scrub_text(value[:EXCERPT_CHARS])
    return value


def _drop_pii_pairs(match: re.Match) -> str:
    """Keep a "key": value pair of unparsable JSON unless its key names personal data."""
    key = match.group(1)
    return "" if is_pii_key(key) or key in _NEVER_KEPT else match.group(0)


def excerpt(raw: bytes | None) -> str | None:
    """A short, safe excerpt of a request body: PII keys and token-like text removed."""
    if not raw:
        return None
    head = raw[:8192]
    try:
        text = orjson.dumps(_without_pii(orjson.loads(raw))).decode()
    except (orjson.JSONDecodeError, TypeError):
        # Not JSON (or cut short): remove the pairs whose key names personal data.
        text = _JSON_PAIR.sub(_drop_pii_pairs, head.decode("utf-8", "replace"))
    text = scrub_text(text)
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _safe_errors(errors: list[dict] | None) -> str | None:
    """The per-field errors as JSON text (a few, their messages without token-like text)."""
    if not errors:
        return None
    kept = [
        {
            **({"index": e["index"]} if "index" in e else {}),
            "field": scrub_text(str(e.get("field", "")))[:100],
            "code": str(e.get("code", ""))[:64],
            "message": scrub_text(str(e.get("message", "")))[:200],
        }
        for e in errors[:MAX_ERRORS]
    ]
    return orjson.dumps(kept).decode()


class RefusalRecorder:
    """Per-process, thread-safe log of refusals, written in batches by its own thread."""

    def __init__(
        self,
        interval: float = FLUSH_INTERVAL,
        per_key_per_second: int = PER_KEY_PER_SECOND,
        max_pending: int = MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self.per_key_per_second = per_key_per_second
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: list[dict] = []
        self._budgets: dict[int, _Budget] = {}
        self._engine: Engine | None = None
        self._thread_pid: int | None = None

    def _budget_now(self, key_pk: int) -> _Budget:
        """The key's budget for this second (a new one carries the skipped count over); the
        caller holds the lock."""
        second = int(self._clock())
        budget = self._budgets.get(key_pk)
        if budget is None or budget.second != second:
            if len(self._budgets) > 10_000:  # keys are real rows, but stay bounded anyway
                self._budgets.clear()
            skipped = budget.skipped if budget is not None else 0
            budget = self._budgets[key_pk] = _Budget(second, 0, skipped)
        return budget

    def _admit(self, key_pk: int) -> int | None:
        """Spend one record of a key's budget: the number skipped before it, or None."""
        with self._lock:
            budget = self._budget_now(key_pk)
            if budget.used >= self.per_key_per_second or len(self._pending) >= self.max_pending:
                budget.skipped += 1
                return None
            budget.used += 1
            skipped, budget.skipped = budget.skipped, 0
            return skipped

    def would_skip(self, key_pk: int) -> bool:
        """Whether a refusal of this key would only be counted now (its records for this
        second are spent, or the memory bound is reached), without spending anything."""
        second = int(self._clock())
        budget = self._budgets.get(key_pk)
        if budget is not None and budget.second == second:
            return budget.used >= self.per_key_per_second or len(self._pending) >= self.max_pending
        return len(self._pending) >= self.max_pending

    def skipped(self, key_pk: int) -> None:
        """Count one refusal of this key that is not recorded (would_skip said so): the next
        record of the key says how many were skipped. Never writes a record itself, so a
        caller that skipped looking the key up cannot name a key that is gone."""
        with self._lock:
            self._budget_now(key_pk).skipped += 1

    def refused(
        self,
        key: IdentifiedKey,
        now: datetime,
        status: int,
        code: str,
        message: str,
        errors: list[dict] | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Record one refusal (or a duplicate) of `key`, if its budget allows; never raises."""
        skipped = self._admit(key.id)
        if skipped is None:
            return
        try:
            row = {
                "site_id": key.site_id,
                "api_key_id": key.id,
                "received_at": now,
                "status": status,
                "code": code[:64],
                "message": scrub_text(message)[:300],
                "errors": _safe_errors(errors),
                "excerpt": excerpt(raw),
                "suppressed": skipped,
                "is_test": key.is_test,
            }
        except Exception:  # a record is never worth an answer: log the bug, answer anyway
            log.exception("could not build a refused-request record")
            return
        with self._lock:
            self._pending.append(row)
        self._ensure_thread()

    def bind(self, engine: Engine) -> None:
        """Write to `engine` (the ingestion app's own); stop writing when it is disposed."""
        self._engine = engine
        event.listen(engine, "engine_disposed", self._forget_engine)

    def _forget_engine(self, _engine: Engine) -> None:
        """The engine is disposed (shut-down, tests): stop writing; the thread ends.

        No last flush here: it would open a connection that nothing closes any more.
        (A worker's last records are written by the atexit flush, before any dispose.)
        """
        self._engine = None

    def _ensure_thread(self) -> None:
        """Start this process's writer thread (again after a fork) once something is pending."""
        pid = os.getpid()
        if self._thread_pid == pid or self._engine is None:
            return
        with self._lock:
            if self._thread_pid == pid:
                return
            self._thread_pid = pid
        thread = threading.Thread(target=self._run, name="refusal-log", daemon=True)
        thread.start()
        atexit.register(self.flush)

    def _run(self) -> None:
        """Write pending records every interval, while the engine lives."""
        failed_at = -60.0
        while self._engine is not None:
            time.sleep(self.interval)
            try:
                self.flush()
            except Exception:
                # One line a minute while the database is away, not one a second.
                if time.monotonic() - failed_at >= 60:
                    failed_at = time.monotonic()
                    log.exception("could not write the refused-request log; will retry")
        with self._lock:
            self._thread_pid = None  # a later bind starts a new thread

    def pending(self) -> int:
        """How many records wait to be written (for tests and the bench)."""
        with self._lock:
            return len(self._pending)

    def flush(self, engine: Engine | None = None) -> None:
        """Write what is pending in one transaction, then prune the sites written to."""
        engine = engine or self._engine
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows or engine is None:
            return
        try:
            # Checked out before the writers' lock, which every other writer waits for.
            with (
                engine.connect() as connection,
                write_lock(engine.dialect, engine.url.database),
                connection.begin(),
            ):
                connection.execute(insert(_table), rows)
                oldest = max(row["received_at"] for row in rows) - KEEP_FOR
                for site_id in {row["site_id"] for row in rows}:
                    connection.execute(prune_statement(site_id, oldest))
        except Exception:
            with self._lock:  # keep them for the next pass, within the memory bound
                self._pending = (rows + self._pending)[-self.max_pending :]
            raise


def prune_statement(site_id: int, oldest: datetime):
    """DELETE a site's records older than `oldest` or beyond the newest KEEP_PER_SITE."""
    boundary = (
        select(_table.c.id)
        .where(_table.c.site_id == site_id)
        .order_by(_table.c.id.desc())
        .offset(KEEP_PER_SITE)
        .limit(1)
        .scalar_subquery()
    )
    return delete(_table).where(
        _table.c.site_id == site_id,
        (_table.c.received_at < oldest) | (_table.c.id <= boundary),
    )


def recorder_for(extensions: dict) -> RefusalRecorder:
    """The app's own recorder, kept in its `extensions` (one per app, as the usage counter)."""
    return extensions.setdefault("datalook_refusals", RefusalRecorder())
