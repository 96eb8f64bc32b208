"""What a visitor id is: every report counts visitors by the same rule."""

from __future__ import annotations


def is_visitor(visitor_id: str) -> bool:
    """A visitor id names a visitor unless it is a per-event anonymous id ("a:...")."""
    return not visitor_id.startswith("a:")
