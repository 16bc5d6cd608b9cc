"""The layers of cocomix/ and the one direction of imports between them (docs/architecture.md).

Every import inside the package counts, including those inside functions: a cycle hidden in a
function is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cocomix"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # (layer, its top-level modules/packages under cocomix/), lowest first.
    ("method", ("registry", "contracts", "types", "mixers", "concepts", "objectives", "cache_files")),
    ("runtime", ("models", "data", "runtime")),
    ("tools", ("eval", "analysis", "export")),
    ("experiment", ("experiment", "perf")),
]
"""A module imports only from its own layer and the layers below. The method layer is what a
researcher lifts into another codebase (torch only: ``test_method_imports.py``); ``runtime``
trains one run; ``tools`` read finished runs; ``experiment`` plans and runs recipes."""

RANK = {part: rank for rank, (_, parts) in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets.update(found or ([node.module] if node.module in modules else []))
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        graph[name] = {t for t in targets if t != name}
    return graph


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else parts[0]
    assert top in RANK, f"{module} is in no layer; add cocomix/{top} to LAYERS here and in docs/architecture.md"
    return RANK[top]


def test_no_import_goes_up_a_layer() -> None:
    upward = sorted(f"{a} -> {b}" for a, targets in imports().items() for b in targets
                    if a != "cocomix" and b != "cocomix" and layer_of(b) > layer_of(a))
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph = imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_layer_order_is_written_once_in_the_docs_too() -> None:
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for layer, parts in LAYERS:
        row = next((line for line in text.splitlines() if line.startswith(f"| **{layer}**")), None)
        assert row is not None, f"docs/architecture.md has no row for layer {layer}"
        assert all(f"cocomix/{part}" in row for part in parts), (layer, row)
