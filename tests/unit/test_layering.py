"""The layers of docs/ARCHITECTURE.md, checked on the source: which package may import which,
the pure-numpy rooms, and no import cycle. A new import that breaks a rule fails here, with the
file and the line."""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from app.config import PROJECT_ROOT

PACKAGES = ("app", "jobs", "cli", "bench", "harness")

# What each layer must never import (a prefix matches the module and everything under it).
FORBIDDEN = {
    "app": ("jobs", "bench", "cli", "harness", "tests"),
    "jobs": ("bench", "cli", "harness", "tests", "app.api", "flask"),
    "cli": ("bench", "harness", "tests"),
    "bench": ("tests",),
    "harness": ("tests",),
    # the rooms of app/, bottom up: infrastructure; access, catalogue and the model store beside each
    # other; the request path (serving) above them; the dashboard and the API above everything.
    # A store below the request path never calls up into it.
    "app.infra": ("app.access", "app.catalogue", "app.model", "app.serving", "app.dashboard", "app.totara.protocol"),
    "app.access": ("app.catalogue", "app.model", "app.serving", "app.dashboard"),
    "app.catalogue": ("app.access", "app.model", "app.serving", "app.dashboard"),
    "app.model": ("app.access", "app.catalogue", "app.serving", "app.dashboard", "app.online"),
    "app.serving": ("app.dashboard",),
    "app.totara.protocol": ("app.infra", "app.access", "app.catalogue", "app.model", "app.serving", "app.dashboard"),
    # xAPI's rules (what a valid statement is, how one maps): plain rules, importable from any room
    "app.xapi": ("app.infra", "app.access", "app.catalogue", "app.model", "app.serving", "app.dashboard"),
}
# Rooms that hold numerical code: arrays in, arrays out, no web framework, no database.
PURE = {
    "app.online": ("flask", "psycopg2", "redis", "app.infra.queries", "app.infra.db", "app.api", "lightfm"),
    "app.strategies": ("flask", "psycopg2", "redis", "app.infra.queries", "app.infra.db", "app.api"),
    "app.catalogue.records": ("flask", "psycopg2", "app.api"),
    "app.xapi": ("flask", "psycopg2", "redis", "app.api"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def source_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((PROJECT_ROOT / pkg).rglob("*.py"))}


@cache
def imports_of(path: Path, name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement, at any depth (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno))
            # `from app import strategies` imports the module app.strategies
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(rules: dict[str, tuple[str, ...]], modules: dict[str, Path]) -> list[str]:
    out = []
    for name, path in modules.items():
        for layer, banned in rules.items():
            if not under(name, layer):
                continue
            for imported, line in imports_of(path, name):
                if any(under(imported, b) for b in banned):
                    out.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {layer} must not import {imported}")
    return sorted(set(out))


def test_each_layer_imports_only_what_it_may():
    assert violations(FORBIDDEN, source_modules()) == []


def test_only_the_http_package_imports_the_http_package():
    modules = source_modules()
    outside = {n: p for n, p in modules.items() if not under(n, "app.api")}
    assert violations(dict.fromkeys(PACKAGES, ("app.api",)), outside) == []


def test_numerical_rooms_know_no_web_framework_or_database():
    assert violations(PURE, source_modules()) == []


def internal_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports (a `from pkg import name` that is not a module
    counts as importing pkg)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for imported, _ in imports_of(path, name):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                edges.add(imported)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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
                        out.append(sorted(component))
    return out


def test_no_import_cycle():
    assert cycles(internal_graph(source_modules())) == []


def test_the_checker_sees_a_wrong_arrow_and_a_cycle(tmp_path):
    # The rules above would pass on an empty project; show that they catch what they should.
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    bad = tmp_path / "app" / "bad.py"
    bad.write_text("import os\n\ndef f():\n    from jobs.train import run_training\n")
    found = imports_of(bad, "app.bad")
    assert ("jobs.train", 4) in found and ("jobs.train.run_training", 4) in found
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
