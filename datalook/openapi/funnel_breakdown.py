"""The schema of a funnel's `breakdown` (funnel.json and funnels/{funnel_id}.json with the
`breakdown` parameter)."""

from __future__ import annotations

from ..analytics.funnels import breakdown


def funnel_breakdown_schema(steps: dict) -> dict:
    """The `breakdown` object, its rows' `steps` as the funnel's own `steps` schema."""
    return {
        "type": "object",
        "required": ["dimension", "rows"],
        "additionalProperties": False,
        "description": "Present only with the `breakdown` parameter: per value of the "
        "channel or source of the visit where each visitor's step 1 happened (its first "
        "event's value), the funnel of those visitors; the rows add up to `steps`, most "
        "step-1 visitors first, then by value. `(none)`: a visit without a value, `(not "
        "recorded)`: one stored before the value was recorded.",
        "properties": {
            "dimension": {"type": "string", "enum": list(breakdown.DIMENSIONS)},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["value", "steps"],
                    "additionalProperties": False,
                    "properties": {"value": {"type": "string"}, "steps": steps},
                },
            },
        },
    }
