"""The REML / ML path: lme4's profiled PLS algorithm (``lmer``), lme4-exact.

Stages, as lme4's ``modular.R``: the criterion at θ (:mod:`.pls`, with the dense and the
blocked factorisations in :mod:`.dense` and :mod:`.blocked`), its minimisation
(:mod:`.optimize`), the fit (:mod:`.fit`: :class:`LmerFit`, :func:`fit_lmer`), its printed
summary (:mod:`.summary`, :mod:`.rformat`) and its JSON (:mod:`.io`).
"""

from .fit import LmerFit, fit_lmer, load_fit

__all__ = ["LmerFit", "fit_lmer", "load_fit"]
