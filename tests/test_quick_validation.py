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


@settings(max_examples=1000, deadline=None)
@given(batch=st.lists(events, min_size=1, max_size=4))
def test_the_quick_path_answers_as_the_field_table(batch: list) -> None:
    # One validator for the whole batch, as POST /events uses it: what an event of the
    # request showed valid must not change the answer for the next.
    now = datetime.now(UTC).replace(tzinfo=None)
    validate = quick.validator(now)
    for body in batch:
        assert _comparable(validate(body)) == _comparable(schema.validate(body, now))


def test_repeated_values_are_judged_alike() -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    validate = quick.validator(now)
    base = {"event_name": "success", "name": "paid", "page_path": "/p", "success_value": 9.99}
    plain = {**base, "properties": {"plan": "a@b.example", "seats": 2}}
    first, again = validate(plain), validate({**plain, "properties": {"note": "a@b.example"}})
    assert first[0] is not None and first[0].stripped_keys == ["plan"]
    assert again[0] is not None and again[0].stripped_keys == ["note"]
    too_long = validate({**base, "name": "n" * 101})
    assert too_long == schema.validate({**base, "name": "n" * 101}, now)
    assert (
        validate({**base, "page_path": "p"})[1]
        == schema.validate({**base, "page_path": "p"}, now)[1]
    )
