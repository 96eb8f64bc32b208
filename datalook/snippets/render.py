"""Ready-to-paste code snippets that send one server event, in 12 runtimes.

Each runtime is one Jinja template in ``templates/`` plus one entry in `RUNTIMES`.
Templates are rendered as plain text (autoescape off, StrictUndefined); every value that
comes from outside the template goes through a per-language quoting filter, so quotes,
``$``, ``#{}``, backslashes, ``*/`` or newlines can never leave a string literal or a comment.

Highlighting is the expensive part (about a millisecond per snippet), so each template is
rendered and highlighted once per endpoint URL with `PLACEHOLDER` where the key goes. A
request for a real key then only substitutes the key into the cached text and HTML. The real
key is never part of any cache key. A token only ever holds ``[A-Za-z0-9_]`` (checked against
`tokens.TOKEN_RE`), so it is its own escaped form in every language and in HTML.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name

from datalook.keys import tokens

TEMPLATE_DIR = Path(__file__).with_name("templates")
STYLESHEET_PATH = Path(__file__).resolve().parent.parent / "static" / "pygments.css"

#: Shown instead of a key everywhere but on the show-once page; also the substitution marker.
PLACEHOLDER = "YOUR_DATALOOK_API_KEY"
#: The environment variable every snippet reads the key from first.
ENV_VAR = "DATALOOK_API_KEY"

#: The example event of the public docs, sent by every snippet.
EXAMPLE_EVENT: dict[str, Any] = {
    "event_name": "success",
    "name": "paid-customer",
    "page_path": "/checkout/success",
    "success_value": 9.99,
    "success_user_id": "user_42",
    "properties": {"plan": "starter"},
}

#: CSS class of the element wrapping highlighted code, and the prefix of Pygments' classes.
CODE_CSS_CLASS = "dl-code"
TOKEN_CLASS_PREFIX = "pg-"  # noqa: S105 - a CSS class prefix (Pygments "token"), no secret.
PYGMENTS_STYLE = "default"

# URL characters allowed by RFC 3986 (unreserved, reserved and percent signs).
_URL_RE = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Runtime:
    """One entry of the registry: a template and how to present and highlight it."""

    key: str
    label: str
    template: str
    lexer: str
    filename: str
    lexer_options: Mapping[str, Any] = field(default_factory=dict)


RUNTIMES: tuple[Runtime, ...] = (
    Runtime("curl", "curl", "curl.sh.j2", "bash", "send_event.sh"),
    Runtime("node", "Node fetch", "node.mjs.j2", "javascript", "send_event.mjs"),
    Runtime("python", "Python requests", "python.py.j2", "python", "send_event.py"),
    Runtime("ruby", "Ruby Net::HTTP", "ruby.rb.j2", "ruby", "send_event.rb"),
    Runtime("php", "PHP cURL", "php.php.j2", "php", "send_event.php"),
    Runtime("go", "Go net/http", "go.go.j2", "go", "main.go"),
    Runtime("java", "Java HttpClient", "java.java.j2", "java", "Main.java"),
    Runtime("csharp", "C# HttpClient", "csharp.cs.j2", "csharp", "Program.cs"),
    Runtime("rust", "Rust reqwest", "rust.rs.j2", "rust", "src/main.rs"),
    Runtime("elixir", "Elixir Req", "elixir.exs.j2", "elixir", "send_event.exs"),
    Runtime("nextjs", "Next.js Server Action", "nextjs.ts.j2", "typescript", "app/actions.ts"),
    Runtime(
        "powershell",
        "PowerShell",
        "powershell.ps1.j2",
        "powershell",
        "send_event.ps1",
    ),
)
RUNTIMES_BY_KEY: dict[str, Runtime] = {runtime.key: runtime for runtime in RUNTIMES}


@dataclass(frozen=True, slots=True)
class Snippet:
    """One rendered snippet: `text` is what gets copied, `html` the highlighted spans."""

    key: str
    label: str
    filename: str
    text: str
    html: Markup


# --- quoting filters ------------------------------------------------------------------------
# Each string filter returns a complete literal, quotes included, and writes everything outside
# printable ASCII as an escape, so the generated files are pure ASCII.


def _printable_ascii(char: str) -> bool:
    return " " <= char <= "~"


def _utf16_units(char: str) -> list[int]:
    encoded = char.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(encoded[i : i + 2], "big") for i in range(0, len(encoded), 2)]


def _no_surrogates(value: str) -> str:
    """Replace lone surrogates (not text; no language can write them) with U+FFFD."""
    return re.sub("[\ud800-\udfff]", "\ufffd", str(value))


def _escape_each(value: str, escape_char: Callable[[str], str | None]) -> str:
    return "".join(escape_char(char) or char for char in _no_surrogates(value))


_C_SIMPLE = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def py_str(value: str) -> str:
    """Quote a Python string literal."""

    def one(char: str) -> str | None:
        if char in _C_SIMPLE or char == '"':
            return _C_SIMPLE.get(char, '\\"')
        if _printable_ascii(char):
            return None
        code = ord(char)
        return (
            f"\\x{code:02x}"
            if code < 0x100
            else f"\\u{code:04x}"
            if code < 0x10000
            else (f"\\U{code:08x}")
        )

    return '"' + _escape_each(value, one) + '"'


def _utf16_escaper(quote: str) -> Callable[[str], str | None]:
    """Escape as JavaScript and C# do: \\uXXXX per UTF-16 unit (never \\x, which C# reads
    greedily)."""

    def one(char: str) -> str | None:
        if char in _C_SIMPLE or char == quote:
            return _C_SIMPLE.get(char, "\\" + quote)
        if _printable_ascii(char):
            return None
        return "".join(f"\\u{unit:04x}" for unit in _utf16_units(char))

    return one


def js_str(value: str) -> str:
    """Quote a JavaScript/TypeScript single-quoted string literal."""
    return "'" + _escape_each(value, _utf16_escaper("'")) + "'"


def js_key(value: str) -> str:
    """Write an object key: bare when it is a plain identifier, else a string literal."""
    return value if _IDENTIFIER_RE.fullmatch(value) else js_str(value)


def cs_str(value: str) -> str:
    """Quote a C# regular string literal."""
    return '"' + _escape_each(value, _utf16_escaper('"')) + '"'


def java_str(value: str) -> str:
    """Quote a Java string literal.

    Java turns \\uXXXX into characters before it parses anything, so a \\u000a would end the
    line inside the literal: control characters use octal escapes instead.
    """

    def one(char: str) -> str | None:
        if char in _C_SIMPLE or char == '"':
            return _C_SIMPLE.get(char, '\\"')
        if _printable_ascii(char):
            return None
        if ord(char) < 0x80:
            return f"\\{ord(char):03o}"
        return "".join(f"\\u{unit:04x}" for unit in _utf16_units(char))

    return '"' + _escape_each(value, one) + '"'


def java_text_block(value: str, indent: int = 0) -> str:
    """Write a Java text block (Java 15+) holding `value` exactly, indented by `indent`."""
    pad = " " * indent
    body = str(value).replace("\\", "\\\\")
    while '"""' in body:
        body = body.replace('"""', '""\\"')
    lines = body.split("\n")
    escaped_lines = []
    for line in lines:
        # Control and non-ASCII characters: \uXXXX is safe here because every backslash
        # of the value was doubled above (a doubled backslash never starts a unicode escape).
        escaped = _escape_each(
            line,
            lambda c: (
                None
                if _printable_ascii(c)
                else (
                    f"\\{ord(c):03o}"
                    if ord(c) < 0x80
                    else "".join(f"\\u{unit:04x}" for unit in _utf16_units(c))
                )
            ),
        )
        # A trailing space would be stripped by the compiler: keep it with \s.
        if escaped.endswith(" "):
            escaped = escaped[:-1] + "\\s"
        escaped_lines.append(pad + escaped if escaped else "")
    return '"""\n' + "\n".join(escaped_lines) + "\n" + pad + '"""'


def go_str(value: str) -> str:
    """Quote a Go interpreted string literal."""

    def one(char: str) -> str | None:
        if char in _C_SIMPLE or char == '"':
            return _C_SIMPLE.get(char, '\\"')
        if _printable_ascii(char):
            return None
        code = ord(char)
        if code < 0x80:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

    return '"' + _escape_each(value, one) + '"'


def _braced_unicode_escaper(extra: Mapping[str, str]) -> Callable[[str], str | None]:
    """Escape as Rust, Ruby and Elixir do: \\xNN below 0x80, \\u{X} for everything else."""

    def one(char: str) -> str | None:
        if char in _C_SIMPLE or char in extra:
            return _C_SIMPLE.get(char) or extra[char]
        if _printable_ascii(char):
            return None
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x80 else f"\\u{{{code:x}}}"

    return one


def rust_str(value: str) -> str:
    """Quote a Rust string literal."""
    return '"' + _escape_each(value, _braced_unicode_escaper({'"': '\\"'})) + '"'


# Ruby and Elixir interpolate "#{...}" (Ruby also "#@x" and "#$x"): escape every "#".
_INTERPOLATING = {'"': '\\"', "#": "\\#"}


def ruby_str(value: str) -> str:
    """Quote a Ruby double-quoted string literal with every interpolation escaped."""
    return '"' + _escape_each(value, _braced_unicode_escaper(_INTERPOLATING)) + '"'


def ruby_key(value: str) -> str:
    """Write a hash key as a symbol: `plan:` or `"odd key":`."""
    return f"{value}:" if _IDENTIFIER_RE.fullmatch(value) else ruby_str(value) + ":"


def elixir_str(value: str) -> str:
    """Quote an Elixir string literal with every interpolation escaped."""
    return '"' + _escape_each(value, _braced_unicode_escaper(_INTERPOLATING)) + '"'


def elixir_key(value: str) -> str:
    """Write a map key in keyword form: `plan:` or `"odd key":`."""
    return f"{value}:" if _IDENTIFIER_RE.fullmatch(value) else elixir_str(value) + ":"


def _concatenation(
    value: str, quote_run: Callable[[str], str], char_expr: Callable[[str], str], op: str
) -> str:
    """Quote printable ASCII runs and join them with expressions for every other character."""
    parts: list[str] = []
    run = ""
    for char in _no_surrogates(value):
        if _printable_ascii(char):
            run += char
            continue
        if run or not parts:
            parts.append(quote_run(run))
            run = ""
        parts.append(char_expr(char))
    if run or not parts:
        parts.append(quote_run(run))
    return parts[0] if len(parts) == 1 else "(" + f" {op} ".join(parts) + ")"


def php_str(value: str) -> str:
    """Quote a PHP single-quoted string (no `$` interpolation); other characters as "\\u{X}"."""
    return _concatenation(
        value,
        lambda run: "'" + run.replace("\\", "\\\\").replace("'", "\\'") + "'",
        lambda char: f'"\\u{{{ord(char):x}}}"',
        ".",
    )


def ps_str(value: str) -> str:
    """Quote a PowerShell single-quoted string ('' doubling); other characters as [char]."""
    return _concatenation(
        value,
        lambda run: "'" + run.replace("'", "''") + "'",
        lambda char: " + ".join(f"[char]0x{unit:04x}" for unit in _utf16_units(char)),
        "+",
    )


def ps_key(value: str) -> str:
    """Write a hashtable key: bare when it is a plain identifier, else a quoted string."""
    return value if _IDENTIFIER_RE.fullmatch(value) else ps_str(value)


def sh_squote(value: str) -> str:
    """Quote for a POSIX shell with single quotes (nothing inside is special but `'`)."""
    return "'" + str(value).replace("'", "'\\''") + "'"


def comment(value: str) -> str:
    """Make text safe inside a line comment of any of the runtimes.

    Line breaks (including U+2028/U+0085, which end comments in JavaScript and C#), other
    control and non-ASCII characters and backslashes (Java's \\u escapes) become
    percent-escapes; the comment terminators `*/`, `/*` and PHP's `?>` are broken up.
    """
    out = []
    for char in _no_surrogates(value):
        if _printable_ascii(char) and char != "\\":
            out.append(char)
        else:
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8", "replace")))
    text = "".join(out)
    return text.replace("*/", "*%2F").replace("/*", "%2F*").replace("?>", "?%3E")


def number(value: int | float) -> str:
    """Write a finite number literal that every runtime reads alike."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(value)


def json_text(value: Any, indent: int = 2) -> str:
    """Serialise to JSON, ASCII only, for runtimes that post a JSON document literally."""
    return json.dumps(value, indent=indent, ensure_ascii=True)


FILTERS: dict[str, Callable[..., str]] = {
    "py_str": py_str,
    "js_str": js_str,
    "js_key": js_key,
    "ruby_str": ruby_str,
    "ruby_key": ruby_key,
    "php_str": php_str,
    "go_str": go_str,
    "java_str": java_str,
    "java_text_block": java_text_block,
    "cs_str": cs_str,
    "rust_str": rust_str,
    "elixir_str": elixir_str,
    "elixir_key": elixir_key,
    "sh_squote": sh_squote,
    "ps_str": ps_str,
    "ps_key": ps_key,
    "comment": comment,
    "number": number,
    "json_text": json_text,
}


@functools.cache
def environment() -> jinja2.Environment:
    """Return the Jinja environment of the snippet templates (plain text, strict)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=False,  # noqa: S701 - renders code, not HTML; Pygments escapes it afterwards.
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def render_text(
    runtime: Runtime | str,
    endpoint_url: str,
    key: str = PLACEHOLDER,
    event: Mapping[str, Any] | None = None,
) -> str:
    """Render one template as plain text; no validation (tests feed hostile values here)."""
    if isinstance(runtime, str):
        runtime = RUNTIMES_BY_KEY[runtime]
    return (
        environment()
        .get_template(runtime.template)
        .render(
            endpoint_url=endpoint_url,
            api_key=key,
            env_var=ENV_VAR,
            event=EXAMPLE_EVENT if event is None else event,
        )
    )


# --- highlighting ---------------------------------------------------------------------------


@functools.cache
def _formatter() -> HtmlFormatter:
    return HtmlFormatter(nowrap=True, classprefix=TOKEN_CLASS_PREFIX, style=PYGMENTS_STYLE)


def highlight_text(runtime: Runtime, text: str) -> str:
    """Highlight plain text as HTML spans with CSS classes (no wrapper, no inline style)."""
    lexer = get_lexer_by_name(runtime.lexer, stripnl=False, **runtime.lexer_options)
    return highlight(text, lexer, _formatter())


def stylesheet() -> str:
    """Return the CSS of the highlighted code, scoped to the code wrapper element."""
    selector = f".{CODE_CSS_CLASS}"
    formatter = _formatter()
    lines = [
        "/* Generated by datalook.snippets.render.write_stylesheet(); do not edit by hand. */",
        *formatter.get_background_style_defs(selector),
        *formatter.get_token_style_defs(selector),
    ]
    return "\n".join(lines) + "\n"


def write_stylesheet(path: str | Path = STYLESHEET_PATH) -> None:
    """Write `stylesheet()` to `path` (the committed static/pygments.css by default)."""
    Path(path).write_text(stylesheet(), encoding="utf-8")


# --- rendering ------------------------------------------------------------------------------


def validate_endpoint_url(endpoint_url: str) -> str:
    """Return the URL if it is an absolute http(s) URL of plain URL characters."""
    if not isinstance(endpoint_url, str) or not _URL_RE.fullmatch(endpoint_url):
        raise ValueError("endpoint URL must be an absolute http(s) URL of plain URL characters")
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("endpoint URL must be an absolute http(s) URL")
    if PLACEHOLDER in endpoint_url:
        raise ValueError("endpoint URL must not contain the key placeholder")
    return endpoint_url


@functools.lru_cache(maxsize=16)
def _placeholder_snippets(endpoint_url: str) -> tuple[Snippet, ...]:
    """Render and highlight every runtime once for a URL, with the placeholder as the key."""
    snippets = []
    for runtime in RUNTIMES:
        text = render_text(runtime, endpoint_url)
        html = highlight_text(runtime, text)
        # The substitution relies on the placeholder surviving highlighting in one piece.
        if text.count(PLACEHOLDER) == 0 or html.count(PLACEHOLDER) != text.count(PLACEHOLDER):
            raise RuntimeError(f"{runtime.template}: the key placeholder is split or missing")
        # Pygments escaped every character of the text; the rest is its own markup.
        markup = Markup(html)  # noqa: S704
        snippets.append(Snippet(runtime.key, runtime.label, runtime.filename, text, markup))
    return tuple(snippets)


def render(endpoint_url: str, token: str | None) -> list[Snippet]:
    """Return every runtime's snippet posting the example event to `endpoint_url`.

    With `token` None the snippets show `PLACEHOLDER`; a real token must be well formed.
    """
    cached = _placeholder_snippets(validate_endpoint_url(endpoint_url))
    if token is None:
        return list(cached)
    if not isinstance(token, str) or not tokens.TOKEN_RE.fullmatch(token):
        raise ValueError("not a well-formed DataLook token")
    html_token = str(escape(token))  # Equal to the token (its alphabet needs no escaping).
    return [
        Snippet(
            snippet.key,
            snippet.label,
            snippet.filename,
            snippet.text.replace(PLACEHOLDER, token),
            Markup(str(snippet.html).replace(PLACEHOLDER, html_token)),  # noqa: S704 - escaped
        )
        for snippet in cached
    ]
