"""The Bayesian path: the design as a PyMC model, sampled with NUTS.

Stages: priors (:mod:`.priors`, PyMC-free), centred or non-centred per term
(:mod:`.parameterization`), the PyMC model (:mod:`.model`), drawing from it
(:mod:`.sampling`), the draws in LmerFit's vocabulary (:mod:`.posterior`, with
:mod:`.summary`) and on disk (:mod:`.io`).  Importing this package loads none of them:
PyMC and ArviZ load with the modules that need them.
"""

from __future__ import annotations

import sys
from typing import Any


def is_posterior(value: Any) -> bool:
    """Whether ``value`` is a :class:`~bayeslmm.bayes.posterior.Posterior`.  No Posterior
    exists before its module is imported, so this never imports ArviZ itself."""
    module = sys.modules.get(f"{__name__}.posterior")
    return module is not None and isinstance(value, module.Posterior)
