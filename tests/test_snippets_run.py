"""Prove the snippets run: render each with a live server's URL and a real key, execute it,
and check that the server stored exactly the event the snippet sends.

Executed for real: curl, Python, Node, the Next.js action (its types stripped, run under Node),
Ruby, PHP, Go, Java and C# (mono; `System.Net.Http.Json` is not in mono, so a stand-in
`PostAsJsonAsync` with the same call shape is compiled beside it). Rust and Elixir packages
cannot be fetched here: the Rust snippet compiles against stand-in `reqwest`/`serde_json`
crates and the Elixir script runs against a stand-in `Req`, each with the real call shapes and
doing the real HTTP request. PowerShell is lexed and golden-tested in test_snippets.py.

Each runtime runs three times: the docs' example event, a hostile event (quotes, `$`, `#{}`,
backslashes, `*/`, newlines, non-ASCII in values, a property key and the URL) that must arrive
unchanged, and an unknown key, which must fail loudly with the server's error body.
A missing toolchain skips, or fails under DATALOOK_REQUIRE_ALL=1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from datalook.exporting import event_dict
from datalook.extensions import db
from datalook.keys import apikeys, tokens
from datalook.models import Event, Site, User
from datalook.snippets import render as snippets
from tests.conftest import _make_app
from tests.live import LiveServer

pytestmark = pytest.mark.slow

REQUIRE_ALL = os.environ.get("DATALOOK_REQUIRE_ALL") == "1"

HOSTILE_EVENT = {
    "event_name": "success",
    "name": 'it\'s "paid" $HOME ${X} `id` #{raise} #@i \\ */ /* ?> {{ y }} \u00e9 \U0001f600',
    "page_path": '/checkout/it\'s/"q"/$HOME/\\/*/\u00e9',
    "success_value": 9.99,
    "success_user_id": "user_42 'q' \"q\" $x #{y} \\",
    "properties": {
        "plan": "starter",
        'it\'s "odd" $k #{k} \\ */': "line\nbreak\ttab\r\n \u00e9 \u2028 \U0001f600 #{x} $y '\"\\",
    },
}
HOSTILE_QUERY = "?src=it's$HOME*/x"


def skip_or_fail(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"DATALOOK_REQUIRE_ALL=1 and {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        skip_or_fail(f"{name} is not installed")
    return path


# --- the server the snippets talk to ----------------------------------------------------------
# The real thing: gunicorn started by scripts/serve.sh as `make run` starts it. Tokens are
# created and stored events read back in this process, on the server's own database.


class RealServer:
    """The running DataLook server, with quick helpers on its database."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.event_url = server.event_url
        self.app = _make_app(server.instance)
        self._sites = 0

    def new_token(self) -> str:
        """A new key on a new site (the 10-key cap is per site)."""
        self._sites += 1
        with self.app.app_context():
            user = User(email=f"snippets{self._sites}@example.com")
            user.set_password("correct horse battery")
            site = Site(owner=user, domain=f"snippets{self._sites}.example.com")
            db.session.add_all([user, site])
            db.session.commit()
            return apikeys.create_key(site, "Snippet test", user).token

    def stored_events(self) -> list[dict]:
        """Every stored event, oldest first, in the export's JSON form."""
        with self.app.app_context():
            rows = db.session.scalars(select(Event).order_by(Event.id)).all()
            return [event_dict(row, None) for row in rows]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("snippets-live") / "instance", workers=2)
    server.start()
    real = RealServer(server)
    yield real
    with real.app.app_context():
        db.engine.dispose()
    server.stop()


# --- stand-ins for packages that cannot be fetched here --------------------------------------

SERDE_JSON_STANDIN = r"""
//! Stand-in for serde_json: `Value` and the `json!` macro for object/string/number literals.
#[derive(Debug, Clone, PartialEq)]
pub enum Value { Number(f64), String(String), Object(Vec<(String, Value)>) }

impl From<&str> for Value { fn from(s: &str) -> Self { Value::String(s.to_string()) } }
impl From<f64> for Value { fn from(n: f64) -> Self { Value::Number(n) } }
impl From<i32> for Value { fn from(n: i32) -> Self { Value::Number(n as f64) } }

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Value {
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        match self {
            Value::Number(n) => out.push_str(&format!("{}", n)),
            Value::String(s) => quote(s, &mut out),
            Value::Object(items) => {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 { out.push(','); }
                    quote(k, &mut out);
                    out.push(':');
                    out.push_str(&v.to_json());
                }
                out.push('}');
            }
        }
        out
    }
}

#[macro_export]
macro_rules! json {
    ({ $($key:literal : $value:tt),* $(,)? }) => {
        $crate::Value::Object(vec![$(($key.to_string(), $crate::json!($value))),*])
    };
    ($other:expr) => { $crate::Value::from($other) };
}
"""

REQWEST_STANDIN = r"""
//! Stand-in for reqwest's blocking client: the same calls, a real HTTP/1.1 request (http only).
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCode(u16);
impl StatusCode {
    pub const NO_CONTENT: StatusCode = StatusCode(204);
    pub fn as_u16(&self) -> u16 { self.0 }
}
impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{}", self.0) }
}

#[derive(Debug)]
pub struct Error(String);
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
}
impl std::error::Error for Error {}
fn err<E: fmt::Display>(e: E) -> Error { Error(e.to_string()) }

pub mod blocking {
    use super::*;

    pub struct ClientBuilder { timeout: Option<Duration> }
    impl ClientBuilder {
        pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
            self.timeout = Some(timeout);
            self
        }
        pub fn build(self) -> Result<Client, Error> { Ok(Client { timeout: self.timeout }) }
    }

    pub struct Client { timeout: Option<Duration> }
    impl Client {
        pub fn builder() -> ClientBuilder { ClientBuilder { timeout: None } }
        pub fn post(&self, url: &str) -> RequestBuilder {
            RequestBuilder {
                url: url.to_string(), timeout: self.timeout, headers: Vec::new(), body: Vec::new(),
            }
        }
    }

    pub struct RequestBuilder {
        url: String, timeout: Option<Duration>, headers: Vec<(String, String)>, body: Vec<u8>,
    }
    impl RequestBuilder {
        pub fn bearer_auth<T: fmt::Display>(mut self, token: T) -> RequestBuilder {
            self.headers.push(("Authorization".into(), format!("Bearer {}", token)));
            self
        }
        pub fn json(mut self, json: &serde_json::Value) -> RequestBuilder {
            self.headers.push(("Content-Type".into(), "application/json".into()));
            self.body = json.to_json().into_bytes();
            self
        }
        pub fn send(self) -> Result<Response, Error> {
            let rest = self.url.strip_prefix("http://").ok_or_else(|| err("http only"))?;
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let path = path.split('#').next().unwrap();
            let mut stream = TcpStream::connect(authority).map_err(err)?;
            stream.set_read_timeout(self.timeout).map_err(err)?;
            let mut head = format!("POST {} HTTP/1.1\r\nHost: {}\r\n", path, authority);
            head.push_str("Connection: close\r\n");
            for (name, value) in &self.headers {
                head.push_str(&format!("{}: {}\r\n", name, value));
            }
            head.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
            stream.write_all(head.as_bytes()).map_err(err)?;
            stream.write_all(&self.body).map_err(err)?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).map_err(err)?;
            let text = String::from_utf8_lossy(&raw).to_string();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let code = head.split(' ').nth(1).and_then(|c| c.parse().ok());
            let code = code.ok_or_else(|| err("bad response"))?;
            Ok(Response { status: StatusCode(code), body: body.to_string() })
        }
    }

    pub struct Response { status: StatusCode, body: String }
    impl Response {
        pub fn status(&self) -> StatusCode { self.status }
        pub fn text(self) -> Result<String, Error> { Ok(self.body) }
    }
}
"""

REQ_STANDIN = r"""
# Stand-in for Req: Req.post!(url, options) with Req's option names; the real HTTP request
# goes through :httpc. Unknown options raise, as Req's option validation does.
defmodule Req.Response do
  defstruct status: nil, headers: [], body: ""
end

defmodule Req.StandinJSON do
  def encode(map) when is_map(map) do
    "{" <> Enum.map_join(map, ",", fn {k, v} -> encode(to_string(k)) <> ":" <> encode(v) end) <> "}"
  end

  def encode(s) when is_binary(s) do
    escaped =
      for <<c::utf8 <- s>>, into: "" do
        case c do
          ?" -> "\\\""
          ?\\ -> "\\\\"
          c when c < 0x20 -> "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")
          c -> <<c::utf8>>
        end
      end

    "\"" <> escaped <> "\""
  end

  def encode(n) when is_number(n), do: to_string(n)
end

defmodule Req do
  def post!(url, options) do
    options = Keyword.validate!(options, [:auth, :json, :receive_timeout])
    {:bearer, token} = Keyword.fetch!(options, :auth)
    body = Req.StandinJSON.encode(Keyword.fetch!(options, :json))
    {:ok, _} = Application.ensure_all_started(:inets)
    headers = [{~c"authorization", String.to_charlist("Bearer " <> token)}]
    request = {String.to_charlist(url), headers, ~c"application/json", body}
    http_options = [timeout: Keyword.get(options, :receive_timeout, 15_000)]

    case :httpc.request(:post, request, http_options, body_format: :binary) do
      {:ok, {{_, status, _}, headers, body}} ->
        %Req.Response{status: status, headers: headers, body: body}

      {:error, reason} -> raise "request failed: #{inspect(reason)}"
    end
  end
end
"""

JSON_EXTENSIONS_STANDIN = r"""
// Stand-in for System.Net.Http.Json, which mono does not ship: PostAsJsonAsync with the same
// call shape, serialising anonymous objects and dictionaries as System.Text.Json does.
namespace System.Net.Http.Json
{
    using System.Collections;
    using System.Collections.Generic;
    using System.Globalization;
    using System.Text;
    using System.Threading.Tasks;

    public static class HttpClientJsonExtensions
    {
        public static Task<HttpResponseMessage> PostAsJsonAsync<T>(
            this HttpClient client, string requestUri, T value)
        {
            var content = new StringContent(Serialize(value), Encoding.UTF8, "application/json");
            return client.PostAsync(requestUri, content);
        }

        static string Quote(string s)
        {
            var sb = new StringBuilder("\"");
            foreach (var c in s)
            {
                if (c == '"') sb.Append("\\\"");
                else if (c == '\\') sb.Append("\\\\");
                else if (c < ' ') sb.Append("\\u").Append(((int)c).ToString("x4"));
                else sb.Append(c);
            }
            return sb.Append('"').ToString();
        }

        static string Serialize(object value)
        {
            if (value is string s) return Quote(s);
            if (value is double d) return d.ToString("R", CultureInfo.InvariantCulture);
            if (value is int i) return i.ToString(CultureInfo.InvariantCulture);
            var parts = new List<string>();
            if (value is IDictionary dict)
            {
                foreach (DictionaryEntry e in dict)
                    parts.Add(Quote((string)e.Key) + ":" + Serialize(e.Value));
            }
            else
            {
                foreach (var p in value.GetType().GetProperties())
                    parts.Add(Quote(p.Name) + ":" + Serialize(p.GetValue(value)));
            }
            return "{" + string.Join(",", parts) + "}";
        }
    }
}
"""


def csharp_for_mono(text: str) -> str:
    """Wrap the top-level statements in a Main method: mono's mcs predates C# 9."""
    lines = text.splitlines()
    head = [line for line in lines if line.startswith(("using ", "//"))]
    head_end = max(i for i, line in enumerate(lines) if line.startswith("using ")) + 1
    body = lines[head_end:]
    return "\n".join(
        [
            *head,
            "using System.Threading.Tasks;",
            "public static class Program",
            "{",
            "    public static void Main() { Run().GetAwaiter().GetResult(); }",
            "    static async Task Run()",
            "    {",
            *body,
            "    }",
            "}",
            "",
        ]
    )


def strip_nextjs_types(text: str) -> str:
    """Turn the Server Action module into plain JavaScript (its only annotation is known)."""
    annotation = "(): Promise<void> {"
    assert text.count(annotation) == 1
    return text.replace(annotation, "() {")


MIX_INSTALL = 'Mix.install([{:req, "~> 0.5"}])\n'


# --- runners: write the snippet, return the commands (the last one runs it) -----------------


@dataclass
class Context:
    workdir: Path
    cache: Path  # shared by the whole session: compiled stand-ins, Go's build cache


Runner = Callable[[str, Context], list[list[str]]]


def run_curl(text: str, ctx: Context) -> list[list[str]]:
    require_tool("curl")
    (ctx.workdir / "send_event.sh").write_text(text)
    return [[require_tool("bash"), "send_event.sh"]]


def run_python(text: str, ctx: Context) -> list[list[str]]:
    if importlib.util.find_spec("requests") is None:
        skip_or_fail("requests is not installed")
    (ctx.workdir / "send_event.py").write_text(text)
    return [[sys.executable, "send_event.py"]]


def run_node(text: str, ctx: Context) -> list[list[str]]:
    (ctx.workdir / "send_event.mjs").write_text(text)
    return [[require_tool("node"), "send_event.mjs"]]


def run_nextjs(text: str, ctx: Context) -> list[list[str]]:
    (ctx.workdir / "actions.mjs").write_text(strip_nextjs_types(text))
    (ctx.workdir / "call_action.mjs").write_text(
        "import { sendSuccessEvent } from './actions.mjs';\n"
        "await sendSuccessEvent();\n"
        "console.log('Event sent.');\n"
    )
    return [[require_tool("node"), "call_action.mjs"]]


def run_ruby(text: str, ctx: Context) -> list[list[str]]:
    (ctx.workdir / "send_event.rb").write_text(text)
    return [[require_tool("ruby"), "send_event.rb"]]


def run_php(text: str, ctx: Context) -> list[list[str]]:
    php = require_tool("php")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout.split()
    if "curl" not in modules:
        skip_or_fail("the PHP curl extension (php-curl) is not installed")
    (ctx.workdir / "send_event.php").write_text(text)
    return [[php, "send_event.php"]]


def run_go(text: str, ctx: Context) -> list[list[str]]:
    (ctx.workdir / "main.go").write_text(text)
    return [[require_tool("go"), "run", "main.go"]]


def run_java(text: str, ctx: Context) -> list[list[str]]:
    (ctx.workdir / "Main.java").write_text(text)
    return [[require_tool("java"), "Main.java"]]


def run_csharp(text: str, ctx: Context) -> list[list[str]]:
    mcs, mono = require_tool("mcs"), require_tool("mono")
    (ctx.workdir / "Program.cs").write_text(csharp_for_mono(text))
    (ctx.workdir / "JsonStandin.cs").write_text(JSON_EXTENSIONS_STANDIN)
    compile_cmd = [
        mcs,
        "-r:System.Net.Http.dll",
        "-out:program.exe",
        "Program.cs",
        "JsonStandin.cs",
    ]
    return [compile_cmd, [mono, "program.exe"]]


def _rust_standins(ctx: Context) -> Path:
    rustc = require_tool("rustc")
    out = ctx.cache / "rust"
    if not (out / "libreqwest.rlib").exists():
        out.mkdir(parents=True, exist_ok=True)
        (out / "serde_json.rs").write_text(SERDE_JSON_STANDIN)
        (out / "reqwest.rs").write_text(REQWEST_STANDIN)
        common = [rustc, "--edition", "2021", "--crate-type", "rlib", "-L", str(out)]
        for name in ("serde_json", "reqwest"):
            extern = ["--extern", f"serde_json={out / 'libserde_json.rlib'}"]
            cmd = [*common, "--crate-name", name, *(extern if name == "reqwest" else [])]
            result = subprocess.run(
                [*cmd, "-o", str(out / f"lib{name}.rlib"), str(out / f"{name}.rs")],
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, result.stderr
    return out


def run_rust(text: str, ctx: Context) -> list[list[str]]:
    crates = _rust_standins(ctx)
    (ctx.workdir / "main.rs").write_text(text)
    compile_cmd = [
        require_tool("rustc"),
        "--edition",
        "2021",
        "-L",
        str(crates),
        "--extern",
        f"reqwest={crates / 'libreqwest.rlib'}",
        "--extern",
        f"serde_json={crates / 'libserde_json.rlib'}",
        "-o",
        "send_event",
        "main.rs",
    ]
    return [compile_cmd, [str(ctx.workdir / "send_event")]]


def run_elixir(text: str, ctx: Context) -> list[list[str]]:
    elixir = require_tool("elixir")
    assert text.count(MIX_INSTALL) == 1
    (ctx.workdir / "req_standin.exs").write_text(REQ_STANDIN)
    (ctx.workdir / "send_event.exs").write_text(text)
    # Hex packages cannot be fetched here: drop the install line, keep everything else.
    (ctx.workdir / "send_event_offline.exs").write_text(text.replace(MIX_INSTALL, ""))
    parse = f"Code.string_to_quoted!(File.read!({json.dumps('send_event.exs')}))"
    return [
        [elixir, "-e", parse],
        [elixir, "-r", "req_standin.exs", "send_event_offline.exs"],
    ]


RUNNERS: dict[str, Runner] = {
    "curl": run_curl,
    "node": run_node,
    "python": run_python,
    "ruby": run_ruby,
    "php": run_php,
    "go": run_go,
    "java": run_java,
    "csharp": run_csharp,
    "rust": run_rust,
    "elixir": run_elixir,
    "nextjs": run_nextjs,
}


def test_every_runtime_but_powershell_is_executed():
    assert set(RUNNERS) == {runtime.key for runtime in snippets.RUNTIMES} - {"powershell"}


@pytest.fixture(scope="session")
def snippet_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("snippet-cache")


def execute(key: str, text: str, tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
    """Run one snippet as a user would, without DATALOOK_API_KEY (the pasted key is used)."""
    ctx = Context(tmp_path, cache)
    commands = RUNNERS[key](text, ctx)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "GOCACHE": str(cache / "go-build"),
        "GOPATH": str(cache / "go"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
    }
    # Tool homes that live under the real HOME (rustup's toolchains) and a local PYTHONPATH.
    for name, default in (("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")):
        home = Path(os.environ.get(name) or Path.home() / default)
        if home.is_dir():
            env[name] = str(home)
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    for command in commands[:-1]:
        result = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout}\n{result.stderr}"
    return subprocess.run(
        commands[-1], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def snippet_text(key: str, url: str, token: str, event: dict | None = None) -> str:
    if event is None:
        return {s.key: s.text for s in snippets.render(url, token)}[key]
    # The public API only sends the docs' example; the hostile event goes through the same
    # templates and filters, after the same validation of URL and token.
    snippets.validate_endpoint_url(url)
    assert tokens.TOKEN_RE.fullmatch(token)
    return snippets.render_text(key, url, token, event=event)


def assert_stored(live_server, before: int, expected: dict) -> None:
    events = live_server.stored_events()
    assert len(events) == before + 1, events[before:]
    stored = events[-1]
    for field, value in expected.items():
        if field == "success_value":
            assert float(stored[field]) == value
        else:
            assert stored[field] == value, field


@pytest.mark.parametrize("key", list(RUNNERS))
def test_snippet_sends_the_docs_event(key, live_server, tmp_path, snippet_cache):
    token = live_server.new_token()
    text = snippet_text(key, live_server.event_url, token)
    before = len(live_server.stored_events())
    result = execute(key, text, tmp_path, snippet_cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_stored(live_server, before, snippets.EXAMPLE_EVENT)


@pytest.mark.parametrize("key", list(RUNNERS))
def test_hostile_values_arrive_unchanged(key, live_server, tmp_path, snippet_cache):
    token = live_server.new_token()
    text = snippet_text(key, live_server.event_url + HOSTILE_QUERY, token, HOSTILE_EVENT)
    before = len(live_server.stored_events())
    result = execute(key, text, tmp_path, snippet_cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_stored(live_server, before, HOSTILE_EVENT)


@pytest.mark.parametrize("key", list(RUNNERS))
def test_rejected_key_fails_with_the_error_body(key, live_server, tmp_path, snippet_cache):
    unknown = tokens.generate().token  # well formed, never issued by this server
    text = snippet_text(key, live_server.event_url, unknown)
    before = len(live_server.stored_events())
    result = execute(key, text, tmp_path, snippet_cache)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "401" in output
    assert "invalid_token" in output
    assert len(live_server.stored_events()) == before


# --- Next.js: type-check the action with TypeScript from npm ---------------------------------


@pytest.fixture(scope="session")
def typescript(tmp_path_factory) -> Path:
    """Install typescript and @types/node into a temporary folder (needs the npm registry)."""
    npm = require_tool("npm")
    folder = tmp_path_factory.mktemp("typescript")
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "typescript@5", "@types/node@20"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        skip_or_fail(f"npm could not install typescript: {result.stderr[-500:]}")
    return folder


def test_nextjs_action_type_checks(typescript, tmp_path):
    text = {s.key: s.text for s in snippets.render("https://datalook.example/event", None)}
    app = tmp_path / "app"
    app.mkdir()
    (app / "actions.ts").write_text(text["nextjs"])
    result = subprocess.run(
        [
            require_tool("node"),
            str(typescript / "node_modules" / "typescript" / "bin" / "tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
            "--types",
            "node",
            "--typeRoots",
            str(typescript / "node_modules" / "@types"),
            str(app / "actions.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
