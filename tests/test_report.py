"""The one-file HTML report: its content, that it needs nothing from the network, and
that a real browser (headless Debian chromium) renders every section.

``python tests/test_report.py`` writes the screenshot of the sleepstudy report shown in
the README (docs/img/report_sleepstudy.png).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import bayeslmm as blm
from bayeslmm.cli import main
from bayeslmm.report import SECTION_COLORS, SECTIONS

FORMULA = "Reaction ~ Days + (Days | Subject)"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1100, 9000


@pytest.fixture(scope="module")
def fits():
    model = blm.Model(FORMULA, blm.load_dataset("sleepstudy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blm.ConvergenceWarning)  # few draws
        posterior = model.sample(draws=200, tune=200, chains=2, seed=7, progressbar=False)
    return model.fit_reml(), posterior


@pytest.fixture(scope="module")
def report_path(fits, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "sleepstudy.html"
    return blm.report(*fits, path, seed=7, data_name="sleepstudy")


def _sections(text: str) -> dict[str, str]:
    found = re.findall(r'<section id="(\w+)">(.*?)</section>', text, flags=re.S)
    return dict(found)


def test_report_holds_every_section_with_the_fits_numbers(fits, report_path):
    fit, posterior = fits
    text = report_path.read_text()
    sections = _sections(text)
    assert list(sections) == list(SECTIONS)
    assert "REML criterion at convergence: 1743.6" in sections["reml"]  # lme4's summary
    assert "251.405" in sections["reml"]
    assert "divergences" in sections["posterior"] and "R-hat" in sections["posterior"]
    assert sections["posterior"].count("<img") == 1  # trace and rank plots
    assert "sd_Subject[Days]" in sections["compare"] and "profile" in sections["compare"]
    assert sections["shrinkage"].count("<img") == 1 and "shrinkage_reml" in sections["shrinkage"]
    story = str(fit.design.formula)
    assert story in sections["story"] and "Subject[i]" in sections["story"]
    mean_sigma = float(posterior.varcorr.query("grp == 'Residual'")["sdcor"].item())
    assert f"sigma = {mean_sigma:.4g}" in sections["story"]  # posterior means in the story
    for name, prior in posterior.priors.items():
        assert name in sections["priors"] and str(prior) in sections["priors"]
    assert ">7<" in sections["versions"] and "pymc" in sections["versions"]


def test_rank_counts_split_the_pooled_ranks_by_chain():
    from bayeslmm.chain_plots import rank_counts

    low, high = np.arange(100.0), np.arange(100.0) + 1000  # chain 0 entirely below chain 1
    counts = rank_counts(np.stack([low, high]), bins=4)
    np.testing.assert_array_equal(counts, [[50, 50, 0, 0], [0, 0, 50, 50]])
    mixed = rank_counts(np.random.default_rng(1).normal(size=(4, 4000)), bins=10)
    assert (mixed.sum(axis=1) == 4000).all()
    assert np.abs(mixed - 400).max() < 4 * np.sqrt(400)  # flat where the chains agree


def test_report_is_self_contained(report_path):
    text = report_path.read_text()
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", text.replace("<!DOCTYPE html>", ""))
    assert "url(" not in text and "<script" not in text and "<link" not in text
    images = re.findall(r'<img alt="figure" src="data:image/png;base64,([^"]+)">', text)
    assert len(images) == text.count("<img") == 2
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "@media print" in text


def test_report_of_a_reml_fit_alone_lists_the_models_priors(tmp_path):
    fit = blm.lmer("Reaction ~ Days + (1 | Subject)", blm.load_dataset("sleepstudy"))
    text = blm.report(fit, None, tmp_path / "r.html").read_text()
    sections = _sections(text)
    assert list(sections) == list(SECTIONS)
    assert "No posterior" in sections["posterior"]
    assert "HalfStudentT" in sections["priors"] and "HalfStudentT" in sections["story"]
    assert "REML estimates" in sections["story"]
    with pytest.raises(blm.BayesLMMError, match=r"r\.pdf"):
        blm.report(fit, None, tmp_path / "r.pdf")


def test_cli_writes_the_report(tmp_path, capsys):
    path = tmp_path / "r.html"
    argv = ["fit", FORMULA, "--dataset", "sleepstudy", "--method", "reml", "--report", str(path)]
    assert main(argv) == 0
    assert list(_sections(path.read_text())) == list(SECTIONS)
    assert f"wrote {path}" in capsys.readouterr().err
    assert main([*argv[:-1], str(tmp_path / "r.txt")]) == 2
    assert "must end in .html" in capsys.readouterr().err


def test_cli_explain_prints_the_reports_story(tmp_path, capsys):
    assert main(["explain", FORMULA, "--dataset", "sleepstudy"]) == 0
    story = capsys.readouterr().out.strip()
    fit = blm.lmer(FORMULA, blm.load_dataset("sleepstudy"))
    text = blm.report(fit, None, tmp_path / "r.html").read_text()
    import html

    assert html.escape(story) in _sections(text)["story"]
    assert "tau_u1 = 5.922" in story
    assert main(["explain", FORMULA, "--dataset", "sleepstudy", "--symbols"]) == 0
    assert "5.922" not in capsys.readouterr().out


def screenshot(html_path: Path, png_path: Path, height: int = HEIGHT) -> np.ndarray:
    """A headless chromium screenshot of the page (no network: every host unresolvable)."""
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--window-size={WIDTH},{height}",
            f"--screenshot={png_path}",
            html_path.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from matplotlib.image import imread

    return (imread(png_path)[..., :3] * 255).round().astype(np.uint8)


def section_tops(image: np.ndarray) -> dict[str, int]:
    """The row where each section's heading mark (its colour, 10 px wide) first shows."""
    tops = {}
    for name, colour in SECTION_COLORS.items():
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        match = (np.abs(image.astype(int) - rgb).max(axis=2) <= 2).sum(axis=1) >= 8
        rows = np.flatnonzero(match)
        if len(rows) >= 12:  # a mark as tall as a heading, not a stray pixel
            tops[name] = int(rows[0])
    return tops


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is absent (apt-get install chromium)")
def test_chromium_renders_every_section(report_path, tmp_path):
    image = screenshot(report_path, tmp_path / "page.png")
    tops = section_tops(image)
    assert list(tops) == list(SECTIONS), f"sections rendered: {list(tops)}"
    assert list(tops.values()) == sorted(tops.values())  # in the report's order
    end = int(np.flatnonzero((image.min(axis=2) < 240).any(axis=1))[-1]) + 1
    bottoms = [*list(tops.values())[1:], end]
    for (name, top), bottom in zip(tops.items(), bottoms, strict=True):
        band = image[top:bottom]
        ink = (band.min(axis=2) < 200).mean()
        assert ink > 0.004, f"section {name} looks empty ({ink:.4f} of its pixels drawn)"
        if name in ("posterior", "shrinkage"):  # the inline images decoded and drew
            blue = (np.abs(band.astype(int) - [31, 119, 180]).max(axis=2) <= 12).sum()
            assert blue > 300, f"no figure drawn in {name}"
    assert (image[-40:].min(axis=2) > 240).all()  # the page ended inside the window


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is absent (apt-get install chromium)")
def test_chromium_prints_the_report_on_a_few_pages(report_path, tmp_path):
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         f"--print-to-pdf={pdf}", report_path.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))
    assert 2 <= pages <= 12  # every section, images kept whole (print style), no blank run


if __name__ == "__main__":  # the README's screenshot
    import tempfile

    from matplotlib.image import imsave

    model = blm.Model(FORMULA, blm.load_dataset("sleepstudy"))
    posterior = model.sample(draws=1000, chains=4, seed=1, progressbar=False)
    with tempfile.TemporaryDirectory() as tmp:
        page = blm.report(model.fit_reml(), posterior, Path(tmp) / "r.html", seed=1,
                          data_name="sleepstudy")  # fmt: skip
        shot = screenshot(page, Path(tmp) / "page.png")
    print("sections at rows", section_tops(shot), file=sys.stderr)
    drawn = np.flatnonzero((shot.min(axis=2) < 240).any(axis=1))
    out = Path(__file__).parent.parent / "docs" / "img" / "report_sleepstudy.png"
    imsave(out, shot[: drawn[-1] + 30])
    print("wrote", out, file=sys.stderr)
