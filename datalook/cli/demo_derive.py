"""Fold and file each chunk of the demo seed as it is written (`flask demo seed`).

The seed knows the events it writes: reading them back to fold them into the summaries
and to file them in the kind index cost more than writing them. In the transaction that
inserts a chunk, when the chunk's ids are consecutive and a cursor stands just before the
first of them, the chunk is derived from the rows in memory and the cursor moved past it,
as the fold (rollups.fold.fold_once) and the kind index's catch-up (kinds) would have done
from the stored rows: the same Accumulator, the same summary writes, the same kind_events
rows. A cursor that stands elsewhere (moved by a running fold, or behind) is left to the
ordinary catch-up, chunk by chunk.

On SQLite one writer at a time (the writers' lock and SQLite's own) makes the chunk's ids
follow the newest event, and its rows hold the times as text. On PostgreSQL the writer
takes the chunk's ids from the sequence itself (other writers may take ids meanwhile: then
they are not consecutive and nothing is derived), its rows hold datetimes, and a cursor
may also stand before a gap of ids that is final (cursors.settled_id) with no event in it,
where the fold would step over it.
"""

from __future__ import annotations

from datetime import datetime
from itertools import count, repeat
from operator import itemgetter

from sqlalchemy import func, select

from ..analytics import cursors, kinds, settled
from ..analytics.rollups import fold
from ..analytics.rollups.accumulate import Accumulator
from ..analytics.rollups.write import stored_sketches, write
from ..models import Event
from ..sql.bulk import copy_rows

_SITE, _KIND, _NAME, _PAGE, _VISITOR, _VALUE, _PROPS, _AT = 0, 2, 3, 4, 5, 7, 8, 9
# The events row's columns a fold takes, in accumulate.EVENT_COLUMNS order (its id apart).
_FOLDED = (_SITE, _KIND, _NAME, _PAGE, _VISITOR, _VALUE, _PROPS, _AT, _AT + 1)
_KIND_KEY = itemgetter(_SITE, _KIND, _PAGE, _NAME)
_FILED = ("site_id", "kind_id", "occurred_at", "event_id", "visitor_id", "value_micros")
# Fixed names; the values are bound as parameters.
_KIND_INSERT = f"INSERT INTO kind_events ({', '.join(_FILED)}) VALUES ({', '.join('?' * 6)})"  # noqa: S608


def _stands_before(connection, at: int, before: int) -> bool:
    """Whether a cursor at `at` may move on to the chunk after `before`: it stands there,
    or (PostgreSQL) only a final gap of ids lies between, as the fold would step over."""
    if at == before:
        return True
    if at > before or connection.dialect.name == "sqlite":
        return False
    # The gap is final first (no writer open that took an id up to the sequence's value,
    # ours apart), then empty: an event committed before that check shows in the count.
    if cursors.settled_id(connection) < before:
        return False
    between = select(func.count()).where(Event.id > at, Event.id <= before)
    return not connection.execute(between).scalar()


class ChunkDeriver:
    """Folds and files the chunks of one seed (see the module's docstring)."""

    def __init__(self) -> None:
        self.digests: dict[tuple, tuple[int, str]] = {}  # kind → (site, digest)
        self.folded = 0
        self.filed = 0

    def derive(self, connection, before: int, rows: list[tuple], newest: int) -> None:
        """Derive a chunk just inserted (its rows as stored: on SQLite with the times as
        its text; ids before + 1 … newest) where a cursor stands just before it; in the
        chunk's transaction."""
        if not rows or newest - before != len(rows):
            return  # not the chunk's ids alone: the catch-up reads them
        seen = fold.position(connection)
        if _stands_before(connection, seen.last_event_id, before):
            if fold.claim(connection, seen, newest):
                self._fold(connection, before, rows)
        filed = cursors.DERIVED.read(connection, kinds.CURSOR)
        if filed is not None and _stands_before(connection, filed.last_event_id, before):
            if cursors.DERIVED.claim(connection, kinds.CURSOR, filed, newest):
                self._file(connection, before, rows)

    def _fold(self, connection, before: int, rows: list[tuple]) -> None:
        """What fold_once does with the rows it read: add them up and write the increments
        and the merged sketches."""
        acc = Accumulator()
        # The columns of accumulate.EVENT_COLUMNS (no test events in a seed), each row's
        # tuple made by zip, not by a Python expression per row.
        columns = [map(itemgetter(n), rows) for n in _FOLDED]
        acc.add_all(zip(count(before + 1), *columns, repeat(False)))
        stored = stored_sketches(connection, list(acc.sketches_by_key()))
        write(connection, acc, stored, connection.dialect.name)
        self.folded += len(rows)

    def _file(self, connection, before: int, rows: list[tuple]) -> None:
        """What the kind index's catch-up files for the rows: each under its kind (made if
        new), with its time, id, visitor and value."""
        # Looked up for every chunk (a few hundred kinds, one query): between two chunks
        # an erasure may have deleted a kind left without events.
        digests = self.digests
        keys = list(map(_KIND_KEY, rows))
        wanted: dict[tuple[int, str], tuple] = {}
        for key in set(keys):
            digest = digests.get(key)
            if digest is None:
                digest = digests[key] = (key[0], kinds.kind_digest(*key[1:]))
            wanted[digest] = key
        ids = {
            wanted[digest]: kind_id
            for digest, kind_id in kinds.kind_ids(connection, wanted).items()
        }
        first = min(map(itemgetter(_AT), rows))
        if isinstance(first, str):  # SQLite's stored text
            first = datetime.fromisoformat(first)
        if first < settled.boundary():
            settled.bump(connection)  # as kinds' own filing does for the settled past
        # The kind_events rows (_FILED), made by zip.
        filed = zip(
            map(itemgetter(_SITE), rows),
            map(ids.__getitem__, keys),
            map(itemgetter(_AT), rows),
            count(before + 1),
            map(itemgetter(_VISITOR), rows),
            map(itemgetter(_VALUE), rows),
        )
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(_KIND_INSERT, list(filed))
        else:
            copy_rows(connection, "kind_events", list(_FILED), filed)
        self.filed += len(rows)
