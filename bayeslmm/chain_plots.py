"""Trace and rank plots of every parameter in one figure, drawn directly with matplotlib
(a fraction of a second, for the HTML report; ``blm.plot_trace`` is ArviZ's richer view).

Row per parameter (the labels of ``blm.compare``): the draws of each chain against
iteration (at most 500 per chain, evenly spaced), and the rank plot (Vehtari et al.
2021): the ranks of all draws pooled, one histogram per chain.  Chains that mix have
flat, overlapping rank histograms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from .bayes.posterior import Posterior

#: bins of the rank histograms
RANK_BINS = 20
#: draws per chain drawn in a trace (every k-th beyond it; the rank plot uses them all)
TRACE_POINTS = 500


def rank_counts(draws: np.ndarray, bins: int = RANK_BINS) -> np.ndarray:
    """Per chain (rows of ``draws``, chains x draws), how many of its draws fall in each of
    ``bins`` equal ranges of the pooled ranks (ties ranked in draw order)."""
    chains, n = draws.shape
    ranks = np.empty(chains * n)
    ranks[np.argsort(draws.ravel(), kind="stable")] = np.arange(chains * n)
    which = np.minimum((ranks * bins / (chains * n)).astype(int), bins - 1)
    return np.stack([np.bincount(w, minlength=bins) for w in which.reshape(chains, n)])


def plot_chains(posterior: Posterior) -> Figure:
    """Trace (left) and rank histograms (right) of every parameter, coloured by chain."""
    draws = posterior.parameter_draws().transpose("parameter", "chain", "draw")
    labels = [str(p) for p in draws.coords["parameter"].values]
    values = draws.to_numpy()
    height = 0.7 + 1.0 * len(labels)
    fig = Figure(figsize=(9.0, height))  # fixed margins: a fraction of constrained layout's time
    fig.subplots_adjust(left=0.22, right=0.98, top=1 - 0.35 / height, bottom=0.45 / height,
                        hspace=0.25, wspace=0.05)  # fmt: skip
    axes = fig.subplots(len(labels), 2, squeeze=False, width_ratios=[2.2, 1.0], sharex="col")
    for row, (label, x) in enumerate(zip(labels, values, strict=True)):
        trace, rank = axes[row]
        step = max(1, x.shape[1] // TRACE_POINTS)  # the eye sees no more; drawing costs
        iteration = np.arange(0, x.shape[1], step)
        for c, chain in enumerate(x):
            trace.plot(iteration, chain[::step], lw=0.5, alpha=0.75, color=f"C{c}")
        trace.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
        counts = rank_counts(x)
        for c, count in enumerate(counts):
            rank.stairs(count, np.arange(RANK_BINS + 1), color=f"C{c}", lw=1.2, baseline=None)
        rank.axhline(x.size / len(x) / RANK_BINS, color="black", lw=0.8, ls="--")
        rank.set_ylim(0, 1.2 * counts.max())
        rank.set_yticks([])
        for ax in (trace, rank):
            ax.tick_params(labelsize=6)
    axes[0, 0].set_title("trace (one colour per chain)", fontsize=9)
    axes[0, 1].set_title("rank histograms (flat = chains agree)", fontsize=9)
    axes[-1, 0].set_xlabel("iteration", fontsize=8)
    axes[-1, 1].set_xlabel("rank bin of the pooled draws", fontsize=8)
    return fig
