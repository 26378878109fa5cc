"""The package's shape: layers with one direction, no import cycles, lazy heavy imports.

Layers, lowest first (a module imports its own layer or lower ones; peers do not import
each other)::

    base    errors, names, progress, rng
    spec    datasets, formula, design
    reml | bayes                       (estimation, peers)
    report (compare, plots, explore_plots, chain_plots, pooling, pooling_explorer,
            pooling_figures, pooling_widget) | teach (params, simulate, explain)
    facade  model | document (report: the HTML report, which tells the story too)
    cli     cli
    package bayeslmm/__init__ (lazy re-exports)

Every ``import`` / ``from ... import`` of a bayeslmm module counts, at module level or
inside a function or an ``if TYPE_CHECKING:`` block.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import bayeslmm

PACKAGE = Path(bayeslmm.__file__).parent
LAYERS = {
    "base": (0, {"errors", "names", "progress", "rng"}),
    "spec": (1, {"datasets", "formula", "design", "emgrid"}),
    "reml": (2, {"reml"}),
    "bayes": (2, {"bayes"}),
    "report": (
        3,
        {
            "compare",
            "plots",
            "explore_plots",
            "chain_plots",
            "pooling",
            "pooling_explorer",
            "pooling_figures",
            "pooling_widget",
        },
    ),
    "teach": (3, {"params", "simulate", "explain"}),
    "facade": (4, {"model"}),
    "document": (4, {"report"}),
    "cli": (5, {"cli"}),
}
HEAVY = ("pymc", "pytensor", "arviz", "matplotlib", "numba", "ipywidgets")
#: what a REML user never loads either (formulaic: formulas that are sums of columns)
NOT_FOR_REML = (*HEAVY, "xarray", "formulaic")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(p): p for p in PACKAGE.rglob("*.py") if "data" not in p.relative_to(PACKAGE).parts
}


def _imports(name: str) -> set[str]:
    """The bayeslmm modules that module ``name`` imports, wherever the import statement is."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bayeslmm"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "bayeslmm":
                continue
            for alias in node.names:  # "from . import names" imports the module names
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found - {name}


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "package"
    return next(layer for layer, (_, members) in LAYERS.items() if parts[1] in members)


def _rank(layer: str) -> int:
    return LAYERS[layer][0] if layer in LAYERS else len(LAYERS)


def test_every_module_has_a_layer():
    assert {_layer(name) for name in MODULES} <= {*LAYERS, "package"}


def test_imports_point_down_the_layers():
    upward = [
        f"{a} ({_layer(a)}) imports {b} ({_layer(b)})"
        for a, targets in GRAPH.items()
        for b in targets
        if _layer(a) != _layer(b) and _rank(_layer(b)) >= _rank(_layer(a))
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_the_graph_sees_function_local_and_type_checking_imports():
    """The checks above are only as good as the graph: it has the lazy imports too."""
    assert "bayeslmm.bayes.sampling" in GRAPH["bayeslmm.model"]  # inside Model.sample
    assert "bayeslmm.bayes.posterior" in GRAPH["bayeslmm.params"]  # TYPE_CHECKING and local
    assert "bayeslmm.names" in GRAPH["bayeslmm.design"]  # "from . import names"
    assert "bayeslmm.reml.pls" in GRAPH["bayeslmm.reml.dense"]


def test_no_private_name_is_imported_across_modules():
    private = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            ours = isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("bayeslmm")
            )
            if ours:
                private += [f"{name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, "\n".join(private)


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_import_and_a_reml_fit_load_no_bayesian_or_plotting_library():
    code = f"""
import sys
import bayeslmm as blm
print(sorted(m for m in {NOT_FOR_REML} if m in sys.modules))
fit = blm.lmer("Reaction ~ Days + (Days | Subject)", blm.load_dataset("sleepstudy"))
fit.summary(), blm.compare(fit, None), blm.shrinkage(fit, None)
model = blm.Model("Reaction ~ Days + (Days | Subject)", blm.load_dataset("sleepstudy"))
model.priors, model.explain(fit)
try:
    blm.Model(model.formula, blm.load_dataset("sleepstudy"), priors={{"Dayz": "Normal(0, 1)"}})
except blm.PriorError:
    pass
print(sorted(m for m in {NOT_FOR_REML} if m in sys.modules))
"""
    after_import, after_fit = _run(code).splitlines()
    assert after_import == "[]"
    assert after_fit == "[]"  # a plain formula needs no formulaic either


def test_public_names_load_on_first_use():
    names = _run("import bayeslmm as blm; print(' '.join(dir(blm)))").split()
    assert set(bayeslmm.__all__) <= set(names)
    for name in bayeslmm.__all__:
        assert getattr(bayeslmm, name) is not None
    module = importlib.import_module("bayeslmm.compare")  # the module named like the function
    assert bayeslmm.compare is module.compare
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = bayeslmm.nope
