"""Reading an API request's body: content type, size cap, then JSON, each refused precisely."""

from __future__ import annotations

import json
import re

import orjson

from ..envelope import ApiError

_LONG_DIGIT_RUN = re.compile(rb"\d{19}")
_CHUNK = 64 * 1024


def read_json(environ: dict, max_bytes: int) -> object:
    """Check the content type and size, then parse the body; raise ApiError when unusable."""
    return parse_json(read_body(environ, max_bytes))


def read_body(environ: dict, max_bytes: int) -> bytes:
    """The body's bytes, once its content type and size are checked and it is not empty;
    raise ApiError when unusable."""
    # Straight from the WSGI environ: werkzeug's parsed headers cost more than the checks.
    media_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the event as JSON with 'Content-Type: application/json'.",
        )
    raw = _read_capped(environ, max_bytes)
    if raw is None:
        raise ApiError(
            413, "payload_too_large", f"The body is larger than {max_bytes // 1024} KiB."
        )
    # Kept for the refused-request log's excerpt, should the body be refused (refusals.py).
    environ["datalook.raw_body"] = raw
    if not raw.strip():
        raise ApiError(400, "invalid_json", "The request body is empty; send a JSON object.")
    return raw


def _read_capped(environ: dict, max_bytes: int) -> bytes | None:
    """The body, or None when it is larger than `max_bytes`; a broken stream is a 400."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH", "")
    try:
        if length.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
            # The usual case: refused from Content-Length alone, or read exactly that many
            # bytes (the server ends the stream there).
            if int(length) > max_bytes:
                return None
            raw = stream.read(int(length))
            return raw if len(raw) <= max_bytes else None
        if not environ.get("wsgi.input_terminated"):
            # Neither a length nor a server that ends the stream (as werkzeug decides):
            # reading could wait forever, so there is no body.
            return b""
        # No length (chunked): read one byte past the cap, which means "too large".
        parts: list[bytes] = []
        size = 0
        while size <= max_bytes:
            part = stream.read(min(_CHUNK, max_bytes + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
        return b"".join(parts) if size <= max_bytes else None
    except Exception as exc:
        # Whatever the server's reader raises for a malformed stream (a chunk size that is
        # not hex, no final chunk, a disconnect): the client's request is broken, not us.
        raise ApiError(
            400, "invalid_body", "The request body could not be read (malformed or incomplete)."
        ) from exc


def parse_json(raw: bytes) -> object:
    """Parse JSON exactly: integers beyond 64 bits stay exact, NaN and Infinity are refused."""
    try:
        # orjson would turn an integer beyond 64 bits into a rounded float; such bodies
        # (rare: 19 digits in a row) go to the standard parser, which keeps them exact.
        if _LONG_DIGIT_RUN.search(raw):
            parsed = json.loads(raw, parse_constant=_refuse_constant)
            # Refuse lone surrogates ("\ud800") as orjson.loads does: they cannot be stored.
            json.dumps(parsed, ensure_ascii=False).encode()
            return parsed
        return orjson.loads(raw)
    except RecursionError:
        # Only the standard parser recurses; orjson refuses deep nesting itself.
        raise ApiError(400, "invalid_json", "The body is nested too deeply.") from None
    except ValueError as exc:  # orjson's JSONDecodeError and UnicodeEncodeError included
        raise ApiError(
            400, "invalid_json", f"The body is not valid JSON: {str(exc)[:80]}"
        ) from None


def _refuse_constant(name: str) -> None:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not valid JSON")
