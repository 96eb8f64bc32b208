"""The package's shape, read from the source so a change that breaks the layout fails here.

Every import counts: module-level, inside functions and under `TYPE_CHECKING` alike. The
rules: imports run downwards through the layers below, there are no import cycles, nobody
borrows another module's private names (imported or read as `module._name`), the
ingestion app needs no Flask (followed transitively), at most 12 modules sit loose at the
top of the package, and no module is longer than 600 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import datalook

PACKAGE = Path(datalook.__file__).parent
MAX_LOOSE_MODULES = 12
MAX_MODULE_LINES = 600

#: The layers, top first: a module may import its own layer and those below it only.
#: A name is matched by its longest dotted prefix listed here.
LAYERS: list[tuple[str, ...]] = [
    ("datalook.app",),
    ("datalook.web", "datalook.cli"),
    ("datalook.openapi",),
    ("datalook.erasure", "datalook.live", "datalook.exporting", "datalook.lifecycle"),
    ("datalook.analytics",),
    ("datalook.ingest", "datalook.snippets", "datalook.browser", "datalook.keys"),
    (
        "datalook.accounts.access",
        "datalook.accounts.audit",
        "datalook.accounts.invitations",
        "datalook.accounts.login_guard",
        "datalook.accounts.members",
        "datalook.ratelimit",
    ),
    ("datalook.extensions",),
    ("datalook.models",),
    ("datalook.accounts", "datalook.sql", "datalook.acquisition"),
    (
        "datalook.config",
        "datalook.envelope",
        "datalook.extensions",
        "datalook.ratelimit.limit_text",
    ),
    ("datalook",),
]

FLASK_PACKAGES = ("flask", "flask_sqlalchemy", "flask_login", "flask_wtf", "flask_limiter")


def _module_name(path: Path) -> str:
    """Dotted name of a module file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


@cache
def _tree(module: str) -> ast.Module:
    """The parsed source of one module."""
    return ast.parse(MODULES[module].read_text(encoding="utf-8"))


def _resolve(node: ast.ImportFrom | ast.Import, module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for one import statement of `module`."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if isinstance(node, ast.ImportFrom):
        base = package
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        target = (
            node.module or "" if node.level == 0 else ".".join(filter(None, [base, node.module]))
        )
        return [(target, [alias.name for alias in node.names])]
    return [(alias.name, []) for alias in node.names]


@cache
def _imports(module: str) -> list[tuple[str, list[str]]]:
    """Every import of one module, wherever it stands in the file."""
    return [
        found
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.ImportFrom | ast.Import)
        for found in _resolve(node, module)
    ]


@cache
def _edges(module: str) -> frozenset[str]:
    """The package's modules that one module imports (a name that is a module counts as it)."""
    edges = set()
    for target, names in _imports(module):
        for name in names or [None]:
            candidate = f"{target}.{name}" if name else target
            if candidate in MODULES:
                edges.add(candidate)
            elif target in MODULES:
                edges.add(target)
    edges.discard(module)
    return frozenset(edges)


def _layer(name: str) -> int:
    """The index of the layer a dotted name belongs to (0 is the top)."""
    best, found = -1, len(LAYERS)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    return found


def _aliases(module: str) -> dict[str, str]:
    """Local names bound to the package's modules by the imports of one module."""
    out = {}
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(node, module)[0][0]
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    out[alias.asname or alias.name] = f"{target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in MODULES:
                    out[alias.asname] = alias.name
    return out


def test_every_module_is_in_a_layer():
    assert [m for m in MODULES if _layer(m) == len(LAYERS)] == []


def test_imports_run_downwards():
    upward = [
        (module, target)
        for module in MODULES
        for target in _edges(module)
        if _layer(target) < _layer(module)
    ]
    assert upward == []


def test_no_import_cycles():
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(_edges(node)):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own submodules is not a cycle of concern.
    cycles = [c for c in cycles if not any(c[0].startswith(m + ".") for m in c[1:2])]
    assert cycles == []


def test_no_module_imports_a_private_name_of_another():
    borrowed = [
        (module, target, name)
        for module in MODULES
        for target, names in _imports(module)
        if target.startswith("datalook")
        for name in names
        if name.startswith("_") and f"{target}.{name}" not in MODULES
    ]
    assert borrowed == []


def test_no_module_reads_a_private_attribute_of_another():
    borrowed = []
    for module in MODULES:
        aliases = _aliases(module)
        for node in ast.walk(_tree(module)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                borrowed.append((module, aliases[node.value.id], node.attr))
    assert borrowed == []


def test_only_the_app_factory_imports_the_web_layer():
    upward = [
        (module, target)
        for module in MODULES
        if not module.startswith(("datalook.web", "datalook.app"))
        for target in _edges(module)
        if target.startswith("datalook.web")
    ]
    assert upward == []


def test_ingestion_needs_no_flask_even_through_other_modules():
    def reaches_flask(start: str) -> list[str]:
        seen, todo, found = {start}, [start], []
        while todo:
            module = todo.pop()
            for target, _ in _imports(module):
                if target.split(".")[0] in FLASK_PACKAGES:
                    found.append(f"{module} -> {target}")
            parents = {".".join(nxt.split(".")[:i]) for nxt in _edges(module) for i in range(2, 99)}
            for nxt in (_edges(module) | (parents & MODULES.keys())) - seen:
                seen.add(nxt)
                todo.append(nxt)
        return found

    flask_free = [m for m in MODULES if m.startswith("datalook.ingest")]
    flask_free.append("datalook.ratelimit.rules")
    assert {m: reaches_flask(m) for m in flask_free if reaches_flask(m)} == {}


def test_few_modules_loose_at_the_top():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert len(loose) <= MAX_LOOSE_MODULES, sorted(loose)


def test_no_module_is_too_long():
    long = {
        module: n
        for module, path in MODULES.items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_importing_ingestion_loads_no_flask():
    """The same rule at run time, which also covers what third-party packages import."""
    ingestion = sorted(module for module in MODULES if module.startswith("datalook.ingest"))
    script = (
        f"import sys\nfor name in {ingestion!r}:\n    __import__(name)\n"
        "tops = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(top for top in tops if top == 'flask' or top.startswith('flask_')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
