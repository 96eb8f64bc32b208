"""The store's upkeep on each tick of the fold process: the store's cursor catches up
with the new events (deleting the segments they change), missing segments are built
newest first, then the journeys' missing or stale day files of the sessions
(session_files), and now and then the files of deleted segments and of stale day files are
removed; all within a budget, so that the next fold is not held back."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.orm import Session

from . import daily, gc, invalidate, session_files
from .build import Progress, build

# Seconds of building per tick (a build started before it ends is finished).
TICK_SECONDS = 1.5
# Seconds of building the sessions' day files per tick at least (a day of 30k sessions
# takes about 0.3 s), should the segments have used the whole budget.
SESSION_DAYS_SECONDS = 0.5
# Seconds between two removals of unused files, per store directory in this process.
COLLECT_EVERY_S = 300.0
_collected: dict[str, float] = {}


def tick(session: Session, directory: Path, seconds: float = TICK_SECONDS) -> Progress:
    """One bounded round of upkeep; what the build did."""
    started = time.monotonic()
    invalidate.catch_up(session, seconds)
    progress = build(session, directory, seconds=seconds)
    left = max(0.0, seconds - (time.monotonic() - started))
    daily.backfill(session, directory, seconds=left)  # days built before their rollups
    left = max(SESSION_DAYS_SECONDS, seconds - (time.monotonic() - started))
    session_files.build(session, directory, seconds=left)
    key = str(directory)
    if time.monotonic() - _collected.get(key, float("-inf")) >= COLLECT_EVERY_S:
        _collected[key] = time.monotonic()
        gc.collect(session, directory)
        session_files.collect(session, directory)
    return progress
