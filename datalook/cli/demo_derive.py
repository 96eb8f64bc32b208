"""Fold and file each chunk of the demo seed as it is written (`flask demo seed`, SQLite).

The seed knows the events it writes: reading them back to fold them into the summaries
and to file them in the kind index cost more than writing them. In the transaction that
inserts a chunk, when the chunk's ids follow the newest event before it without a gap
(one writer at a time: the writers' lock and SQLite's own) and a cursor stands exactly at
that newest event, the chunk is derived from the rows in memory and the cursor moved past
it, as the fold (rollups.fold.fold_once) and the kind index's catch-up (kinds) would have
done from the stored rows: the same Accumulator, the same summary writes, the same
kind_events rows. A cursor that stands elsewhere (moved by a running fold, or behind) is
left to the ordinary catch-up, chunk by chunk.
"""

from __future__ import annotations

from datetime import datetime

from ..analytics import cursors, kinds, settled
from ..analytics.rollups import fold
from ..analytics.rollups.accumulate import Accumulator
from ..analytics.rollups.write import stored_sketches, write

_SITE, _KIND, _NAME, _PAGE, _VISITOR, _VALUE, _PROPS, _AT = 0, 2, 3, 4, 5, 7, 8, 9
_KIND_INSERT = (
    "INSERT INTO kind_events (site_id, kind_id, occurred_at, event_id, visitor_id, value_micros)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


class ChunkDeriver:
    """Folds and files the chunks of one seed on SQLite (see the module's docstring)."""

    def __init__(self) -> None:
        self.digests: dict[tuple, tuple[int, str]] = {}  # kind → (site, digest)
        self.folded = 0
        self.filed = 0

    def derive(self, connection, before: int, rows: list[tuple], newest: int) -> None:
        """Derive a chunk just inserted (its rows as stored, times as SQLite's text; ids
        before + 1 … newest) where a cursor stands at `before`; in the chunk's transaction."""
        if not rows or newest - before != len(rows):
            return  # not the chunk's ids alone: the catch-up reads them
        seen = fold.position(connection)
        if seen.last_event_id == before and fold.claim(connection, seen, newest):
            self._fold(connection, before, rows)
        filed = cursors.DERIVED.read(connection, kinds.CURSOR)
        if filed is not None and filed.last_event_id == before:
            if cursors.DERIVED.claim(connection, kinds.CURSOR, filed, newest):
                self._file(connection, before, rows)

    def _fold(self, connection, before: int, rows: list[tuple]) -> None:
        """What fold_once does with the rows it read: add them up and write the increments
        and the merged sketches."""
        acc = Accumulator()
        add = acc.add
        for n, row in enumerate(rows, before + 1):
            # The columns of accumulate.EVENT_COLUMNS (no test events in a seed).
            add(
                (
                    n,
                    row[_SITE],
                    row[_KIND],
                    row[_NAME],
                    row[_PAGE],
                    row[_VISITOR],
                    row[_VALUE],
                    row[_PROPS],
                    row[_AT],
                    row[_AT + 1],
                    False,
                )
            )
        stored = stored_sketches(connection, list(acc.sketches_by_key()))
        write(connection, acc, stored, connection.dialect.name)
        self.folded += len(rows)

    def _file(self, connection, before: int, rows: list[tuple]) -> None:
        """What the kind index's catch-up files for the rows: each under its kind (made if
        new), with its time, id, visitor and value."""
        # Looked up for every chunk (a few hundred kinds, one query): between two chunks
        # an erasure may have deleted a kind left without events.
        digests = self.digests
        wanted: dict[tuple[int, str], tuple] = {}
        for key in {(row[_SITE], row[_KIND], row[_PAGE], row[_NAME]) for row in rows}:
            digest = digests.get(key)
            if digest is None:
                digest = digests[key] = (key[0], kinds.kind_digest(*key[1:]))
            wanted[digest] = key
        ids = {
            wanted[digest]: kind_id
            for digest, kind_id in kinds.kind_ids(connection, wanted).items()
        }
        if datetime.fromisoformat(min(row[_AT] for row in rows)) < settled.boundary():
            settled.bump(connection)  # as kinds' own filing does for the settled past
        connection.exec_driver_sql(
            _KIND_INSERT,
            [
                (
                    row[_SITE],
                    ids[(row[_SITE], row[_KIND], row[_PAGE], row[_NAME])],
                    row[_AT],
                    n,
                    row[_VISITOR],
                    row[_VALUE],
                )
                for n, row in enumerate(rows, before + 1)
            ],
        )
        self.filed += len(rows)
