"""Removing the store's files that no valid segment names any more.

A segment's row goes the moment its rows could change (store.invalidate), but a report
that listed the segments just before may still be reading its file: a file is removed
only once it is older than GRACE and no row of this store names its token. The same
grace keeps the file a build has just renamed into place while its row is being stored.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import files
from .models import StoreSegment

GRACE = timedelta(minutes=10)


def collect(session: Session, directory: Path, grace: timedelta = GRACE) -> int:
    """Remove the files of this store that no segment row names (and temporary files
    left by a build that died), once older than `grace`; how many were removed."""
    return collect_unnamed(session, directory, directory, StoreSegment, grace)


def collect_unnamed(
    session: Session, directory: Path, folder: Path, rows: Any, grace: timedelta = GRACE
) -> int:
    """Remove the files in `folder`'s site folders that no row of `rows` (a model with
    `store` and `token` columns) of the store in `directory` names, and temporary files,
    once older than `grace`; how many were removed."""
    if not folder.is_dir():
        return 0
    store = files.store_id(directory)
    # Listed before the rows are read: a file made after this listing is not looked at.
    found = [path for path in folder.glob("*/*") if path.is_file()]
    valid = set(session.scalars(select(rows.token).where(rows.store == store)))
    session.rollback()
    return remove_unnamed(found, valid, grace)


def remove_unnamed(found: list[Path], valid: set[str], grace: timedelta = GRACE) -> int:
    """Remove the files `found` whose token is not `valid` (and temporary files), once
    older than `grace`; how many were removed."""
    oldest = time.time() - grace.total_seconds()
    removed = 0
    for path in found:
        token = files.token_of(path)
        stale = path.name.endswith(files.TEMPORARY) or (token is not None and token not in valid)
        try:
            if stale and path.stat().st_mtime < oldest:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another collector came first
            continue
    return removed
