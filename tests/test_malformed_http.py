"""Broken HTTP and pathological JSON against the real server (nginx in front of gunicorn, as
`make run` serves it): a precise 4xx or a closed connection, never a 5xx, never a traceback
in the log, and the server keeps answering (the bodies the outside audit sent)."""

from __future__ import annotations

import io
import socket

import pytest
import requests

from tests.factories import bearer

DEEP = 3000  # nesting far past Python's recursion limit


def raw_request(url: str, head: str, body: bytes, close_write: bool = False) -> bytes:
    """Send bytes as they are (no client library fixes them) and read the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        if close_write:
            sock.shutdown(socket.SHUT_WR)  # the body ends here, whatever it promised
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer; None when the server closed without one."""
    return int(answer.split(b" ", 2)[1]) if answer else None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "chunked", "close_write"),
    [
        pytest.param(b"zz\r\n{}\r\n0\r\n\r\n", True, False, id="chunk-size-not-hex"),
        pytest.param(b'5\r\n{"a":\r\n', True, True, id="no-final-chunk"),
        pytest.param(b"3\r\n{}\r\n0\r\n\r\n", True, False, id="chunk-shorter-than-its-size"),
        pytest.param(b'{"event_name"', False, True, id="shorter-than-content-length"),
    ],
)
def test_malformed_bodies_answer_400_not_500(live_server, body, chunked, close_write):
    token = live_server.new_token()
    framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: 500"
    head = (
        "POST /event HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\n{framing}\r\nConnection: close\r\n\r\n"
    )
    answer = raw_request(live_server.url, head, body, close_write)
    if close_write:
        # The client gave up before its body was complete: a closed connection, or a 400.
        assert status_of(answer) in (None, 400), answer[:300]
    else:
        assert status_of(answer) == 400, answer[:300]
    if answer:
        assert b'{"error":{"code":"' in answer  # the JSON envelope, from the front or the app
    log = live_server.read_log()
    assert "Traceback" not in log and "unhandled error" not in log
    valid = {"event_name": "pageview", "page_path": "/after"}
    after = requests.post(live_server.event_url, json=valid, headers=bearer(token), timeout=30)
    assert after.status_code == 204
    assert [e["page_path"] for e in live_server.stored_events()] == ["/after"]


NESTED = [
    pytest.param("[" * DEEP + "1234567890123456789" + "]" * DEEP, id="arrays-long-number"),
    pytest.param("[" * DEEP + "1" + "]" * DEEP, id="arrays"),
    pytest.param('{"a":' * DEEP + "12345678901234567890" + "}" * DEEP, id="objects-long-number"),
]


@pytest.mark.parametrize("body", NESTED)
@pytest.mark.parametrize("path", ["/event", "/events"])
def test_deep_nesting_is_invalid_json(client, made_token, caplog, path, body):
    answer = client.post(
        path,
        data=body,
        headers={**bearer(made_token), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "invalid_json"
    assert "Traceback" not in caplog.text


@pytest.fixture
def made_token(app) -> str:
    """A token of a fresh site (limit raised)."""
    from tests.factories import create_token

    return create_token(app).token


class BrokenStream(io.RawIOBase):
    """A request stream that fails the way a server's reader does on a malformed body."""

    def read(self, size: int = -1) -> bytes:
        raise ValueError("Invalid chunk size")


@pytest.mark.parametrize(
    "environ",
    [
        {"CONTENT_LENGTH": "10"},
        {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
    ],
)
def test_the_app_itself_answers_an_unreadable_body_400(environ):
    """Behind any front (or none), a reader error is the client's, never a 500."""
    from datalook.envelope import ApiError
    from datalook.ingest.body import read_json

    full = {"CONTENT_TYPE": "application/json", "wsgi.input": BrokenStream(), **environ}
    with pytest.raises(ApiError) as raised:
        read_json(full, 1024)
    assert (raised.value.code, raised.value.error_code) == (400, "invalid_body")
