"""bayeslmm: linear mixed models in lme4 syntax, fitted by REML and by NUTS, side by side."""

from .bayes.posterior import Posterior, load_posterior
from .bayes.priors import Prior
from .compare import ComparisonError, compare, shrinkage
from .datasets import list_datasets, load_dataset
from .design import Design, ReTerm
from .errors import (
    BayesLMMError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    ParameterError,
    PriorError,
    SamplingError,
    SingularFitWarning,
)
from .model import Model, lmer
from .plots import plot_compare, plot_group_fits, plot_shrinkage
from .reml import LmerFit, load_fit

__version__ = "0.1.0"

__all__ = [
    "BayesLMMError",
    "ComparisonError",
    "ConvergenceWarning",
    "DataError",
    "DataWarning",
    "Design",
    "FormulaError",
    "LmerFit",
    "Model",
    "ParameterError",
    "Posterior",
    "Prior",
    "PriorError",
    "ReTerm",
    "SamplingError",
    "SingularFitWarning",
    "compare",
    "list_datasets",
    "lmer",
    "load_dataset",
    "load_fit",
    "load_posterior",
    "plot_compare",
    "plot_group_fits",
    "plot_shrinkage",
    "shrinkage",
]
