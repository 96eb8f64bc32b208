"""Ids in URLs: a number past the database's 64-bit integers is no page (404), never a 500."""

from __future__ import annotations

import pytest

from tests.conftest import add_site

TOO_BIG = [
    "9223372036854775808",  # 2^63: one past the largest row id
    "99999999999999999999999",
    "18446744073709551616",  # 2^64
]

URLS = [
    "/sites/{big}/live.json",
    "/sites/{big}/stats.json",
    "/sites/{big}/journeys.json",
    "/sites/{big}/",
    "/sites/{site}/funnels/{big}.json",
    "/sites/{site}/funnels/{big}",
]


@pytest.mark.parametrize("template", URLS)
@pytest.mark.parametrize("big", TOO_BIG)
def test_an_id_past_64_bits_is_not_found(client, owner, template, big):
    site = add_site(client, "ids.example")
    response = client.get(template.format(big=big, site=site))
    assert response.status_code == 404


def test_the_largest_row_id_still_reaches_the_route(client, owner):
    site = add_site(client, "ids.example")
    response = client.get(f"/sites/{site}/funnels/9223372036854775807.json")
    # The route ran and looked the funnel up: none with that id on this site.
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
