"""Property: the one-pass validation of the usual server event answers exactly as the field
table does, for any event, valid or nearly so (ingest/quick.py against schema.validate)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from datalook.ingest import quick, schema
from tests.test_event_properties import json_values, mostly, near_valid_events

contexts = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "ip": st.sampled_from(["203.0.113.7", "2001:db8::1", " 198.51.100.2 ", ""]),
            "user_agent": st.sampled_from(["Mozilla/5.0 (X11; Linux x86_64)", "", "a\nb"]),
            "referrer": st.sampled_from(["https://www.google.com/", "google.com", ""]),
            "utm": st.dictionaries(
                st.sampled_from(["source", "medium", "campaign", "x"]),
                st.sampled_from(["news", "", "e" * 300]) | json_values,
                max_size=3,
            ),
        },
    ),
    json_values,
)
events = st.one_of(
    near_valid_events,
    st.tuples(near_valid_events, contexts).map(lambda pair: {**pair[0], "context": pair[1]}),
    json_values,
)


def _comparable(answer: tuple) -> tuple:
    """An answer with the anonymous visitor id (random each time) masked."""
    event, problems = answer
    if event is None:
        return None, problems
    fields = dataclasses.asdict(event)
    if fields["visitor_id"].startswith("a:"):
        fields["visitor_id"] = "a:"
    return fields, problems


@settings(max_examples=2000, deadline=None)
@given(body=events)
def test_the_quick_path_answers_as_the_field_table(body: object) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    expected = _comparable(schema.validate(body, now))
    assert _comparable(quick.validator(now)(body)) == expected
