"""The one error of a report parameter: which parameter, a machine-readable code, a message.

Every report parser (ranges, funnel definitions, journeys, filters) raises it, and one
handler in the web layer turns it into the JSON envelope (or a 400 page for people).
"""

from __future__ import annotations


class ParameterError(ValueError):
    """A report parameter that cannot be used; names the parameter for the JSON error."""

    def __init__(self, field: str, code: str, message: str) -> None:
        """Keep the field and the machine-readable code beside the message."""
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message
