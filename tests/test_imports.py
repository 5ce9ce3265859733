"""Layering and import cycles, read from the source (every import, lazy ones inside functions included).

Rules (``docs/trainer_plugins.md``): ``envs`` imports neither ``marl`` nor ``league``; ``marl``
never imports ``league`` (the league plugs in through the ``marl.snapshot_sinks`` entry point);
no two modules of the project import each other, directly or around a longer loop.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("envs", "marl", "league")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _targets(name: str, modules: dict[str, Path]) -> list[str]:
    """The project modules that importing ``name`` executes: the module and its parent packages."""
    parts = name.split(".")
    found = [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules]
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports (anywhere in the file), parents' ``__init__`` included."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    root = ".".join(base + ([node.module] if node.module else []))
                else:
                    root = node.module or ""
                names = [root] + [f"{root}.{a.name}" for a in node.names]
            for n in names:
                if n.split(".")[0] in PACKAGES:
                    graph[mod].update(t for t in _targets(n, modules) if t != mod and not mod.startswith(t + "."))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_packages_are_layered():
    graph = import_graph()
    bad = [(m, t) for m, ts in graph.items() for t in ts
           if (m.startswith("envs") and t.split(".")[0] in ("marl", "league"))
           or (m.startswith("marl") and t.split(".")[0] == "league")]
    assert not bad, f"imports against the layering (envs <- marl <- league): {sorted(bad)}"


def test_no_import_cycles():
    cycles = _cycles(import_graph())
    assert not cycles, f"import cycles (lazy imports included): {cycles}"


def test_the_graph_sees_lazy_imports():
    """The walker must see imports inside functions (else the two tests above could not fail)."""
    graph = import_graph()
    assert "marl.selfplay" in graph["marl.algos.factory"]  # make_trainer imports it inside the function
