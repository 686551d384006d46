"""The shape of the package: its import graph has no circle and runs downhill, and modules stay small.

Read from the source (every ``import`` statement, module-level or inside a function, type-only ones
included), so a lazy import counts as much as any other. Data flows one way:

    network file -> network IR -> query -> solver -> properties -> sweeps -> API / CLI

and each module may import only from its own layer or the layers below it (:data:`LAYERS`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reluverify"

LAYERS = [
    ("reluverify.errors", "reluverify.version", "reluverify.onnx_proto", "reluverify.memory", "reluverify.user_files",
     "reluverify.ray_cluster"),
    ("reluverify.linear_ops",),
    ("reluverify.network", "reluverify.elementwise"),
    ("reluverify.onnx_import", "reluverify.onnx_export", "reluverify.onnx_runtime", "reluverify.query",
     "reluverify.vnnlib", "reluverify.vnnlib_export", "reluverify.exact"),
    ("reluverify.solver",),
    ("reluverify.parallel", "reluverify.vnncomp", "reluverify.proof_check", "reluverify.benchmark"),
    ("reluverify.properties", "reluverify.proofs"),
    ("reluverify.sweep",),
    ("reluverify.api", "reluverify.train"),
    ("reluverify.cli", "reluverify.__main__", "reluverify"),
]
"""Lowest first; a module belongs to the layer of its longest matching prefix."""

MAX_LINES = 600
"""A module longer than this says in its docstring why it is one concept (the words "on purpose")."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports (``from a import b`` names ``a.b`` when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != name)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> int:
    best, layer = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    assert layer is not None, f"{name} belongs to no layer: add it to LAYERS"
    return layer


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in GRAPH:
        if root in index:
            continue
        work = [(root, iter(sorted(GRAPH[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_has_no_circle():
    assert _cycles() == []


def test_every_import_runs_downhill():
    upward = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
              for a, targets in GRAPH.items() for b in targets if _layer(b) > _layer(a)]
    assert upward == []


def test_the_package_facade_is_the_only_import_of_the_package_itself():
    """``reluverify/__init__.py`` offers the API lazily; no module below reaches up through it."""
    assert [a for a, targets in GRAPH.items() if "reluverify" in targets] == []


def _reaches(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for b in GRAPH[todo.pop()]:
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


def test_the_certificate_checker_never_reaches_the_solver():
    """The independent checker must not run any of the code whose answers it checks."""
    assert sorted(m for m in _reaches("reluverify.proof_check") if m.startswith("reluverify.solver")) == []


@pytest.mark.parametrize("engine", ["reluverify.solver.bounds", "reluverify.solver.options", "reluverify.solver.search"])
def test_the_solver_foundations_know_no_search(engine):
    """The bound engine, the options and the search protocol sit below every strategy."""
    searches = ("reluverify.solver.input_split", "reluverify.solver.relu_bab", "reluverify.solver.reluplex",
                "reluverify.solver.decide", "reluverify.solver.strategies", "reluverify.solver.sharing")
    reached = {m for name in MODULES if name == engine or name.startswith(engine + ".") for m in _reaches(name)}
    assert sorted(m for m in reached if m.startswith(searches)) == []


def test_modules_are_small_or_say_why_not():
    long = []
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > MAX_LINES and "on purpose" not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{name}: {text.count(chr(10))} lines")
    assert long == []
