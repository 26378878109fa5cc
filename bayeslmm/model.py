"""``Model``: one lme4 formula and one design, two estimation paths (REML and NUTS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from .design import Design, build_design

if TYPE_CHECKING:
    from .reml import LmerFit


class Model:
    """A linear mixed model ``y = Xβ + Zb + ε`` specified in lme4 syntax.

    >>> model = Model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> model.fixef_names
    ['(Intercept)', 'Days']
    """

    def __init__(self, formula: str, data: pd.DataFrame, *, priors: dict[str, Any] | None = None):
        self.formula = formula
        self.design: Design = build_design(formula, data)
        self.prior_overrides: dict[str, Any] = dict(priors or {})

    # -- the spec ---------------------------------------------------------------------
    @property
    def fixef_names(self) -> list[str]:
        """Fixed-effect column names, exactly as lme4 names them."""
        return list(self.design.fixef_names)

    @property
    def group_factors(self) -> list[str]:
        """Grouping factors in lme4's order ("cask:batch" before "batch")."""
        return self.design.group_factors

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels per grouping factor."""
        return self.design.ngroups

    @property
    def theta_names(self) -> list[str]:
        """lme4's names of the relative covariance parameters θ."""
        return self.design.theta_names

    @property
    def nobs(self) -> int:
        """Number of observations used (after dropping rows with missing values)."""
        return self.design.nobs

    @property
    def n_dropped(self) -> int:
        """Number of rows dropped for missing values."""
        return self.design.n_dropped

    def __repr__(self) -> str:
        groups = ", ".join(f"{k}: {v}" for k, v in self.ngroups.items())
        return f"Model({self.formula!r}; nobs={self.nobs}, groups: {groups})"

    # -- REML / ML --------------------------------------------------------------------
    def fit_reml(self, reml: bool = True) -> LmerFit:
        """Fit by REML (or ML with ``reml=False``) with lme4's profiled PLS algorithm."""
        from .reml import fit_lmer

        return fit_lmer(self.design, reml=reml)


def lmer(formula: str, data: pd.DataFrame, reml: bool = True) -> LmerFit:
    """One-line shortcut: ``Model(formula, data).fit_reml(reml)``, like R's ``lmer``."""
    return Model(formula, data).fit_reml(reml=reml)
