"""Type III / II F tests and estimated marginal means of REML fits, against lmerTest and
emmeans 1.8 (Oats, ``tests/reference/breadth/lme4_breadth.json``), and their properties."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayeslmm import Model, load_dataset
from bayeslmm.emgrid import EmmeansError
from bayeslmm.reml.ddf import Contrasts

REF_DIR = Path(__file__).parent / "reference" / "breadth"
REF = json.loads((REF_DIR / "lme4_breadth.json").read_text())["emmeans_oats"]


@pytest.fixture(scope="module")
def oats():
    return pd.read_csv(REF_DIR / "oats.csv")


@pytest.fixture(scope="module")
def oats_fit(oats):
    return Model(REF["formula"], oats).fit_reml()


@pytest.mark.parametrize(("ddf", "key"), [("satterthwaite", "anova3_satterthwaite"), ("kr", "")])
def test_type3_equals_lmertest(oats_fit, ddf, key):
    ref = REF[key or "anova3_kr"]
    table = oats_fit.anova(type=3, ddf="kenward-roger" if ddf == "kr" else ddf)
    assert list(table.index) == ref["terms"]
    np.testing.assert_allclose(table["F value"], ref["F"], rtol=1e-4)
    np.testing.assert_array_equal(table["NumDF"], ref["NumDF"])
    np.testing.assert_allclose(table["DenDF"], ref["DenDF"], rtol=1e-2)
    np.testing.assert_allclose(table["Pr(>F)"], ref["p"], rtol=1e-3)


def test_emmeans_and_pairs_equal_emmeans(oats_fit):
    table = oats_fit.emmeans("Variety")
    ref = REF["emmeans"]
    assert list(table.index) == ref["Variety"] and table.index.name == "Variety"
    np.testing.assert_allclose(table["emmean"], ref["emmean"], rtol=1e-6)
    np.testing.assert_allclose(table["SE"], ref["SE"], rtol=1e-4)
    np.testing.assert_allclose(table["df"], ref["df"], rtol=1e-2)
    np.testing.assert_allclose(table["lower.CL"], ref["lower.CL"], rtol=1e-4)
    np.testing.assert_allclose(table["upper.CL"], ref["upper.CL"], rtol=1e-4)
    pairs = table.pairs()
    ref = REF["pairs"]
    assert list(pairs.index) == ref["contrast"]
    for col in ("estimate", "SE", "t.ratio", "p.value"):
        np.testing.assert_allclose(pairs[col], ref[col], rtol=1e-4, err_msg=col)
    np.testing.assert_allclose(pairs["df"], ref["df"], rtol=1e-2)


def test_emmeans_average_the_grid_with_equal_weights(oats, oats_fit):
    """Closed form: emmean of a Variety = intercept + its coefficient + slope·mean(nitro);
    by nitro level (at=) the same at that nitro."""
    b = oats_fit.fixef
    expected = b["(Intercept)"] + b["nitro"] * oats["nitro"].mean()
    expected += np.array([0.0, b["VarietyMarvellous"], b["VarietyVictory"]])
    np.testing.assert_allclose(oats_fit.emmeans("~ Variety")["emmean"], expected, rtol=1e-12)
    at = oats_fit.emmeans("Variety", at={"nitro": 0.6})["emmean"]
    np.testing.assert_allclose(at - expected, b["nitro"] * (0.6 - oats["nitro"].mean()))


def test_unbalanced_two_factor_grid_and_by():
    """Unequal cell counts: emmeans weight cells equally, not by counts; ``by`` splits the
    means and the pairs within each level of the other factor."""
    rng = np.random.default_rng(0)
    a = np.array(["a1", "a2"])[rng.integers(0, 2, 300)]
    b = np.array(["b1", "b2", "b3"])[rng.choice(3, 300, p=[0.6, 0.3, 0.1])]
    g = rng.integers(0, 15, 300)
    y = (a == "a2") * 1.0 + (b == "b3") * 2.0 + rng.normal(size=15)[g] + rng.normal(size=300)
    fit = Model("y ~ a * b + (1 | g)", pd.DataFrame({"y": y, "a": a, "b": b, "g": g})).fit_reml()
    cells = fit.emmeans("a", by="b")
    assert cells.index.names == ["a", "b"] and len(cells) == 6
    means = fit.emmeans("a")["emmean"]
    for lev in ("a1", "a2"):
        assert means[lev] == pytest.approx(cells["emmean"].xs(lev, level="a").mean(), rel=1e-12)
    pairs = cells.pairs()
    assert pairs.index.names == ["contrast", "b"] and len(pairs) == 3
    diff = cells["emmean"].xs("a1", level="a") - cells["emmean"].xs("a2", level="a")
    np.testing.assert_allclose(pairs["estimate"].to_numpy(), diff.to_numpy(), rtol=1e-12)


def test_type3_does_not_depend_on_the_reference_level():
    """Type III tests of an interaction model are the same hypotheses whatever level the
    treatment coding starts from (they test sum-coded effects)."""
    d = load_dataset("sleepstudy").assign(
        phase=lambda f: np.where(f["Days"] < 3, "early", np.where(f["Days"] < 7, "mid", "late"))
    )
    other = d.assign(phase=pd.Categorical(d["phase"], categories=["mid", "late", "early"]))
    f1 = Model("Reaction ~ Days * phase + (1 | Subject)", d).fit_reml()
    f2 = Model("Reaction ~ Days * phase + (1 | Subject)", other).fit_reml()
    t1, t2 = f1.anova(3), f2.anova(3)
    np.testing.assert_allclose(t1.to_numpy(), t2.to_numpy(), rtol=1e-6)
    # type II (lmerTest's containment: Days:phase contains Days, not phase): Days is tested
    # without the interaction, so it differs from type III; phase is adjusted for all
    # (the same hypothesis as type III's, phase at Days = 0)
    t2nd = f1.anova(2)
    assert not np.allclose(t2nd["F value"]["Days"], t1["F value"]["Days"])
    assert t2nd["F value"]["phase"] == pytest.approx(t1["F value"]["phase"], rel=1e-8)


def test_contrast_rows_agree_with_the_fixef_table():
    """Two computations: the unit contrasts' Satterthwaite and KR df are fixef_table's."""
    fit = Model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy")).fit_reml()
    for ddf in ("satterthwaite", "kenward-roger"):
        _, se, df = Contrasts(fit, ddf).rows(np.eye(2))
        table = fit.fixef_table(ddf)
        np.testing.assert_allclose(df, table["df"], rtol=1e-10)
        np.testing.assert_allclose(se, table["se"], rtol=1e-10)


def test_single_df_f_is_the_squared_t():
    fit = Model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy")).fit_reml()
    table = fit.fixef_table("satterthwaite")
    f = fit.anova(3)
    assert f["F value"]["Days"] == pytest.approx(table["t"]["Days"] ** 2, rel=1e-10)
    assert f["DenDF"]["Days"] == pytest.approx(table["df"]["Days"], rel=1e-10)


def test_bad_specs_name_the_culprit(oats_fit):
    with pytest.raises(EmmeansError, match="'nitro' is numeric"):
        oats_fit.emmeans("nitro")
    with pytest.raises(EmmeansError, match="'Colour' is not a term"):
        oats_fit.emmeans("Colour")
    with pytest.raises(EmmeansError, match="'Block' is not a factor of the fixed effects"):
        oats_fit.emmeans("Block")
    with pytest.raises(EmmeansError, match="type must be 2 or 3"):
        oats_fit.anova(type=1)
    with pytest.raises(EmmeansError, match="lacks"):
        oats_fit.emmeans("Variety", at={"Variety": ["Nope"]})


def test_emmeans_formula_specs(oats_fit):
    a, b = oats_fit.emmeans("~ Variety"), oats_fit.emmeans(["Variety"])
    pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
    with pytest.raises(EmmeansError, match="'nitro' is numeric"):
        oats_fit.emmeans("~ Variety | nitro")
    with pytest.raises(EmmeansError, match=r"\.contrast\('pairwise'\)"):
        oats_fit.emmeans("pairwise ~ Variety")
