"""bayeslmm: linear mixed models in lme4 syntax, fitted by REML and by NUTS, side by side.

The public names load on first use (PEP 562): ``import bayeslmm`` imports neither PyMC nor
ArviZ nor matplotlib, and a REML fit never does.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from .errors import (
    BayesLMMError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    LOOWarning,
    ParameterError,
    ParameterizationWarning,
    PriorError,
    SamplingError,
    SingularFitWarning,
)

if TYPE_CHECKING:
    from .bayes.explore import compare_models
    from .bayes.posterior import Posterior, load_posterior
    from .bayes.priors import Prior
    from .compare import ComparisonError, compare, compare_emmeans, shrinkage
    from .datasets import list_datasets, load_dataset
    from .design import Design, ReTerm
    from .emgrid import EmmeansError
    from .explore_plots import plot_posterior, plot_ppc, plot_predictions, plot_trace
    from .model import Model, lmer
    from .plots import plot_compare, plot_group_fits, plot_shrinkage
    from .pooling import PoolingError
    from .pooling_explorer import PoolingExplorer, explore_pooling
    from .reml.anova import anova
    from .reml.fit import LmerFit, load_fit
    from .reml.inference import InferenceError, MLRefitWarning
    from .report import report

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "ComparisonError": "compare",
    "Design": "design",
    "EmmeansError": "emgrid",
    "InferenceError": "reml.inference",
    "LmerFit": "reml.fit",
    "MLRefitWarning": "reml.inference",
    "Model": "model",
    "Posterior": "bayes.posterior",
    "Prior": "bayes.priors",
    "ReTerm": "design",
    "anova": "reml.anova",
    "compare": "compare",
    "compare_emmeans": "compare",
    "compare_models": "bayes.explore",
    "list_datasets": "datasets",
    "lmer": "model",
    "load_dataset": "datasets",
    "load_fit": "reml.fit",
    "load_posterior": "bayes.posterior",
    "plot_compare": "plots",
    "plot_group_fits": "plots",
    "plot_posterior": "explore_plots",
    "plot_ppc": "explore_plots",
    "plot_predictions": "explore_plots",
    "plot_shrinkage": "plots",
    "plot_trace": "explore_plots",
    "PoolingError": "pooling",
    "PoolingExplorer": "pooling_explorer",
    "explore_pooling": "pooling_explorer",
    "report": "report",
    "shrinkage": "compare",
}

__all__ = [
    "BayesLMMError",
    "ComparisonError",
    "ConvergenceWarning",
    "DataError",
    "DataWarning",
    "Design",
    "EmmeansError",
    "FormulaError",
    "InferenceError",
    "LOOWarning",
    "LmerFit",
    "MLRefitWarning",
    "Model",
    "ParameterError",
    "ParameterizationWarning",
    "PoolingError",
    "PoolingExplorer",
    "Posterior",
    "Prior",
    "PriorError",
    "ReTerm",
    "SamplingError",
    "SingularFitWarning",
    "anova",
    "compare",
    "compare_emmeans",
    "compare_models",
    "explore_pooling",
    "list_datasets",
    "lmer",
    "load_dataset",
    "load_fit",
    "load_posterior",
    "plot_compare",
    "plot_group_fits",
    "plot_posterior",
    "plot_ppc",
    "plot_predictions",
    "plot_shrinkage",
    "plot_trace",
    "report",
    "shrinkage",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package module.  ``bayeslmm.compare`` is the function, as it always was, although
    a module of that name defines it: importing the module (which sets the package
    attribute of that name) must not hide the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("compare", "report") and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
