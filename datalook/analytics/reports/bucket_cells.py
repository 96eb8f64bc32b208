"""A chart bucket's index as arithmetic on an event's time, for the SQL reports.

The buckets of a chart start at local midnights or local hours of the site's zone, so
their UTC starts are not evenly spaced (a day across a clock change has 23 or 25 hours,
weeks may start partial, months differ). Every start lies a whole number of cells from
the first one, a cell being the greatest common divisor of those distances (an hour in
most zones, a quarter or half hour in some, a day in UTC): an event's cell is then plain
integer division, and the cell's bucket is read from a short list made here with the
same bisect that raw_events.bucket_of uses. So no event has to be joined to the buckets
by time (an ASOF join sorts every row).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Past this many cells (a cell of a minute over years, say), no lookup list is made.
MAX_CELLS = 200_000
_MICROS = timedelta(microseconds=1)


@dataclass(frozen=True)
class Cells:
    """Cells of `width_us` microseconds from `origin_us` (epoch microseconds), and the
    bucket index of each (`buckets[k]`: of the cell that starts k cells from the origin;
    the last one also holds every later time)."""

    origin_us: int
    width_us: int
    buckets: list[int]


def _epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch of a naive UTC time."""
    return (moment - datetime(1970, 1, 1)) // _MICROS


def cells_of(starts: list[datetime], limit: int = MAX_CELLS) -> Cells | None:
    """The cells of buckets that start at `starts` (sorted UTC starts; of equal starts the
    last one holds the events, as bisect_right gives); None past `limit` cells."""
    if not starts:
        return None
    origin = _epoch_us(starts[0])
    offsets = [_epoch_us(start) - origin for start in starts]
    width = 0
    for offset in offsets:
        width = math.gcd(width, offset)
    if width == 0:  # one start (or equal ones): every time from it on is the last bucket
        return Cells(origin, 1, [len(starts) - 1])
    count = offsets[-1] // width + 1
    if count > limit:
        return None
    return Cells(origin, width, [bisect.bisect_right(offsets, k * width) - 1 for k in range(count)])
