"""The pooling explorer's ipywidgets panel: sliders and buttons in, picture and table out.

Every slider change builds a :class:`~bayeslmm.pooling.Setting` and hands it to the
explorer, which recomputes (milliseconds) and asks the panel to redraw; a button moves the
explorer and the panel moves its sliders to match.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import ipywidgets as widgets
import pandas as pd

from . import names
from .pooling import Setting

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Controlled(Protocol):
    """What the panel drives (:class:`~.pooling_explorer.PoolingExplorer`)."""

    setting: Setting
    kept: int
    max_kept: int
    reml: Setting | None
    posterior_mean: Setting | None

    def set(self, setting: Setting | None = None, *, kept: int | None = None) -> Any: ...

    def simulate(self) -> Any: ...

    def observed(self) -> None: ...

    def figure(self) -> Figure: ...

    def png(self, figure: Figure) -> bytes: ...

    @property
    def table(self) -> pd.DataFrame: ...


#: the log sliders reach this many decades either side of the starting value
DECADES = 3.0


def _log_slider(label: str, value: float, reference: float, decades: float) -> Any:
    centre = math.log10(reference)
    return widgets.FloatLogSlider(
        value=max(value, 10 ** (centre - decades)),
        base=10,
        min=centre - decades,
        max=centre + decades,
        step=0.01,
        description=label,
        continuous_update=False,
        readout_format=".4g",
        style={"description_width": "180px"},
        layout={"width": "520px"},
    )


class PoolingPanel:
    """The explorer's controls and outputs (``.box`` is the ipywidgets container)."""

    def __init__(self, ex: Controlled):
        self.ex = ex
        self._hold = False
        s = ex.setting
        home = ex.reml or s  # the ranges centre on the estimates, whatever the start
        sigma = s.sigma
        self.sliders: dict[str, Any] = {}
        for (group, column), value in s.sd.items():
            estimate = home.sd[(group, column)]
            reference = estimate if estimate > 0 else home.sigma
            label = names.sd_label(group, column)
            self.sliders[label] = _log_slider(label, value, reference, DECADES)
        for (group, a, b), value in s.corr.items():
            label = names.corr_label(group, a, b)
            self.sliders[label] = widgets.FloatSlider(
                value=value, min=-0.99, max=0.99, step=0.01, description=label,
                continuous_update=False, style={"description_width": "180px"},
                layout={"width": "520px"},
            )  # fmt: skip
        self.sliders[names.SIGMA] = _log_slider(names.SIGMA, sigma, home.sigma, 2.0)
        self.sliders["kept"] = widgets.IntSlider(
            value=ex.kept, min=1, max=ex.max_kept, description="kept per group (first rows)",
            continuous_update=False, style={"description_width": "180px"},
            layout={"width": "520px"},
        )  # fmt: skip
        self.buttons = {
            "reml": widgets.Button(description="REML", disabled=ex.reml is None),
            "posterior": widgets.Button(
                description="posterior mean", disabled=ex.posterior_mean is None
            ),
            "simulate": widgets.Button(description="simulate new data from these values"),
            "observed": widgets.Button(description="observed data"),
        }
        self.buttons["simulate"].layout.width = "260px"
        for slider in self.sliders.values():
            slider.observe(self._moved, names="value")
        self.buttons["reml"].on_click(lambda _: ex.set(ex.reml))
        self.buttons["posterior"].on_click(lambda _: ex.set(ex.posterior_mean))
        self.buttons["simulate"].on_click(lambda _: ex.simulate())
        self.buttons["observed"].on_click(lambda _: ex.observed())
        self.image = widgets.Image(format="png")
        self.table = widgets.HTML(layout={"max_height": "320px", "overflow": "auto"})
        controls = widgets.VBox([*self.sliders.values(), widgets.HBox(list(self.buttons.values()))])
        self.box = widgets.VBox([controls, self.image, self.table])
        self.refresh()

    def setting(self) -> Setting:
        """The setting the sliders show."""
        s = self.ex.setting
        value = {label: slider.value for label, slider in self.sliders.items()}
        sd = {key: float(value[names.sd_label(*key)]) for key in s.sd}
        corr = {key: float(value[names.corr_label(*key)]) for key in s.corr}
        return Setting(sd, corr, float(value[names.SIGMA]))

    def _moved(self, change: Any) -> None:
        if not self._hold:
            self.ex.set(self.setting(), kept=self.sliders["kept"].value)

    def refresh(self) -> None:
        """Sliders to the explorer's setting, then the picture and the table."""
        self._hold = True
        try:
            for label, value in self.ex.setting.labels().items():
                slider = self.sliders[label]
                if isinstance(slider, widgets.FloatLogSlider) and value > 0:
                    exponent = math.log10(value)  # a value set from code widens the range
                    slider.min = min(slider.min, math.floor(exponent))
                    slider.max = max(slider.max, math.ceil(exponent))
                slider.value = value
            self.sliders["kept"].value = self.ex.kept
        finally:
            self._hold = False
        self.image.value = self.ex.png(self.ex.figure())
        self.table.value = self.ex.table.round(3).to_html()


def build_widget(ex: Controlled) -> PoolingPanel:
    """The panel for ``ex``."""
    return PoolingPanel(ex)
