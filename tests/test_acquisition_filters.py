"""Report dimensions, sentinels, and the filter parser `<dimension><op><value>`."""

from __future__ import annotations

import pytest

from datalook.acquisition.dimensions import (
    DIMENSIONS,
    MAX_FILTER_VALUE,
    MAX_PROPERTY_KEY,
    NONE,
    NOT_RECORDED,
    Filter,
    FilterError,
    is_dimension,
    parse_dimension,
    parse_filter,
    property_key,
)


def test_the_dimension_list_and_sentinels():
    assert DIMENSIONS == (
        "channel",
        "source",
        "medium",
        "campaign",
        "term",
        "content",
        "referrer",
        "page",
        "entry_page",
        "exit_page",
        "country",
        "region",
        "city",
        "device",
        "browser",
        "os",
        "rule",
    )
    assert (NONE, NOT_RECORDED) == ("(none)", "(not recorded)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("country==DE", Filter("country", "==", "DE")),
        ("source!=Google", Filter("source", "!=", "Google")),
        ("page=~pricing", Filter("page", "=~", "pricing")),
        ("channel==Organic Search", Filter("channel", "==", "Organic Search")),
        ("  country == DE  ", Filter("country", "==", "DE")),
        ("Country==DE", Filter("country", "==", "DE")),
        ("ENTRY_PAGE=~/blog", Filter("entry_page", "=~", "/blog")),
        ("campaign==(none)", Filter("campaign", "==", "(none)")),
        ("source==(not recorded)", Filter("source", "==", "(not recorded)")),
        ("prop:plan==pro", Filter("prop:plan", "==", "pro")),
        ("prop:Plan Name!=Free", Filter("prop:Plan Name", "!=", "Free")),
        ("PROP: plan ==pro", Filter("prop:plan", "==", "pro")),
        # Split at the first operator: the value may contain operators.
        ("page=~a==b", Filter("page", "=~", "a==b")),
        ("page==a!=b", Filter("page", "==", "a!=b")),
        ("term!==x", Filter("term", "!=", "=x")),
        ("content===x", Filter("content", "==", "=x")),
        (
            "referrer=~https://example.org/?a=b",
            Filter("referrer", "=~", "https://example.org/?a=b"),
        ),
        ("rule==Signup", Filter("rule", "==", "Signup")),
    ],
)
def test_parse_valid_filters(text, expected):
    parsed = parse_filter(text)
    assert parsed == expected
    assert parse_filter(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "code", "in_message"),
    [
        ("", "empty_filter", "<dimension><op><value>"),
        ("   ", "empty_filter", "<dimension><op><value>"),
        (None, "empty_filter", "<dimension><op><value>"),
        ("country=DE", "unknown_operator", "'='"),
        ("country>=5", "unknown_operator", "'>='"),
        ("country!~DE", "unknown_operator", "'!~'"),
        ("country<DE", "unknown_operator", "'<'"),
        ("country DE", "unknown_operator", "needs an operator"),
        ("country", "unknown_operator", "needs an operator"),
        ("prop:plan=pro", "unknown_operator", "'='"),
        ("colour==red", "unknown_dimension", "'colour'"),
        ("==DE", "unknown_dimension", "starts with a dimension"),
        ("  !=x", "unknown_dimension", "starts with a dimension"),
        ("utm_source==google", "unknown_dimension", "prop:<key>"),
        ("prop==x", "unknown_dimension", "'prop'"),
        ("x" * 300 + "==y", "unknown_dimension", "..."),
        ("prop:==x", "invalid_property_key", "prop:<key>"),
        ("prop:   ==x", "invalid_property_key", "prop:<key>"),
        ("prop:" + "k" * (MAX_PROPERTY_KEY + 1) + "==x", "invalid_property_key", "128"),
        ("country==", "empty_value", "(none)"),
        ("country==   ", "empty_value", "country"),
        ("page=~" + "v" * (MAX_FILTER_VALUE + 1), "value_too_long", "500"),
    ],
)
def test_malformed_filters_raise_a_precise_error(text, code, in_message):
    with pytest.raises(FilterError) as raised:
        parse_filter(text)
    error = raised.value
    assert error.field == "filter"
    assert error.code == code
    assert in_message in error.message
    assert str(error) == error.message
    assert isinstance(error, ValueError)


def test_limits_are_inclusive():
    key = "k" * MAX_PROPERTY_KEY
    assert parse_filter(f"prop:{key}==x").dimension == f"prop:{key}"
    assert parse_filter("page==" + "v" * MAX_FILTER_VALUE).value == "v" * MAX_FILTER_VALUE


@pytest.mark.parametrize(
    ("text", "value", "matches"),
    [
        ("country==DE", "DE", True),
        ("country==DE", "de", False),  # equality is exact
        ("country==DE", "DEU", False),
        ("country==DE", None, False),
        ("country!=DE", "FR", True),
        ("country!=DE", "DE", False),
        ("country!=DE", None, True),
        ("campaign==(none)", None, True),  # a missing value is "(none)"
        ("campaign==(none)", "spring", False),
        ("campaign!=(none)", None, False),
        ("campaign!=(none)", "spring", True),
        ("source==(not recorded)", "(not recorded)", True),
        ("source==(not recorded)", None, False),
        ("page=~Pricing", "/en/pricing/teams", True),  # contains, case-insensitive
        ("page=~pricing", "/EN/PRICING", True),
        ("page=~pricing", "/about", False),
        ("page=~pricing", None, False),  # a missing value contains nothing
        ("page=~none", None, False),
        ("city=~straße", "STRASSE", True),  # casefold, not just lower
        ("page=~a==b", "/x?a==b", True),
    ],
)
def test_filter_matches(text, value, matches):
    assert parse_filter(text).matches(value) is matches


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("country", True),
        ("rule", True),
        ("prop:plan", True),
        ("prop:" + "k" * MAX_PROPERTY_KEY, True),
        ("prop:" + "k" * (MAX_PROPERTY_KEY + 1), False),
        ("prop:", False),
        ("prop: padded", False),
        ("Country", False),  # as stored in a Filter: lowercase
        ("colour", False),
        ("", False),
    ],
)
def test_is_dimension(name, valid):
    assert is_dimension(name) is valid


def test_property_key():
    assert property_key("prop:plan") == "plan"
    assert property_key("country") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source", "source"),
        (" Country ", "country"),
        ("prop:Plan", "prop:Plan"),
        ("PROP:x", "prop:x"),
    ],
)
def test_parse_dimension_reads_a_dimension_alone(text, expected):
    assert parse_dimension(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [("planet", "unknown_dimension"), ("", "unknown_dimension"), ("source==x", "unknown_dimension")]
    + [("prop:", "invalid_property_key")],
)
def test_parse_dimension_refuses_what_is_none(text, code):
    with pytest.raises(FilterError) as caught:
        parse_dimension(text)
    assert caught.value.code == code
