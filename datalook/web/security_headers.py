"""The security headers of every page, and the one exception: framing a shared link.

Pages send a CSP without inline scripts or styles and `frame-ancestors 'none'` with
`X-Frame-Options: DENY`. A shared link whose owner allows embedding sends its own
`frame-ancestors` list instead (`page_csp`) and then no X-Frame-Options: that header has no
way to name origins, and browsers would let it overrule the list.
"""

from __future__ import annotations

from flask import Response

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors {ancestors}; base-uri 'none'; form-action 'self'"
)
NO_FRAMING = "'none'"

PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def page_csp(frame_ancestors: str = NO_FRAMING) -> str:
    """The pages' Content-Security-Policy, with the origins allowed to frame the page."""
    return _CSP.format(ancestors=frame_ancestors)


def add_page_headers(response: Response) -> Response:
    """Add the page headers a view did not set itself; framing stays denied unless the view
    sent its own frame-ancestors list (a shared link that may be embedded)."""
    csp = response.headers.setdefault("Content-Security-Policy", page_csp())
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    if f"frame-ancestors {NO_FRAMING};" in csp:
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response
