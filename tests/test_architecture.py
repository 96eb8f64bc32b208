"""The package's shape: imports run downwards, nobody borrows another module's private
names, and there are no import cycles (checked from the source, so a change that breaks
the layout fails here)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import datalook

PACKAGE = Path(datalook.__file__).parent


def _module_name(path: Path) -> str:
    """Dotted name of a module file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import of one module, resolved."""
    module = _module_name(path)
    return [
        found
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom | ast.Import)
        for found in _imports_of(node, module, path)
    ]


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_module(name: str) -> bool:
    """Whether a dotted name is a module of the package."""
    return name in MODULES


def test_no_module_imports_a_private_name_of_another():
    borrowed = [
        (module, target, name)
        for module, path in MODULES.items()
        for target, names in _imports(path)
        if target.startswith("datalook")
        for name in names
        if name.startswith("_") and not _is_module(f"{target}.{name}")
    ]
    assert borrowed == []


def test_only_the_app_factory_imports_the_blueprints():
    upward = [
        (module, target)
        for module, path in MODULES.items()
        if not module.startswith(("datalook.web", "datalook.app"))
        for target, names in _imports(path)
        if target.startswith("datalook.web") or (target == "datalook" and "blueprints" in names)
    ]
    assert upward == []


def test_ingestion_and_rate_limit_rules_need_no_flask():
    flask_free = [
        module
        for module in MODULES
        if module.startswith("datalook.ingest") or module == "datalook.ratelimit.rules"
    ]
    users = [
        (module, target)
        for module in flask_free
        for target, _ in _imports(MODULES[module])
        if target.split(".")[0] in ("flask", "flask_sqlalchemy", "flask_login", "flask_limiter")
    ]
    assert users == []


def _is_flask(name: str) -> bool:
    """Whether an imported name belongs to Flask or to one of its extensions."""
    top = name.split(".")[0]
    return top == "flask" or top.startswith("flask_")


def _loaded_by(target: str, names: list[str]) -> list[str]:
    """What one resolved import loads: the target and its parent packages (whose
    __init__ runs first), and the submodules it names (`from . import pipeline`)."""
    parts = target.split(".")
    loaded = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return loaded + [f"{target}.{name}" for name in names if _is_module(f"{target}.{name}")]


def _import_chains(roots: list[str]) -> list[list[str]]:
    """Follow every import (module level, in functions, under TYPE_CHECKING) from `roots`
    through the package's modules; one chain of modules per import from outside the package
    reached that way, ending with the imported name."""
    came_from: dict[str, str | None] = dict.fromkeys(roots)
    waiting, chains = list(roots), []
    while waiting:
        module = waiting.pop()
        for target, names in _imports(MODULES[module]):
            for loaded in _loaded_by(target, names):
                if not _is_module(loaded):
                    if not loaded.startswith("datalook"):
                        chain, step = [loaded], module
                        while step is not None:
                            chain.insert(0, step)
                            step = came_from[step]
                        chains.append(chain)
                elif loaded not in came_from:
                    came_from[loaded] = module
                    waiting.append(loaded)
    return chains


def test_ingestion_needs_no_flask_even_through_what_it_imports():
    ingestion = [module for module in MODULES if module.startswith("datalook.ingest")]
    through_flask = sorted(
        {" -> ".join(chain) for chain in _import_chains(ingestion) if _is_flask(chain[-1])}
    )
    assert not through_flask, "\n".join(through_flask)


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


def test_no_import_cycles_at_module_level():
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: imports inside functions are deferred
            if isinstance(node, ast.ImportFrom | ast.Import):
                for target, names in _imports_of(node, module, path):
                    for name in names or [None]:
                        candidate = f"{target}.{name}" if name else target
                        if _is_module(candidate):
                            edges.add(candidate)
                        elif _is_module(target):
                            edges.add(target)
        edges.discard(module)
        graph[module] = edges
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own submodules is not a cycle of concern.
    cycles = [c for c in cycles if not any(c[0].startswith(m + ".") for m in c[1:2])]
    assert cycles == []


def _imports_of(node: ast.AST, module: str, path: Path) -> list[tuple[str, list[str]]]:
    """Resolve one import statement of `module` (as _imports does for a whole file)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if isinstance(node, ast.ImportFrom):
        base = package
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        target = (
            node.module or "" if node.level == 0 else ".".join(filter(None, [base, node.module]))
        )
        return [(target, [alias.name for alias in node.names])]
    assert isinstance(node, ast.Import)
    return [(alias.name, []) for alias in node.names]
