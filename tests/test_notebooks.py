"""Each teaching notebook runs top to bottom in a fresh kernel (few draws in CI), and the
stored notebooks show themselves: every figure an image, no progress bars."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9]*.ipynb"))


def test_notebooks_exist_with_saved_outputs():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{path.name} not executed"
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{path.name} has saved errors"


#: a code cell that draws: it must leave an image
DRAWS = re.compile(r"\bplot_\w+\(|plt\.subplots|\.small_multiple\(|explore_pooling\(")
#: a progress bar that is not finished ("Sampling 4 chains [###---] 100/8000")
UNFINISHED = re.compile(r"\[[#-]+\] (\d+)/(\d+)")


def figure_problems(nb) -> list[str]:
    """Bare ``<Figure ...>`` outputs, and drawing cells without an image."""
    problems = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        images = 0
        for out in cell.outputs:
            data = out.get("data", {})
            images += "image/png" in data
            if "<Figure" in str(data.get("text/plain", "")) and "image/png" not in data:
                problems.append(f"code cell {i}: a figure stored as text only")
        if DRAWS.search(cell.source) and not images:
            problems.append(f"code cell {i}: draws a figure but stores no image")
    return problems


def progress_problems(nb) -> list[str]:
    """Redrawn lines or unfinished progress bars in stored stream outputs."""
    problems = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        for out in streams:
            if "\r" in out.text:
                problems.append(f"code cell {i}: a redrawn (carriage-return) line")
            for done, total in UNFINISHED.findall(out.text):
                if done != total:
                    problems.append(f"code cell {i}: progress bar at {done}/{total}")
        if len({o.name for o in streams}) != len(streams):
            problems.append(f"code cell {i}: stream outputs not merged")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_notebook_shows_its_figures_and_no_progress_bars(path):
    nb = nbformat.read(path, as_version=4)
    assert not figure_problems(nb), f"{path.name}: {figure_problems(nb)}"
    assert not progress_problems(nb), f"{path.name}: {progress_problems(nb)}"
    first = nb.cells[0].source
    assert "**The question" in first and "**The answer in words.**" in first, path.name


def test_the_checks_catch_a_bare_figure_and_a_progress_bar():
    cell = nbformat.v4.new_code_cell("fig = blm.plot_shrinkage(fit, None)\nfig")
    cell.outputs = [
        nbformat.v4.new_output(
            "execute_result", data={"text/plain": "<Figure size 700x620 with 1 Axes>"}
        ),
        nbformat.v4.new_output("stream", name="stderr", text="Sampling [#--] 100/8000, 0.0 s\r"),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert len(figure_problems(nb)) == 2
    assert len(progress_problems(nb)) == 2
    cell.outputs[0]["data"]["image/png"] = "iVBORw0KGgo="
    cell.outputs[1]["text"] = "Sampling [###] 8000/8000, 0.2 s\n"
    assert not figure_problems(nb) and not progress_problems(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("BAYESLMM_NB_DRAWS", "150")
    monkeypatch.setenv("BAYESLMM_NB_CHAINS", "2")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    ).execute()
    outputs = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert not figure_problems(nb), f"{path.name}: {figure_problems(nb)}"
    if path.stem.startswith("01"):  # the numbers the notebook teaches, from a fresh run
        assert "251.40510 + 40.783710 = 292.1888" in outputs
        assert "REML criterion at convergence: -66.7" in outputs
        # the sampler's conditional of b at lme4's estimates: lme4's modes within MC error
        z = float(outputs.split("largest |mean - ranef| in Monte Carlo SEs: ")[1].split()[0])
        assert z < 4.5
    if path.stem.startswith("05"):  # lme4's profile interval, lmerTest's table
        assert "sd_Subject[Days]                   3.80118    8.75339" in outputs
        assert "Days          10.467      1.546  17.000   6.771 3.26e-06 ***" in outputs
