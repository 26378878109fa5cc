"""The package's NUTS (numba), in the pieces of Stan's ``base_nuts`` and
``windowed_adaptation`` (and of blackjax and nuts-rs), each tested on its own:

- :mod:`.state`: named state (record dtypes and NamedTuples), no index constants;
- :mod:`.integrator`: the metric's products, momenta, the leapfrog step;
- :mod:`.termination`: the generalised no-U-turn criterion;
- :mod:`.trajectory`: sub-tree extension and merge, progressive sampling, a transition;
- :mod:`.stepsize`: the step-size search and dual averaging;
- :mod:`.metric`: the Welford window and the metric update;
- :mod:`.adaptation`: Stan's window schedule and the per-iteration adaptation;
- :mod:`.chain`: a chunk of iterations of one chain (compiled) and the chain runner.

The target is any kernel data that :func:`bayeslmm.bayes.compiled.logp_fn` dispatches on
(the marginal model's kernels, or a Gaussian for tests).  numba's disk cache keys each
function on its own file only: :mod:`.cache` makes every module here share one stamp with
``compiled.py``, so a change to a kernel recompiles the sampler that calls it.
"""

from . import cache as _cache  # noqa: F401  (before any compiled function is defined)
