"""The package's layering: no import cycle, nothing importing an app, no flags at import time.

Imports are read from the source (module level and inside functions alike), so a cycle hidden
behind a function-local import fails here too.
"""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys


ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kpvp"
APPS = ("kpvp.train", "kpvp.evaluate", "kpvp.predict", "kpvp.export", "kpvp.inspect_data",
        "kpvp.weights", "kpvp.app")
# Layers, lowest first: a module imports only from its own layer or lower ones. The first
# matching prefix decides (so `kpvp.data.datasets` sits below the rest of `kpvp.data`).
LAYERS = (
    ("kpvp.configs", 0), ("kpvp.errors", 0), ("kpvp.rundir", 0), ("kpvp.ops", 0),
    ("kpvp.output_paths", 0), ("kpvp.run_info", 0), ("kpvp.visualize", 0),
    ("kpvp.data.datasets", 0),
    ("kpvp.models", 1), ("kpvp.losses", 1), ("kpvp.metrics", 1), ("kpvp.data", 1),
    ("kpvp.trainers", 2), ("kpvp.generation", 2), ("kpvp.serving", 2), ("kpvp.evaluation", 2),
    ("kpvp.stages", 3), ("kpvp.cli", 3), ("kpvp.web", 3),
) + tuple((app, 4) for app in APPS)


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(path: pathlib.Path, known: set[str]) -> set[str]:
    """kpvp modules that `path` imports anywhere in its body."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    # A package's __init__ importing its own submodules is registration, not layering.
    return {name: {dep for dep in imported(path, known)
                   if dep != name and not dep.startswith(name + ".")}
            for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()))


def test_no_library_module_imports_an_app():
    edges = graph()
    offenders = {name: sorted(deps & set(APPS)) for name, deps in edges.items()
                 if name not in APPS and deps & set(APPS)}
    assert not offenders, offenders


def layer(name: str) -> int | None:
    if name == "kpvp":
        return 0
    for prefix, rank in LAYERS:
        if name == prefix or name.startswith(prefix + "."):
            return rank
    return None


def test_every_module_has_a_layer_and_imports_none_above_it():
    edges = graph()
    assert [name for name in edges if layer(name) is None] == []
    upward = [f"{name} -> {dep}" for name, deps in edges.items() for dep in deps
              if layer(dep) > layer(name)]
    assert upward == []


def test_every_app_is_short_glue():
    for app in APPS:
        path = modules()[app]
        lines = len(path.read_text().splitlines())
        assert lines <= 160, f"{path.name} has {lines} lines"


def test_importing_any_module_defines_no_flags_and_reads_no_argv():
    """Every module imports cleanly in a fresh interpreter with junk argv and adds no flag."""
    names = sorted(modules())
    code = (
        "import sys, importlib\n"
        "from absl import app, flags, logging\n"
        "import tensorflow, keras, ml_collections.config_flags\n"
        "sys.argv = ['x', '--no-such-flag']\n"
        "before = set(flags.FLAGS)  # the libraries' own flags\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "added = sorted(set(flags.FLAGS) - before)\n"
        "print(added)\n"
        "assert not added, added\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
