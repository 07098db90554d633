"""The import structure: no circle, layers that point one way, and cheap imports where a cheap answer is asked.

The graph is read statically from the source (every ``import``, at module level or inside a function: a lazy
import closes a circle as surely as an eager one, only later); the costs are measured in fresh interpreters,
since what a module drags in is what every CLI call and test process pays.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("storage", "models", "tasks", "review", "flows")
#: which of our packages each package may import (flows, the recipes on top, may import all of them)
MAY_IMPORT = {"storage": set(), "models": {"storage"}, "tasks": {"storage", "models"},
              "review": {"storage", "models"}, "flows": set(PACKAGES)}
PREFECT = ("prefect", "prefect_dask", "prefect_ray")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in ``path``; ``from a import b`` names the
    submodule ``a.b`` when there is one."""
    tree = ast.parse(path.read_text(), str(path))
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if n is not f}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found += [(target, node.lineno, id(node) not in nested) for target in targets]
    return found


@functools.cache
def _graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[str, int, bool]]]]:
    modules = _modules()
    known = set(modules)
    raw = {name: _imports(path, name, known) for name, path in modules.items()}
    graph = {name: {t for t, _, _ in imports if t in known and t != name} for name, imports in raw.items()}
    return graph, raw


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
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
                    circles.append(sorted(component))
    return circles


def test_the_graph_is_read_from_the_source():
    graph, _ = _graph()
    assert len(graph) > 100 and "models.weights" in graph["models.metrics.features"]
    # the reader finds a circle when there is one (a lazy import closes it as well)
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    graph, _ = _graph()
    assert _circles(graph) == []


def test_layers_point_one_way_and_models_storage_never_import_prefect():
    _, raw = _graph()
    modules = _modules()
    wrong = []
    for name, imports in raw.items():
        package = name.split(".")[0]
        for target, line, top_level in imports:
            other = target.split(".")[0]
            where = f"{modules[name].relative_to(ROOT)}:{line} imports {target}"
            if other in PACKAGES and other != package and other not in MAY_IMPORT[package]:
                wrong.append(where)
            if other in PREFECT and (package in ("models", "storage") or (package == "review" and top_level)):
                wrong.append(where)  # review/ loads Prefect only inside the function that publishes
    assert wrong == []


def _loaded_by(statement: str) -> set[str]:
    """Top-level modules a fresh interpreter holds after ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("statement, absent", [
    ("import models.vid2vid.config", {"torch", "torchvision"}),  # a preset is YAML and pydantic
    ("from models.metrics.names import metric_names; metric_names(['warp', 'fid-i3d'])", {"torch"}),
    ("import review.app", {"prefect", "torch"}),  # the web app serves files and a database
    ("from flows.cli import build_parser; build_parser().format_help()", {"torch", "prefect", "ray", "dask"}),
    # a flow-running command and a Ray training worker: torchvision (2 s) only where VGG is built
    ("import flows.rebuild, flows.synthesize", {"torchvision"}),
    ("import models.training.loop", {"torchvision", "prefect"}),
])
def test_cheap_imports(statement, absent):
    assert absent & _loaded_by(statement) == set()
