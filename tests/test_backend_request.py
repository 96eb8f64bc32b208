"""The backends' light request reads what werkzeug's Request reads, on the backends' paths."""

from __future__ import annotations

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from datalook.ingest.backend_request import BackendRequest


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", "/event", ""),
        ("POST", "/events", ""),
        ("POST", "/event", "validate=1"),
        ("POST", "/event", "validate=true&validate=0"),
        ("POST", "/event", "validate=%31&x=%E2%82%AC"),  # percent-encoded, UTF-8
        ("POST", "/event", "validate"),  # a key without a value
        ("GET", "/events", "a=1&b=2;c=3"),
        ("OPTIONS", "/event", ""),
        ("delete", "/event", ""),  # a lower-case method, as some clients send
    ],
)
def test_it_reads_as_werkzeug_does(method, path, query):
    environ = EnvironBuilder(method=method, path=path, query_string=query).get_environ()
    light, full = BackendRequest(environ), Request(environ)
    assert (light.method, light.path) == (full.method, full.path)
    assert list(light.args.items(multi=True)) == list(full.args.items(multi=True))
    assert light.environ is environ
