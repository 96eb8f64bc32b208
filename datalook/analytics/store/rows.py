"""The rows of the columnar copy: one per counted event, with its visit as a whole.

A row holds the event's own columns and acquisition columns (as stored: NULL is "(not
recorded)", "" is "(none)") and what raw_events derives of its visit, so that a report is
a plain GROUP BY over the rows of its range:

- `visit_id`: the id of the visit's first event (reads the visit as a whole, also across
  the edges of any range); NULL for an event without a visitor (`a:` ids), which is a visit
  of its own that no report counts as one.
- `visit_at`: the time of the visit's first event (a visit started before a range when it
  is earlier than the range's start).
- `v_<dimension>`: the visit's first event's value of each visit dimension (channel,
  source, …), the value every event of the visit reports.
- `entry_page`, `exit_page`: the visit's first and last page views (NULL: none).
- `visit_events`, `visit_browser_pageviews`, `visit_duration_us`: its figures as a whole.

The values are exactly raw_events': rows_for reads the events through
raw_events.range_events with whole visits, so the copy cannot disagree with it.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from ...models import ACQUISITION_LENGTHS
from ..reports.raw_events import VISIT_DIMENSIONS, RawEvent, range_events

ACQUISITION = tuple(ACQUISITION_LENGTHS)
#: The visit dimensions in a fixed order (their columns are "v_" + name).
VISIT_COLUMNS = tuple(name for name in ACQUISITION if name in VISIT_DIMENSIONS)
_FIRST_INDEX = [ACQUISITION.index(name) for name in VISIT_COLUMNS]

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("visitor", pa.string()),
        ("has_visitor", pa.bool_()),
        ("ts", pa.timestamp("us")),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("page", pa.string()),
        ("micros", pa.int64()),
        ("from_browser", pa.bool_()),
        ("properties", pa.string()),
        *((name, pa.string()) for name in ACQUISITION),
        ("visit_id", pa.int64()),
        ("visit_at", pa.timestamp("us")),
        *(("v_" + name, pa.string()) for name in VISIT_COLUMNS),
        ("entry_page", pa.string()),
        ("exit_page", pa.string()),
        ("visit_events", pa.int32()),
        ("visit_browser_pageviews", pa.int32()),
        ("visit_duration_us", pa.int64()),
    ]
)


#: The columns that are the event's own (not its visit's): read without the visits.
OWN_COLUMNS = ("id", "visitor", "has_visitor", "ts", "kind", "name", "page", "micros", "properties")


def table_of(events: list[RawEvent]) -> pa.Table:
    """The copy's rows of events placed in their whole visits (raw_events)."""
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    for event in events:
        visit = event.visit
        first = visit.first if visit is not None else event
        counted_visit = visit is not None and visit.number is not None
        columns["id"].append(event.id)
        columns["visitor"].append(event.visitor)
        columns["has_visitor"].append(event.has_visitor)
        columns["ts"].append(event.at)
        columns["kind"].append(event.kind)
        columns["name"].append(event.name)
        columns["page"].append(event.page)
        columns["micros"].append(event.micros)
        columns["from_browser"].append(event.from_browser)
        columns["properties"].append(event.properties)
        for name, value in zip(ACQUISITION, event.acquisition, strict=True):
            columns[name].append(value)
        columns["visit_id"].append(first.id if counted_visit else None)
        columns["visit_at"].append(first.at)
        for name, index in zip(VISIT_COLUMNS, _FIRST_INDEX, strict=True):
            columns["v_" + name].append(first.acquisition[index])
        if visit is None:
            page = event.page if event.kind == "pageview" else None
            columns["entry_page"].append(page)
            columns["exit_page"].append(page)
        else:
            columns["entry_page"].append(visit.entry_page)
            columns["exit_page"].append(visit.exit_page)
        columns["visit_events"].append(visit.event_count if visit is not None else 1)
        columns["visit_browser_pageviews"].append(visit.browser_pageviews if visit else 0)
        columns["visit_duration_us"].append(visit.duration_us if visit is not None else 0)
    return pa.table(columns, schema=SCHEMA)


def rows_for(site_id: int, start: datetime, end: datetime) -> pa.Table:
    """The copy's rows of the site's counted events in [start, end) (UTC, naive), each with
    its visit as a whole (events before and after the span are read for it)."""
    events = range_events(site_id, start, end, whole_visits=True)
    return table_of(events)


def own_rows_for(site_id: int, start: datetime, end: datetime) -> pa.Table:
    """rows_for's OWN_COLUMNS of the site's counted events in [start, end), without reading
    their visits (none of these columns depends on them)."""
    return table_of(range_events(site_id, start, end)).select(list(OWN_COLUMNS))
