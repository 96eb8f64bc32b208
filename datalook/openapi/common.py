"""Small builders shared by the parts of the OpenAPI description ($refs, code tables,
error answers)."""

from __future__ import annotations

#: The rate-limit headers of an answer to an authenticated ingestion request.
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
)

#: A message is for people: clients must not parse it.
MESSAGE = {"type": "string", "description": "For people; do not parse it."}


def ref(kind: str, name: str) -> dict:
    """Return a $ref to a component."""
    return {"$ref": f"#/components/{kind}/{name}"}


def enum_description(codes: dict[str, str]) -> str:
    """Render a code → meaning table as Markdown list for a schema description."""
    return "\n".join(f"- `{code}`: {meaning}" for code, meaning in codes.items())


def header_refs(*names: str) -> dict:
    """Map header names to $refs."""
    return {name: ref("headers", name) for name in names}


def error_response(description: str, *headers: str, example: dict | None = None) -> dict:
    """A response whose body is the error envelope."""
    media: dict = {"schema": ref("schemas", "Error")}
    if example is not None:
        media["example"] = example
    response: dict = {"description": description, "content": {"application/json": media}}
    if headers:
        response["headers"] = header_refs(*headers)
    return response
