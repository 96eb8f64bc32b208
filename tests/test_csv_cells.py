"""CSV downloads never hand a spreadsheet a formula: table-driven over the cells that could."""

from __future__ import annotations

import csv
import io

import pytest

from tests.test_analytics_api import _send, site  # noqa: F401 - the fixture

FORMULAS = [
    "=cmd",
    "+1+1",
    "-1+1",
    "@SUM(A1)",
    " =cmd",  # a space first
    "\t=cmd",  # a tab first
    "  \t =cmd",
    "\r=cmd",
    "\uff1dcmd",  # fullwidth equals sign
    " \uff1dcmd",
    "\uff0b1",  # fullwidth plus
    "\u3000=cmd",  # ideographic space first
]
HARMLESS = ["plain", "a=b", "/pricing", "1,5", "x@y"]


def _rows(client, site_id: int, report: str) -> list[list[str]]:
    """One CSV report of today, parsed."""
    answer = client.get(f"/sites/{site_id}/reports/{report}.csv?period=today&key=k")
    assert answer.status_code == 200
    return list(csv.reader(io.StringIO(answer.get_data(as_text=True))))


@pytest.mark.parametrize("value", FORMULAS)
def test_a_property_value_that_could_run_is_neutralised(client, site, value):  # noqa: F811
    site_id, ingest, headers = site
    _send(ingest, headers, event_name="pageview", properties={"k": value})
    cells = [row[0] for row in _rows(client, site_id, "breakdown")[1:]]
    assert cells == ["'" + value]


@pytest.mark.parametrize("value", ["\uff1dcmd", "@cmd", "+cmd"])
def test_a_rule_name_that_could_run_is_neutralised(client, site, value):  # noqa: F811
    site_id, ingest, headers = site
    _send(ingest, headers, event_name="success", name=value, success_value=1)
    names = [row[0] for row in _rows(client, site_id, "rules")[1:]]
    assert names == ["'" + value]


@pytest.mark.parametrize("value", HARMLESS)
def test_harmless_values_are_kept_as_sent(client, site, value):  # noqa: F811
    site_id, ingest, headers = site
    _send(ingest, headers, event_name="pageview", properties={"k": value})
    cells = [row[0] for row in _rows(client, site_id, "breakdown")[1:]]
    assert cells == [value]
