"""The previous period's chart buckets, to overlay on the current period's chart.

The previous period (DateRange.previous) has as many days, so as many buckets but on a
day of a clock change. Read as the current period's series is read: from the summaries,
or with filters from the events that pass them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...acquisition.dimensions import Filter
from ...extensions import db
from ...models import Site
from .. import settled
from ..ranges import DateRange
from . import filtered
from .model import SeriesPoint
from .series import series_of
from .totals import exact_limit, totals_of


def previous_series(
    site: Site, rng: DateRange, filters: Sequence[Filter] = ()
) -> list[SeriesPoint]:
    """The buckets of the period just before `rng` (after the filters, when given)."""
    before = rng.previous()
    if filters:
        return filtered.series(site, before, filters)
    buckets = before.buckets()
    gen = settled.generation(db.session)
    _, exact = totals_of(site.id, before, exact_limit(), buckets, gen)
    return series_of(site.id, before, buckets, exact, gen)
