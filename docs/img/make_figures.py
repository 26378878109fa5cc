"""Regenerate the README figures: ``python docs/img/make_figures.py`` (a few seconds).

sleepstudy, ``Reaction ~ Days + (Days | Subject)``: REML fit and 4 x 1000 NUTS draws.
"""

from __future__ import annotations

from pathlib import Path

import bayeslmm as blm

HERE = Path(__file__).parent


def main() -> None:
    model = blm.Model("Reaction ~ Days + (Days | Subject)", blm.load_dataset("sleepstudy"))
    fit = model.fit_reml()
    posterior = model.sample(draws=1000, tune=1000, chains=4, seed=2024)
    print(blm.compare(fit, posterior))
    figures = {
        "compare_sleepstudy.png": blm.plot_compare(fit, posterior),
        "shrinkage_sleepstudy.png": blm.plot_shrinkage(fit, posterior),
        "group_fits_sleepstudy.png": blm.plot_group_fits(fit, posterior),
    }
    for name, fig in figures.items():
        fig.savefig(HERE / name, dpi=110)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
