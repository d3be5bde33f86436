"""The package's layers, read from the source: no import cycle, and no floor imports upward.

Every ``import`` of an ``sde`` module is found with the AST, inside functions too (a lazy
import is still a dependency). Cycles are checked among module-level imports, the ones
that run when a module loads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sde"

#: Packages each floor may import (besides itself). Anything else is upward.
FLOORS = {
    "sde.errors": set(),
    "sde.settings": {"sde.errors"},
    "sde.registry": {"sde.errors", "sde.settings"},
    "sde.omop": {"sde.errors"},
    "sde.pseudonym": {"sde.errors", "sde.omop"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str], *, top_level_only: bool) -> set[str]:
    """The sde modules ``path`` imports: ``from pkg import sub`` counts as ``pkg.sub``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sde")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sde"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else str(node.module))
    return found


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    graph = {}
    for name, path in modules.items():
        targets = _imports(path, set(modules), top_level_only=top_level_only)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("floor", sorted(FLOORS))
def test_no_floor_imports_upward(floor: str) -> None:
    allowed = FLOORS[floor]
    bad = sorted(
        f"{src} imports {dst}"
        for src, targets in _graph(top_level_only=False).items()
        if _in(src, floor)
        for dst in targets
        if not _in(dst, floor) and not any(_in(dst, a) for a in allowed)
    )
    assert bad == []


def test_no_import_cycle_at_load_time() -> None:
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)
