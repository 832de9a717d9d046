"""The architecture of DESIGN.md §5, held by the code's own imports: arrows point down.

Read from the source with `ast` — lazy imports inside functions count (they are imports all
the same), imports under `if TYPE_CHECKING:` do not (they only type the code). ARCHITECTURE.md
is the map these rules keep true."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "leadscore"


@cache
def modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _owner(name: str) -> str | None:
    """The module of the package a dotted name lives in (the longest known prefix)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_only(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports(module: str) -> Iterator[tuple[str, str]]:
    """(imported module of the package, imported name or "") for every import of `module`."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                owner = _owner(alias.name)
                if owner:
                    yield owner, ""
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = _owner(f"{base}.{alias.name}")
                if full and full != _owner(base):     # a submodule
                    yield full, ""
                elif _owner(base):
                    yield _owner(base) or "", alias.name


@cache
def graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in imports(m) if t != m} for m in modules()}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph()[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules()):
        if module not in index:
            visit(module)
    return found


def test_there_is_no_import_cycle() -> None:
    assert cycles() == []


def test_no_module_imports_another_modules_underscore_names() -> None:
    private = [f"{m} imports {t}.{name}" for m in modules() for t, name in imports(m)
               if t != m and name.startswith("_") and not name.startswith("__")]
    assert private == []


@pytest.mark.parametrize(("lower", "higher"), [
    ("leadscore.store", "leadscore.engine"),
    ("leadscore.model", "leadscore.engine"),
    ("leadscore.scores", "leadscore.engine"),
    ("leadscore.engine.sql", "leadscore.engine.batch"),
    ("leadscore.engine.sql", "leadscore.engine.incremental"),
    ("leadscore.engine", "leadscore.service"),
    ("leadscore.engine", "leadscore.cli"),
    ("leadscore.store", "leadscore.service"),
])
def test_arrows_point_down(lower: str, higher: str) -> None:
    """A lower layer never imports a higher one."""
    def within(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    upward = sorted(f"{m} -> {t}" for m, targets in graph().items() if within(m, lower)
                    for t in targets if within(t, higher))
    assert upward == []


def test_the_sql_layer_does_no_io() -> None:
    """`engine/sql/` builds sqlglot expressions: no connection, no engine, no files."""
    io_modules = {"duckdb", "pyspark", "pyarrow", "sqlalchemy", "psycopg", "os", "pathlib"}
    found = []
    for module, path in modules().items():
        if not module.startswith("leadscore.engine.sql"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level \
                else []
            found += [f"{module} imports {n}" for n in names if n.split(".")[0] in io_modules]
    assert found == []


def test_the_engine_has_its_engines_folders() -> None:
    engine = PACKAGE / "engine"
    assert {p.name for p in engine.iterdir() if (p / "__init__.py").exists()} >= {
        "sql", "batch", "incremental"}
    flat = sorted(p.name for p in engine.glob("*.py") if p.name != "__init__.py")
    assert flat == [], f"modules left flat in engine/: {flat}"


def test_every_module_imports_first() -> None:
    """Each module can be the first one imported: a cycle through a package's `__init__`
    (which the graph above does not see) fails here by name."""
    import subprocess
    import sys

    code = ("import importlib, sys\n"
            "failed = []\n"
            f"for name in {sorted(m for m in modules() if not m.endswith('__main__'))!r}:\n"
            "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'leadscore']:\n"
            "        del sys.modules[loaded]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as exc:\n"
            "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
            "print('\\n'.join(failed))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
