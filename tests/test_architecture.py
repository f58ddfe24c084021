"""The import graph of cxrbench/: no cycles, and every import points down the layers the README's
"Architecture" section documents (read with ``ast``, so nothing is imported to check it)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cxrbench"

LAYERS: list[tuple[str, ...]] = [
    ("__init__", "errors", "specs", "hookspecs", "environment"),  # contracts and machine facts
    ("plugins",),                      # the one registry
    ("metrics", "models"),             # pure functions of predictions; networks, cost, the predictor
    ("suite",),                        # schema (incl. latency config), loader, checks
    ("data",),                         # datasets, decoding, cache, splits, transforms
    ("results",),                      # the run store, its file formats, the run view
    ("profiling",),                    # latency measurement (a leaf: nothing above it)
    ("engine",),                       # trainer, job kinds, executors, runner
    ("leaderboard", "probes"),         # views over results
    ("report",),                       # the HTML report over everything below
    ("builtins", "cli", "testing"),    # registration of the core's plugins, commands, plugin-author checks
]
"""Bottom to top: a module may import from its own layer or any layer below."""
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}
SAME_LAYER_FORBIDDEN = {("metrics", "models"), ("models", "metrics"), ("leaderboard", "probes"),
                        ("probes", "leaderboard")}
"""Packages of one layer that stay independent of each other."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """Every cxrbench module ``path`` imports (function-level imports too; ``TYPE_CHECKING`` blocks not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node)
            for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            if base.startswith("cxrbench"):
                out.add(base)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("cxrbench")}
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[_module_name(path)] = _imports(path)
    known = set(graph)
    for mod, targets in graph.items():  # `from cxrbench.x import y` where y is a module: keep the package
        graph[mod] = {t for t in targets if t in known} | {t.rpartition(".")[0] for t in targets
                                                           if t not in known and t.rpartition(".")[0] in known}
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = _graph()


def test_every_top_level_module_has_a_layer():
    tops = {_top(m) for m in GRAPH}
    assert tops <= set(LAYER_OF), f"add {sorted(tops - set(LAYER_OF))} to LAYERS and the README"


def test_imports_point_down_the_layers():
    wrong = []
    for mod, targets in sorted(GRAPH.items()):
        a = _top(mod)
        for target in sorted(targets):
            b = _top(target)
            if a == b:
                continue
            if LAYER_OF[b] > LAYER_OF[a] or (a, b) in SAME_LAYER_FORBIDDEN:
                wrong.append(f"{mod} -> {target}  ({a}: layer {LAYER_OF[a]}, {b}: layer {LAYER_OF[b]})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
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
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules():
    # a package's __init__ re-exporting its own submodules is not a cycle between modules
    graph = {m: {t for t in ts if not (m.startswith(t + ".") )} for m, ts in GRAPH.items()}
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_no_import_cycles_between_packages():
    packages: dict[str, set[str]] = defaultdict(set)
    for mod, targets in GRAPH.items():
        packages[_top(mod)] |= {_top(t) for t in targets if _top(t) != _top(mod)}
    assert not _cycles(dict(packages)), f"package cycles: {_cycles(dict(packages))}"


def test_the_checker_sees_a_violation(tmp_path):
    """The test can fail: a planted upward import and a planted cycle are found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    (tmp_path / "m.py").write_text("if TYPE_CHECKING:\n    import cxrbench.engine\nimport cxrbench.report.build\n"
                                   "def f():\n    from cxrbench.cli import main\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert _imports(tmp_path / "m.py") == {"cxrbench.report.build", "cxrbench.cli"}
    finally:
        PACKAGE = saved


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_400_lines_without_a_reason(path):
    lines = path.read_text(encoding="utf-8").count("\n")
    if lines <= 420:
        return
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert "lines" in doc.lower() and "because" in doc.lower(), \
        f"{path.name} has {lines} lines: split it, or say in its docstring why it is long ('... lines because ...')"
