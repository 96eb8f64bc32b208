"""Funnel definitions: the one validation, table-tested, and what steps match."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from datalook.analytics.funnels.definition import (
    ParameterError,
    Step,
    parse_definition,
    parse_step,
    parse_window,
)

PV = {"event_name": "pageview", "page_path": "/"}
PAID = {"event_name": "success", "name": "paid"}

BAD = [
    ("one step", [PV], None, None, "step", "step_count"),
    ("nine steps", [PV] * 9, None, None, "step", "step_count"),
    ("no steps", [], None, None, "step", "step_count"),
    (
        "unknown event_name",
        [PV, {"event_name": "purchase"}],
        None,
        None,
        "step",
        "unknown_event_name",
    ),
    ("missing event_name", [PV, {"page_path": "/x"}], None, None, "step", "unknown_event_name"),
    ("step not JSON", [PV, "{nope"], None, None, "step", "malformed_step"),
    ("step a list", [PV, "[1]"], None, None, "step", "malformed_step"),
    ("unknown key", [PV, {"event_name": "click", "colour": 1}], None, None, "step", "unknown_key"),
    (
        "relative path",
        [PV, {"event_name": "click", "page_path": "x"}],
        None,
        None,
        "step",
        "invalid_page_path",
    ),
    (
        "star inside",
        [PV, {"event_name": "click", "page_path": "/a*/b"}],
        None,
        None,
        "step",
        "invalid_page_path",
    ),
    ("empty name", [PV, {"event_name": "success", "name": ""}], None, None, "step", "invalid_name"),
    (
        "name not text",
        [PV, {"event_name": "success", "name": 5}],
        None,
        None,
        "step",
        "invalid_name",
    ),
    (
        "property no value",
        [PV, {"event_name": "click", "property": {"key": "k"}}],
        None,
        None,
        "step",
        "invalid_property",
    ),
    (
        "property list value",
        [PV, {"event_name": "click", "property": {"key": "k", "value": [1]}}],
        None,
        None,
        "step",
        "invalid_property",
    ),
    (
        "property null value",
        [PV, {"event_name": "click", "property": {"key": "k", "value": None}}],
        None,
        None,
        "step",
        "invalid_property",
    ),
    ("window zero", [PV, PAID], "0m", None, "window", "invalid_window"),
    ("window no unit", [PV, PAID], "24", None, "window", "invalid_window"),
    ("window seconds", [PV, PAID], "30s", None, "window", "invalid_window"),
    ("window over 30 days", [PV, PAID], "31d", None, "window", "out_of_range"),
    ("window over 30 days in hours", [PV, PAID], "721h", None, "window", "out_of_range"),
    ("window negative", [PV, PAID], "-5m", None, "window", "invalid_window"),
    ("unknown mode", [PV, PAID], "24h", "loose", "mode", "unknown_mode"),
]


@pytest.mark.parametrize(
    ("steps", "window", "mode", "field", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_definitions_name_the_parameter(steps, window, mode, field, code):
    with pytest.raises(ParameterError) as caught:
        parse_definition(steps, window, mode)
    assert (caught.value.field, caught.value.code) == (field, code)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("1m", timedelta(minutes=1)),
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("30d", timedelta(days=30)),
        ("720h", timedelta(days=30)),
        (None, timedelta(days=1)),
        ("", timedelta(days=1)),
    ],
)
def test_windows(text, delta):
    assert parse_window(text)[0] == delta


def test_good_definition_round_trips_through_json():
    steps = [
        PV,
        json.dumps(PAID),
        {"event_name": "click", "property": {"key": "plan", "value": "pro"}},
    ]
    definition = parse_definition(steps, "7d", "strict")
    again = parse_definition(definition.as_json()["steps"], "7d", "strict")
    assert again == definition
    assert [s.label for s in definition.steps] == ["pageview /", "success paid", 'click plan="pro"']


@pytest.mark.parametrize(
    ("step", "event", "matches"),
    [
        (
            {"event_name": "pageview", "page_path": "/docs/*"},
            ("pageview", "/docs/", None, None),
            True,
        ),
        (
            {"event_name": "pageview", "page_path": "/docs/*"},
            ("pageview", "/docs/a/b", None, None),
            True,
        ),
        (
            {"event_name": "pageview", "page_path": "/docs/*"},
            ("pageview", "/docs", None, None),
            False,
        ),
        (
            {"event_name": "pageview", "page_path": "/docs/*"},
            ("pageview", "/docsx", None, None),
            False,
        ),
        (
            {"event_name": "pageview", "page_path": "/docs"},
            ("pageview", "/docs/", None, None),
            False,
        ),
        ({"event_name": "pageview", "page_path": "/a_b%"}, ("pageview", "/a_b%", None, None), True),
        ({"event_name": "pageview"}, ("click", "/", None, None), False),
        ({"event_name": "success", "name": "paid"}, ("success", "/", "paid", None), True),
        ({"event_name": "success", "name": "paid"}, ("success", "/", "trial", None), False),
        (
            {"event_name": "click", "property": {"key": "plan", "value": "pro"}},
            ("click", "/", None, '{"plan":"pro"}'),
            True,
        ),
        (
            {"event_name": "click", "property": {"key": "plan", "value": "pro"}},
            ("click", "/", None, '{"plan":"team"}'),
            False,
        ),
        (
            {"event_name": "click", "property": {"key": "n", "value": 1}},
            ("click", "/", None, '{"n":1.0}'),
            True,
        ),
        (
            {"event_name": "click", "property": {"key": "n", "value": 1}},
            ("click", "/", None, '{"n":true}'),
            False,
        ),
        (
            {"event_name": "click", "property": {"key": "n", "value": 1}},
            ("click", "/", None, None),
            False,
        ),
    ],
)
def test_step_matching(step, event, matches):
    parsed: Step = parse_step(step, 1)
    assert parsed.matches(*event) is matches
