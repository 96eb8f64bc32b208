"""Ready-to-paste Stats API examples: one GET per report endpoint, in curl, Python and Node,
with a read key (or its placeholder) and a site id filled in.

Rendered with the event snippets' templates environment (the same per-language quoting
filters) and highlighted by the same Pygments formatter; each set is rendered once per base
URL and site with the placeholder, and a real read key is only substituted into the text.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlencode

from markupsafe import Markup

from ..keys import tokens
from . import render

#: Shown instead of a read key everywhere but on the show-once page.
PLACEHOLDER = "YOUR_DATALOOK_READ_KEY"
#: The environment variable the examples read the key from first.
ENV_VAR = "DATALOOK_READ_KEY"
#: Shown instead of a site id when the reader has none of their own to fill in.
SITE_PLACEHOLDER = "YOUR_SITE_ID"

_STEPS = (
    '{"event_name": "pageview", "page_path": "/pricing"}',
    '{"event_name": "success", "name": "paid-customer"}',
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One report endpoint as the examples call it."""

    key: str
    summary: str
    path: str  # below /sites/<site_id>/
    query: tuple[tuple[str, str], ...]

    @property
    def csv(self) -> bool:
        """Whether the endpoint answers CSV (printed as text, not parsed as JSON)."""
        return self.path.endswith(".csv")


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "stats", "Totals, series, success rules and top pages", "stats.json", (("period", "30d"),)
    ),
    Endpoint(
        "breakdown",
        "Visitors by source",
        "breakdown.json",
        (("period", "30d"), ("dimension", "source")),
    ),
    Endpoint(
        "funnel",
        "An unsaved funnel",
        "funnel.json",
        (("period", "30d"), ("step", _STEPS[0]), ("step", _STEPS[1])),
    ),
    Endpoint(
        "saved_funnel",
        "A saved funnel (its id is in the funnels page's URL)",
        "funnels/1.json",
        (("period", "30d"),),
    ),
    Endpoint("journeys", "The most common journeys", "journeys.json", (("period", "30d"),)),
    Endpoint(
        "next_steps",
        "Where visitors go next from /pricing",
        "journeys/next.json",
        (("period", "30d"), ("path", "/pricing")),
    ),
    Endpoint("live", "The newest events (refused requests without their bodies)", "live.json", ()),
    Endpoint(
        "attribution",
        "Revenue of a success rule by the source of the visits that led to it",
        "attribution.json",
        (("period", "30d"), ("rule", "paid-customer"), ("model", "last"), ("dimension", "source")),
    ),
    Endpoint(
        "csv",
        "The totals as CSV (also series, rules, pages, breakdown)",
        "reports/totals.csv",
        (("period", "30d"),),
    ),
)

#: (runtime key, label, template, lexer, file name).
RUNTIMES = (
    render.Runtime("curl", "curl", "stats_curl.sh.j2", "bash", "stats.sh"),
    render.Runtime("python", "Python requests", "stats_python.py.j2", "python", "stats.py"),
    render.Runtime("node", "Node fetch", "stats_node.mjs.j2", "javascript", "stats.mjs"),
)


@dataclass(frozen=True, slots=True)
class Example:
    """One endpoint's examples in every runtime."""

    endpoint: Endpoint
    url: str
    snippets: tuple[render.Snippet, ...]


def endpoint_url(base_url: str, site_id: str, endpoint: Endpoint) -> str:
    """The full URL an example calls."""
    query = f"?{urlencode(endpoint.query)}" if endpoint.query else ""
    return f"{base_url}/sites/{site_id}/{endpoint.path}{query}"


@functools.lru_cache(maxsize=32)
def _placeholder_examples(base_url: str, site_id: str) -> tuple[Example, ...]:
    """Render and highlight every endpoint × runtime once, with the placeholder key."""
    render.validate_endpoint_url(base_url)
    env = render.environment()
    examples = []
    for endpoint in ENDPOINTS:
        url = endpoint_url(base_url, site_id, endpoint)
        snippets = []
        for runtime in RUNTIMES:
            text = env.get_template(runtime.template).render(
                url=url,
                api_key=PLACEHOLDER,
                env_var=ENV_VAR,
                summary=endpoint.summary,
                csv=endpoint.csv,
                filename=runtime.filename,
            )
            html = render.highlight_text(runtime, text)
            if html.count(PLACEHOLDER) != text.count(PLACEHOLDER) or PLACEHOLDER not in text:
                raise RuntimeError(f"{runtime.template}: the key placeholder is split or missing")
            markup = Markup(html)  # noqa: S704 - Pygments escaped every character of the text
            key = f"{endpoint.key}-{runtime.key}"
            snippets.append(render.Snippet(key, runtime.label, runtime.filename, text, markup))
        examples.append(Example(endpoint, url, tuple(snippets)))
    return tuple(examples)


def examples(base_url: str, site_id: int | None, token: str | None) -> list[Example]:
    """Every endpoint's examples for a site (or the placeholder) and a read key (or its
    placeholder); a real token must be a well-formed read key."""
    cached = _placeholder_examples(base_url, str(site_id) if site_id else SITE_PLACEHOLDER)
    if token is None:
        return list(cached)
    if not tokens.TOKEN_RE.fullmatch(token) or not token.startswith(tokens.READ_PREFIX):
        raise ValueError("not a well-formed read key")
    # A token only holds [A-Za-z0-9_]: it is its own escaped form in every language and HTML.
    return [
        Example(
            example.endpoint,
            example.url,
            tuple(
                render.Snippet(
                    s.key,
                    s.label,
                    s.filename,
                    s.text.replace(PLACEHOLDER, token),
                    Markup(str(s.html).replace(PLACEHOLDER, token)),  # noqa: S704 - escaped
                )
                for s in example.snippets
            ),
        )
        for example in cached
    ]
