"""The store's directory and its Parquet files: where a segment's file lives, writing one
atomically, and reading back the token a file name carries.

A directory is one store: `store-id` in it names the store in the segments table, so that
hosts with a directory each keep their own segments (and hosts sharing one directory share
them). A segment's file is `<site id>/<YYYYMMDDTHH>-<hours>h-<token>.parquet`; the token
is unique to one build, so a file is never rewritten in place: a reader that listed it
reads it whole or finds it gone. A day segment's rollup (store.daily) is named as its file
with ROLLUP_SUFFIX for `.parquet`, and removed with it.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

STORE_ID_FILE = "store-id"
SUFFIX = ".parquet"
# A day segment's rollup (store.daily; Parquet too): a new layout gets a new suffix, and the
# files of the old one are then unused and removed with their segments.
ROLLUP_SUFFIX = ".rollup1"
TEMPORARY = ".tmp"
_HOUR = timedelta(hours=1)


def store_id(directory: Path) -> str:
    """The id of the store in `directory` (made once, on first use; a racing maker's wins)."""
    path = directory / STORE_ID_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    directory.mkdir(parents=True, exist_ok=True)
    candidate = directory / f"{STORE_ID_FILE}.{secrets.token_hex(8)}{TEMPORARY}"
    candidate.write_text(secrets.token_hex(8), encoding="utf-8")
    try:
        os.link(candidate, path)  # fails if another process made it first
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return path.read_text(encoding="utf-8").strip()


def new_token() -> str:
    """A token unique to one build."""
    return secrets.token_hex(16)


def segment_path(directory: Path, site_id: int, start: datetime, end: datetime, token: str) -> Path:
    """The file of one segment."""
    hours = (end - start) // _HOUR
    return directory / str(site_id) / f"{start:%Y%m%dT%H}-{hours}h-{token}{SUFFIX}"


def token_of(path: Path) -> str | None:
    """The build token a segment's file (or its day rollup's) name carries (None: not
    one of theirs)."""
    for suffix in (SUFFIX, ROLLUP_SUFFIX):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)].rpartition("-")[2] or None
    return None


def write(path: Path, table: pa.Table) -> None:
    """Write a segment's rows (zstd) under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + TEMPORARY)
    pq.write_table(table, temporary, compression="zstd", row_group_size=64 * 1024)
    os.replace(temporary, path)


def read(paths: list[Path]) -> pa.Table:
    """The rows of segments' files, concatenated."""
    return pa.concat_tables([pq.read_table(path) for path in paths])
