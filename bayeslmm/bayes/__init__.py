"""The Bayesian path: the design as a PyMC model, sampled with NUTS.

Stages: priors (:mod:`.priors`, PyMC-free), centred or non-centred per term
(:mod:`.parameterization`), the PyMC model (:mod:`.model`), drawing from it
(:mod:`.sampling`), the draws in LmerFit's vocabulary (:mod:`.posterior`, with
:mod:`.summary`) and on disk (:mod:`.io`).  Importing this package loads none of them:
PyMC and ArviZ load with the modules that need them.
"""
