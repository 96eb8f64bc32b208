"""The snippet registry, renderer, quoting filters, highlighting and the tabs partial."""

from __future__ import annotations

import ast
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
from pygments import lex
from pygments.lexers import get_lexer_by_name
from pygments.token import Error

import datalook
from datalook.keys import tokens
from datalook.snippets import render as snippets
from datalook.snippets import stats_api

GOLDEN_DIR = Path(__file__).with_name("snippets_golden")
GOLDEN_URL = "https://datalook.example/event"
# Format-valid (matches tokens.TOKEN_RE) but not a real key.
GOLDEN_TOKEN = "dl_live_GoldenKeyId0_" + "T3stS3cretT3stS3cretT3stS3cretAB" + "cDeF12"
TOKEN_LIKE = re.compile(r"dl_live_[A-Za-z0-9]{4,}")
KEYS = [runtime.key for runtime in snippets.RUNTIMES]

# Values for every escaped field: each must stay inside its literal or comment.
HOSTILE = [
    "it's",
    'say "hi"',
    "$HOME ${HOME} $(id) `id` %PATH%",
    "#{raise 'boom'} #@ivar #$global",
    "back\\slash\\",
    "trailing backslash \\",
    "end */ /* start // -- ?> <?php",
    "line\nbreak\r\nand\ttab",
    "\\u000a \\u0022 \\x41 \\n",
    "unicode \u00e9 \u2713 \U0001f600 \u2028 \u2029 \u0085",
    "controls \x00 \x1b \x7f",
    "'''\"\"\" ''",
    "{{ x }} {% y %} {# z #} %s {0}",
    "\u2018smart\u2019 \u201cquotes\u201d",
    "",
]


def hostile_event(value: str) -> dict:
    return {
        "event_name": value,
        "name": value,
        "page_path": "/" + value,
        "success_value": 9.99,
        "success_user_id": value,
        "properties": {value or "empty": value, "plan": "starter"},
    }


def hostile_url(value: str) -> str:
    return "https://datalook.example/event?q=" + value


def run_ok(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command with a minimal environment; fail with its output unless it exits 0."""
    kwargs.setdefault("env", {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")})
    result = subprocess.run(args, capture_output=True, timeout=120, **kwargs)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def require_tool(name: str) -> str:
    """Return the tool's path, or skip (fail under DATALOOK_REQUIRE_ALL=1) when it is missing."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed"
    if os.environ.get("DATALOOK_REQUIRE_ALL") == "1":
        pytest.fail(message)
    pytest.skip(message)


# --- registry and rendering -----------------------------------------------------------------


def test_registry_has_twelve_runtimes_each_with_its_own_template():
    assert len(snippets.RUNTIMES) == 12
    assert len(set(KEYS)) == 12
    templates = {path.name for path in snippets.TEMPLATE_DIR.iterdir()}
    # The folder also holds the Stats API's examples (curl, Python, Node), a registry of their own.
    expected = {runtime.template for runtime in snippets.RUNTIMES + stats_api.RUNTIMES}
    assert templates == expected
    for runtime in snippets.RUNTIMES:
        get_lexer_by_name(runtime.lexer)


def test_render_returns_every_runtime_in_registry_order():
    result = snippets.render(GOLDEN_URL, GOLDEN_TOKEN)
    assert [s.key for s in result] == KEYS
    for snippet, runtime in zip(result, snippets.RUNTIMES, strict=True):
        assert (snippet.label, snippet.filename) == (runtime.label, runtime.filename)
        assert GOLDEN_TOKEN in snippet.text
        assert GOLDEN_TOKEN in snippet.html
        assert snippets.PLACEHOLDER not in snippet.text
        assert snippets.PLACEHOLDER not in snippet.html
        assert snippets.ENV_VAR in snippet.text
        assert "secrets manager" in snippet.text
        assert GOLDEN_URL in snippet.text


@pytest.mark.parametrize("key", KEYS)
def test_golden(key):
    """Catch unintended changes; DATALOOK_UPDATE_GOLDEN=1 rewrites the files."""
    snippet = {s.key: s for s in snippets.render(GOLDEN_URL, GOLDEN_TOKEN)}[key]
    runtime = snippets.RUNTIMES_BY_KEY[key]
    path = GOLDEN_DIR / f"{key}{Path(runtime.filename).suffix}"
    if os.environ.get("DATALOOK_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(snippet.text, encoding="utf-8")
    assert snippet.text == path.read_text(encoding="utf-8")


def test_placeholder_everywhere_without_a_token():
    for snippet in snippets.render(GOLDEN_URL, None):
        assert snippets.PLACEHOLDER in snippet.text
        assert snippets.PLACEHOLDER in snippet.html
        assert not TOKEN_LIKE.search(snippet.text), snippet.key
        assert not TOKEN_LIKE.search(snippet.html), snippet.key


def test_real_token_never_reaches_the_cache():
    token = tokens.generate().token
    snippets.render(GOLDEN_URL, token)
    for snippet in snippets.render(GOLDEN_URL, None):
        assert token not in snippet.text
        assert token not in snippet.html


@pytest.mark.parametrize(
    "token",
    [
        "",
        "dl_live_short",
        "sk_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12",
        GOLDEN_TOKEN + "x",
        GOLDEN_TOKEN[:-1] + "'",
        GOLDEN_TOKEN[:-1] + "$",
        GOLDEN_TOKEN + "\n",
        " " + GOLDEN_TOKEN,
        snippets.PLACEHOLDER,
        42,
    ],
)
def test_bad_token_raises(token):
    with pytest.raises(ValueError):
        snippets.render(GOLDEN_URL, token)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/event",
        "ftp://datalook.example/event",
        "javascript:alert(1)",
        "http:///event",
        "https://datalook.example/ev ent",
        "https://datalook.example/event\n",
        'https://datalook.example/"event',
        "https://datalook.example/\\event",
        "https://datalook.example/{event}",
        "https://datalook.example/\u00e9",
        f"https://datalook.example/{snippets.PLACEHOLDER}",
    ],
)
def test_bad_endpoint_url_raises(url):
    with pytest.raises(ValueError):
        snippets.render(url, None)


def test_url_characters_that_need_quoting_are_accepted():
    url = "https://datalook.example:8443/event?src=it's&cost=$5*/x#frag"
    for snippet in snippets.render(url, None):
        assert snippet.text.count(snippets.PLACEHOLDER) >= 1


# --- escaping: a table over all 12 runtimes -------------------------------------------------


def _check_python(text: str, url: str, event: dict, tmp_path: Path) -> None:
    tree = ast.parse(text)
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "post"
    ]
    assert len(calls) == 1
    assert ast.literal_eval(calls[0].args[0]) == url
    kwargs = {kw.arg: kw.value for kw in calls[0].keywords}
    assert ast.literal_eval(kwargs["json"]) == event


def _check_curl(text: str, url: str, event: dict, tmp_path: Path) -> None:
    bash = require_tool("bash")
    script = tmp_path / "send_event.sh"
    script.write_text(text, encoding="utf-8")
    stub = 'curl() { printf "%s\\0" "$@"; }\n. "$1"\n'
    out = run_ok([bash, "-c", stub, "bash", str(script)]).stdout
    args = [arg.decode("utf-8", "surrogateescape") for arg in out.split(b"\0")[:-1]]
    # No shell argument can hold a NUL byte (C strings): bash drops it, nothing else changes.
    assert args[args.index("--request") + 1 :][:2] == ["POST", url.replace("\0", "")]
    assert json.loads(args[args.index("--data") + 1]) == event


_NODE_HARNESS = r"""
const calls = [];
globalThis.fetch = async (url, init) => {
  calls.push({ url, init: { ...init, signal: undefined } });
  return { status: 204, text: async () => '' };
};
const module = await import(process.argv[2]);
if (module.sendSuccessEvent) await module.sendSuccessEvent();
process.stdout.write('\n' + JSON.stringify(calls) + '\n');
"""


def strip_nextjs_types(text: str) -> str:
    """Turn the Server Action module into plain JavaScript (its only annotation is known)."""
    annotation = "(): Promise<void> {"
    assert text.count(annotation) == 1
    return text.replace(annotation, "() {")


def _check_node(text: str, url: str, event: dict, tmp_path: Path) -> None:
    node = require_tool("node")
    source = tmp_path / "snippet.mjs"
    source.write_text(text, encoding="utf-8")
    harness = tmp_path / "harness.mjs"
    harness.write_text(_NODE_HARNESS, encoding="utf-8")
    out = run_ok([node, str(harness), source.as_uri()], text=True).stdout
    (call,) = json.loads(out.rstrip("\n").rsplit("\n", 1)[-1])
    assert call["url"] == url
    assert json.loads(call["init"]["body"]) == event


def _check_nextjs(text: str, url: str, event: dict, tmp_path: Path) -> None:
    _check_node(strip_nextjs_types(text), url, event, tmp_path)


def _syntax_check(tool: str, args: list[str], filename: str):
    def check(text: str, url: str, event: dict, tmp_path: Path) -> None:
        path = require_tool(tool)
        source = tmp_path / filename
        source.write_text(text, encoding="utf-8")
        run_ok([path, *args, str(source)])

    return check


_ELIXIR_PARSE = "Code.string_to_quoted!(File.read!(hd(System.argv())), file: hd(System.argv()))"


def _check_pygments(text: str, lexer: str) -> None:
    errors = [value for token, value in lex(text, get_lexer_by_name(lexer)) if token in Error]
    assert not errors, errors


CHECKS = {
    "curl": _check_curl,
    "node": _check_node,
    "python": _check_python,
    "ruby": _syntax_check("ruby", ["-c"], "send_event.rb"),
    "php": _syntax_check("php", ["-l"], "send_event.php"),
    "go": _syntax_check("gofmt", ["-e", "-l"], "main.go"),
    "elixir": _syntax_check("elixir", ["-e", _ELIXIR_PARSE], "send_event.exs"),
    "nextjs": _check_nextjs,
}
# Java, C# and Rust compile in seconds, not milliseconds: tests/test_snippets_run.py compiles
# and runs them with a hostile payload; here the lexer must at least see no broken token.
LEXER_ONLY = {"java", "csharp", "rust", "powershell"}


def test_every_runtime_has_an_escaping_check():
    assert set(CHECKS) | LEXER_ONLY == set(KEYS)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_stay_inside_literals_and_comments(key, value, tmp_path):
    runtime = snippets.RUNTIMES_BY_KEY[key]
    url, event = hostile_url(value), hostile_event(value)
    text = snippets.render_text(runtime, url, event=event)
    # The header comment is a single line whatever the URL holds.
    assert "\n" not in snippets.comment(url)
    assert text.count(snippets.PLACEHOLDER) >= 1
    _check_pygments(text, runtime.lexer)
    if key in CHECKS:
        CHECKS[key](text, url, event, tmp_path)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_comment_filter_neutralises_terminators(value):
    text = snippets.comment(value)
    for forbidden in ("\n", "\r", "\u2028", "\u2029", "\u0085", "*/", "/*", "?>", "\\"):
        assert forbidden not in text
    assert text.isascii()


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_string_filters_write_ascii_only(value):
    for name, function in snippets.FILTERS.items():
        if name.endswith(("_str", "_key")) or name == "java_text_block":
            assert function(value).isascii(), name


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_python_and_javascript_filters_round_trip(value):
    assert ast.literal_eval(snippets.py_str(value)) == value
    # A JavaScript single-quoted literal with only \\ \\' \\n \\r \\t \\uXXXX escapes is JSON
    # once the quotes are swapped.
    literal = snippets.js_str(value)[1:-1].replace("\\'", "'").replace('"', '\\"')
    assert json.loads('"' + literal + '"') == value


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_shell_and_powershell_quoting(value):
    quoted = snippets.sh_squote(value)
    assert quoted.startswith("'") and quoted.endswith("'")
    assert quoted[1:-1].replace("'\\''", "").count("'") == 0
    ps = snippets.ps_str(value)
    # Inside PowerShell single quotes only a doubled quote may appear, smart quotes included.
    for literal in re.findall(r"'((?:[^'\u2018-\u201b]|'')*)'", ps):
        assert not re.search(r"[\u2018-\u201b]", literal)


def test_powershell_lexes_without_errors():
    for token in (None, GOLDEN_TOKEN):
        text = {s.key: s for s in snippets.render(GOLDEN_URL, token)}["powershell"].text
        _check_pygments(text, "powershell")
        assert "Invoke-RestMethod" in text
        assert "TimeoutSec" in text


def test_nextjs_keeps_the_key_server_only():
    text = {s.key: s for s in snippets.render(GOLDEN_URL, GOLDEN_TOKEN)}["nextjs"].text
    assert text.startswith("'use server';")
    assert "process.env.NEXT_PUBLIC_" not in text
    assert f"process.env.{snippets.ENV_VAR}" in text


def test_runtime_specific_requirements():
    texts = {s.key: s.text for s in snippets.render(GOLDEN_URL, GOLDEN_TOKEN)}
    assert texts["php"].startswith("<?php\n")
    assert "curl_close" not in texts["php"]
    assert 'features = ["blocking", "json"]' in texts["rust"]
    assert "serde_json" in texts["rust"]
    assert 'Mix.install([{:req, "~> 0.5"}])' in texts["elixir"]
    assert "using System.Net.Http.Json;" in texts["csharp"]
    assert "java Main.java" in texts["java"]
    for key, timeout in {
        "curl": "--max-time 10",
        "node": "AbortSignal.timeout(10_000)",
        "python": "timeout=10",
        "ruby": "read_timeout: 10",
        "php": "CURLOPT_TIMEOUT => 10",
        "go": "Timeout: 10 * time.Second",
        "java": ".timeout(Duration.ofSeconds(10))",
        "csharp": "TimeSpan.FromSeconds(10)",
        "rust": ".timeout(Duration::from_secs(10))",
        "elixir": "receive_timeout: 10_000",
        "nextjs": "AbortSignal.timeout(10_000)",
        "powershell": "TimeoutSec  = 10",
    }.items():
        assert timeout in texts[key], key


# --- highlighting, stylesheet, the partial, speed -------------------------------------------


def test_highlighted_html_is_exactly_the_text():
    for snippet in snippets.render(GOLDEN_URL, GOLDEN_TOKEN):
        assert html.unescape(re.sub(r"<[^>]+>", "", snippet.html)) == snippet.text
        assert "style=" not in snippet.html
        assert 'class="pg-' in snippet.html


def test_committed_stylesheet_is_generated():
    committed = snippets.STYLESHEET_PATH.read_text(encoding="utf-8")
    assert committed == snippets.stylesheet()
    assert ".dl-code .pg-k" in committed
    assert "\npre " not in committed  # Scoped: nothing leaks onto other pages.


def test_write_stylesheet(tmp_path):
    path = tmp_path / "pygments.css"
    snippets.write_stylesheet(path)
    assert path.read_text(encoding="utf-8") == snippets.stylesheet()


def _render_partial(items) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(datalook.__file__).with_name("templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals["url_for"] = lambda endpoint, filename: f"/static/{filename}"
    template = env.from_string(
        '{% from "_snippets.html" import snippet_assets, snippet_tabs %}'
        "{{ snippet_assets() }}{{ snippet_tabs(items, id='quest') }}"
    )
    return template.render(items=items)


def test_partial_renders_accessible_tabs_without_inline_script_or_style():
    items = snippets.render(GOLDEN_URL, GOLDEN_TOKEN)
    page = _render_partial(items)
    assert "style=" not in page
    assert "<style" not in page
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/snippets.js" defer>']
    assert '<link rel="stylesheet" href="/static/pygments.css">' in page
    assert not re.search(r"\son[a-z]+=", page)  # No inline event handlers.
    assert page.count('role="tab"') == 12
    assert page.count('role="tabpanel"') == 12
    assert page.count('aria-selected="true"') == 1
    assert page.count(" hidden>") == 11
    assert page.count("data-copy-target=") == 12
    for snippet in items:
        code = re.search(
            rf'<code id="quest-code-{snippet.key}">(.*?)</code></pre>', page, re.DOTALL
        ).group(1)
        assert html.unescape(re.sub(r"<[^>]+>", "", code)) == snippet.text


def test_partial_escapes_nothing_twice():
    page = _render_partial(snippets.render(GOLDEN_URL, None))
    assert "&amp;#" not in page
    assert "&amp;quot;" not in page


def test_snippets_js_has_keyboard_support_and_copies_plain_text():
    script = (Path(datalook.__file__).with_name("static") / "snippets.js").read_text()
    for key in ("ArrowRight", "ArrowLeft", "Home", "End"):
        assert f"'{key}'" in script
    assert "navigator.clipboard.writeText(text)" in script
    assert "eval(" not in script and "innerHTML" not in script


def test_render_is_cheap_with_fresh_tokens_and_cached_highlighting():
    snippets.render(GOLDEN_URL, None)
    info = snippets._placeholder_snippets.cache_info()
    for _ in range(3):
        snippets.render(GOLDEN_URL, tokens.generate().token)
    assert snippets._placeholder_snippets.cache_info().misses == info.misses
