"""The package's structure: small functions, no import cycles (function-local imports
included), models apart from the trainer and the registry, kernels apart from the models."""

import ast
from pathlib import Path

import pytest

from zoo.registry import FAMILIES

ZOO = Path(__file__).resolve().parents[1] / "zoo"
MAX_LINES, MAX_PARAMS = 60, 8


def _modules():
    for path in sorted(ZOO.rglob("*.py")):
        parts = path.relative_to(ZOO.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text())


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _imports(name, tree):
    """Every zoo module ``name`` imports, at module level or inside a function."""
    package = name if (ZOO.parent / Path(*name.split("."), "__init__.py")).exists() \
        else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    modules = {m for m, _, _ in _modules()}
    return {m for m in found if m in modules and m != name}


def test_functions_are_small():
    long = []
    for name, path, tree in _modules():
        for fn in _functions(tree):
            lines = fn.end_lineno - fn.lineno + 1
            a = fn.args
            params = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
            if lines > MAX_LINES or params > MAX_PARAMS:
                long.append(f"{name}.{fn.name}: {lines} lines, {params} parameters")
    assert not long, "\n".join(long)


def _cycle(graph):
    """A list of modules forming an import cycle in ``graph``, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None
    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles_even_through_function_local_imports():
    # a package imports its submodules lazily (by name at attribute access), not by import
    graph = {name: _imports(name, tree) for name, _, tree in _modules()}
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("family", FAMILIES)
def test_families_import_neither_the_trainer_nor_the_registry(family):
    tree = ast.parse((ZOO / f"{family}.py").read_text())
    banned = {"zoo.train", "zoo.registry", "zoo.cli", "zoo.interop"}
    assert not (_imports(f"zoo.{family}", tree) & banned)


def test_kernels_import_no_family():
    for name, _, tree in _modules():
        if name.startswith("zoo.kernels"):
            families = {f"zoo.{f}" for f in FAMILIES}
            assert not (_imports(name, tree) & families), name
