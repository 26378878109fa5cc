"""Package exceptions: every user-facing error is a :class:`BayesLMMError`."""

from __future__ import annotations


class BayesLMMError(Exception):
    """Base class of every error bayeslmm raises on bad input or a failed fit."""


class FormulaError(BayesLMMError, ValueError):
    """The formula is malformed or names something that cannot be modelled."""


class DataError(BayesLMMError, ValueError):
    """The data cannot be used with the formula (missing column, inf values, ...)."""


class PriorError(BayesLMMError, ValueError):
    """A prior override names an unknown parameter or is not a valid distribution."""


class ParameterError(BayesLMMError, ValueError):
    """Parameter values given for simulation do not fit the model (names, shapes, ranges)."""


class SamplingError(BayesLMMError, ValueError):
    """Invalid sampler settings (e.g. non-positive draws or chains)."""


class ConvergenceWarning(UserWarning):
    """The optimiser or the sampler did not converge cleanly."""


class SingularFitWarning(UserWarning):
    """A variance component sits on its boundary (lme4's "boundary (singular) fit")."""


class ParameterizationWarning(UserWarning):
    """``parameterization="auto"`` could not integrate the random effects out (the reason
    is in the message)."""


class DataWarning(UserWarning):
    """Rows were dropped or columns aliased while building the design."""


class LOOWarning(UserWarning):
    """PSIS-LOO is unreliable for some observations or groups (Pareto k above 0.7)."""
