"""bayeslmm: linear mixed models in lme4 syntax, fitted by REML and by NUTS, side by side."""

from .datasets import list_datasets, load_dataset
from .design import Design, ReTerm
from .errors import (
    BayesLMMError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    PriorError,
    SamplingError,
    SingularFitWarning,
)
from .model import Model, lmer

__version__ = "0.1.0"

__all__ = [
    "BayesLMMError",
    "ConvergenceWarning",
    "DataError",
    "DataWarning",
    "Design",
    "FormulaError",
    "Model",
    "PriorError",
    "ReTerm",
    "SamplingError",
    "SingularFitWarning",
    "list_datasets",
    "lmer",
    "load_dataset",
]
