"""Write the battery's simulated data sets (fixed seeds; rerun to regenerate byte-identically).

    python benchmarks/battery/make_sim_data.py      # writes benchmarks/battery/data/sim_*.csv

Two are shapes of their own (``sim_crossed``, ``sim_manygroups``). The nine others imitate
textbook datasets that lme4 users fit, without shipping them: each reproduces its original's
design exactly (the same groups, rows, covariate values, nesting/crossing and, for
ChickWeight, unbalancedness) and draws the response from the model of its battery case, with:

- the fixed effects set to the original data's REML estimate (ML for cake, whose case is ML)
  rounded to 3 significant digits;
- the SDs, correlations and residual SD set to that estimate rounded to 2 significant digits
  (Dyestuff2's between-batch SD estimate is exactly 0, and so is its generating SD);
- the response rounded to the original's recorded precision, or to 0.1 where that precision
  is coarser than sigma / 4 (Orthodont's 0.5 mm, ergoStool's whole Borg points).

The estimates were computed once with ``bayeslmm`` on the original data (from the Rdatasets
collection; those files are GPL and are not part of this repository). The parameters were
fixed by that rule before any sampler was run on the simulated data; nothing here was tuned
to make a sampler pass or fail. Each simulator's docstring gives its parameters.

Random effects with a correlation are drawn as ``z @ chol(cov).T`` with ``z`` standard
normal, so the files depend only on numpy's ``default_rng`` streams (not on an SVD).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / "data"

# --- crossed subjects x items with a by-subject correlated slope (psycholinguistics shape)
# rt ~ cond + (1 + cond | subject) + (1 | item); every subject sees every item once;
# items 1-10 are condition -0.5, items 11-20 condition +0.5 (deviation coding).
CROSSED = dict(
    seed=20240613,
    n_subject=30,
    n_item=20,
    beta=(600.0, 30.0),  # (Intercept), cond
    sd_subject=(50.0, 20.0),  # (Intercept), cond
    corr_subject=0.3,
    sd_item=25.0,
    sigma=60.0,
)

# --- many groups, few rows each (1-4 rows per group, singletons included)
# y ~ x + (1 | g); group sizes uniform on {1, 2, 3, 4}; x ~ N(0, 1) per row.
MANYGROUPS = dict(
    seed=20240614,
    n_group=400,
    sizes=(1, 2, 3, 4),
    beta=(10.0, 2.0),  # (Intercept), x
    sd_g=1.0,
    sigma=1.5,
)


def crossed() -> pd.DataFrame:
    p = CROSSED
    rng = np.random.default_rng(p["seed"])
    ns, ni = p["n_subject"], p["n_item"]
    sd = np.asarray(p["sd_subject"])
    corr = np.array([[1.0, p["corr_subject"]], [p["corr_subject"], 1.0]])
    cov = corr * np.outer(sd, sd)
    b_subj = rng.multivariate_normal(np.zeros(2), cov, size=ns)
    b_item = rng.normal(0.0, p["sd_item"], size=ni)
    subj = np.repeat(np.arange(ns), ni)
    item = np.tile(np.arange(ni), ns)
    cond = np.where(item < ni // 2, -0.5, 0.5)
    b0, b1 = p["beta"]
    mu = b0 + b1 * cond + b_subj[subj, 0] + b_subj[subj, 1] * cond + b_item[item]
    rt = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "subject": [f"s{j + 1:02d}" for j in subj],
            "item": [f"i{k + 1:02d}" for k in item],
            "cond": cond,
            "rt": np.round(rt, 1),
        }
    )


def manygroups() -> pd.DataFrame:
    p = MANYGROUPS
    rng = np.random.default_rng(p["seed"])
    sizes = rng.choice(p["sizes"], size=p["n_group"])
    g = np.repeat(np.arange(p["n_group"]), sizes)
    b = rng.normal(0.0, p["sd_g"], size=p["n_group"])
    x = rng.normal(0.0, 1.0, size=len(g))
    b0, b1 = p["beta"]
    y = b0 + b1 * x + b[g] + rng.normal(0.0, p["sigma"], size=len(g))
    return pd.DataFrame(
        {"g": [f"g{j + 1:03d}" for j in g], "x": np.round(x, 4), "y": np.round(y, 4)}
    )


# --------------------------------------------------------------------------------------
# helpers for the imitations of textbook datasets
# --------------------------------------------------------------------------------------


def _correlated(
    rng: np.random.Generator, sd: Sequence[float], corr: np.ndarray, n: int
) -> np.ndarray:
    """``n`` draws (rows) from N(0, diag(sd) corr diag(sd)), via the Cholesky factor."""
    sd = np.asarray(sd, dtype=float)
    chol = np.linalg.cholesky(np.asarray(corr, dtype=float) * np.outer(sd, sd))
    return rng.standard_normal((n, len(sd))) @ chol.T


def _corr3(r12: float, r13: float, r23: float) -> np.ndarray:
    return np.array([[1.0, r12, r13], [r12, 1.0, r23], [r13, r23, 1.0]])


def _rounded(y: np.ndarray, decimals: int) -> np.ndarray:
    """``y`` rounded to ``decimals`` decimals; integers when ``decimals`` is 0."""
    if decimals == 0:
        return np.round(y).astype(np.int64)
    return np.round(y, decimals)


# --------------------------------------------------------------------------------------
# imitations of textbook datasets (same design; response from the case's model)
# --------------------------------------------------------------------------------------

ORTHODONT = dict(
    seed=20240615,
    n_male=16,
    n_female=11,
    ages=(8, 10, 12, 14),
    beta=(17.6, 0.660, -2.15),  # (Intercept), age, SexFemale
    sd_subject=(2.8, 0.23),  # (Intercept), age
    corr_subject=-0.77,
    sigma=1.3,
    decimals=1,
)


def orthodont() -> pd.DataFrame:
    """The shape of nlme::Orthodont: ``distance ~ age + Sex + (age | Subject)``.

    Design: 27 children (M01-M16 Male, F01-F11 Female) x ages 8, 10, 12, 14 (uncentred),
    108 rows. Parameters (original REML: 17.635, 0.6602, -2.1455; SDs 2.797, 0.2264,
    corr -0.766; sigma 1.310): beta = (17.6, 0.660, -2.15), by-subject SDs (2.8, 0.23)
    with correlation -0.77, sigma = 1.3. Distance rounded to 0.1 (original: 0.5 mm).
    """
    p = ORTHODONT
    rng = np.random.default_rng(p["seed"])
    subjects = [f"M{j + 1:02d}" for j in range(p["n_male"])]
    subjects += [f"F{j + 1:02d}" for j in range(p["n_female"])]
    female = np.array([s.startswith("F") for s in subjects])
    ages = np.asarray(p["ages"], dtype=float)
    corr = np.array([[1.0, p["corr_subject"]], [p["corr_subject"], 1.0]])
    b = _correlated(rng, p["sd_subject"], corr, len(subjects))
    subj = np.repeat(np.arange(len(subjects)), len(ages))
    age = np.tile(ages, len(subjects))
    b0, b_age, b_female = p["beta"]
    mu = b0 + b_age * age + b_female * female[subj] + b[subj, 0] + b[subj, 1] * age
    y = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "distance": _rounded(y, p["decimals"]),
            "age": age.astype(np.int64),
            "Subject": [subjects[j] for j in subj],
            "Sex": np.where(female[subj], "Female", "Male"),
        }
    )


CHICKWEIGHT = dict(
    seed=20240616,
    times=(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 21),
    # chicks 1-20 on diet 1, 21-30 on diet 2, 31-40 on diet 3, 41-50 on diet 4
    diet_sizes=(20, 10, 10, 10),
    # every chick is weighed at the first k of ``times``: k = 12 except these (chicks that
    # died or were lost), as in the original; 578 rows
    n_weighings={8: 11, 15: 8, 16: 7, 18: 2, 44: 10},
    beta=(26.4, 8.44, 2.84, 2.00, 9.25),  # (Intercept), Time, Diet2, Diet3, Diet4
    sd_chick=(12.0, 3.8),  # (Intercept), Time
    corr_chick=-0.98,
    sigma=13.0,
    decimals=0,
)


def chickweight() -> pd.DataFrame:
    """The shape of datasets::ChickWeight: ``weight ~ Time + Diet + (Time | Chick)``.

    Design: 50 chicks on 4 diets (20, 10, 10, 10), weighed on days 0, 2, ..., 20, 21
    (uncentred); 45 chicks have all 12 weighings, chicks 8, 15, 16, 18 and 44 only the first
    11, 8, 7, 2 and 10 (578 rows, the original's pattern). Parameters (original REML: 26.356,
    8.4438, 2.8386, 2.0044, 9.2548; SDs 12.404, 3.7596, corr -0.981; sigma 12.785):
    beta = (26.4, 8.44, 2.84, 2.00, 9.25), by-chick SDs (12, 3.8) with correlation -0.98,
    sigma = 13. Weight rounded to whole grams, as in the original. (The original's growth is
    curved, which is where its near -1 correlation comes from; here the model is the linear
    one of the case, with that correlation put in.)
    """
    p = CHICKWEIGHT
    rng = np.random.default_rng(p["seed"])
    diets = np.repeat(np.arange(1, len(p["diet_sizes"]) + 1), p["diet_sizes"])
    n_chick = len(diets)
    times = np.asarray(p["times"], dtype=float)
    counts = [p["n_weighings"].get(c, len(times)) for c in range(1, n_chick + 1)]
    corr = np.array([[1.0, p["corr_chick"]], [p["corr_chick"], 1.0]])
    b = _correlated(rng, p["sd_chick"], corr, n_chick)
    chick = np.repeat(np.arange(n_chick), counts)
    time = np.concatenate([times[:k] for k in counts])
    diet = diets[chick]
    beta = p["beta"]
    mu = beta[0] + beta[1] * time + np.array((0.0, *beta[2:]))[diet - 1]
    mu = mu + b[chick, 0] + b[chick, 1] * time
    y = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "weight": _rounded(y, p["decimals"]),
            "Time": time.astype(np.int64),
            "Chick": chick + 1,
            "Diet": diet,
        }
    )


DYESTUFF2 = dict(
    seed=20240617,
    n_batch=6,
    n_per_batch=5,
    beta0=5.67,
    sd_batch=0.0,
    sigma=3.7,
    decimals=3,
)


def dyestuff2() -> pd.DataFrame:
    """The shape of lme4::Dyestuff2: ``Yield ~ 1 + (1 | Batch)``, a singular fit.

    Design: 6 batches (A-F) x 5 preparations, 30 rows. Parameters (original REML: 5.6656;
    between-batch SD 0, i.e. theta = 0; sigma 3.7157): beta0 = 5.67, between-batch SD 0,
    sigma = 3.7. Yield rounded to 0.001, as in the original. The data are checked to be
    singular as Box and Tiao's are: the between-batch mean square is below the
    within-batch one, so the REML (and ML) estimate of the between-batch variance is 0.
    """
    p = DYESTUFF2
    rng = np.random.default_rng(p["seed"])
    nb, nr = p["n_batch"], p["n_per_batch"]
    b = rng.normal(0.0, p["sd_batch"], size=nb) if p["sd_batch"] > 0 else np.zeros(nb)
    batch = np.repeat(np.arange(nb), nr)
    y = _rounded(p["beta0"] + b[batch] + rng.normal(0.0, p["sigma"], size=nb * nr), p["decimals"])
    cells = y.reshape(nb, nr)
    ms_between = nr * cells.mean(axis=1).var(ddof=1)
    ms_within = cells.var(axis=1, ddof=1).mean()
    if not ms_between < ms_within:
        raise AssertionError(f"not singular: MS between {ms_between} >= within {ms_within}")
    return pd.DataFrame({"Batch": [chr(ord("A") + j) for j in batch], "Yield": y})


OATS = dict(
    seed=20240618,
    blocks=("I", "II", "III", "IV", "V", "VI"),
    varieties=("Victory", "Golden Rain", "Marvellous"),  # row order of the original
    nitro=(0.0, 0.2, 0.4, 0.6),
    # (Intercept), nitro, VarietyMarvellous, VarietyVictory (Golden Rain is the baseline)
    beta=(82.4, 73.7, 5.29, -6.88),
    sd_block=15.0,
    sd_plot=10.0,  # Variety:Block
    sigma=13.0,
    decimals=0,
)


def oats() -> pd.DataFrame:
    """The shape of nlme::Oats: ``yield ~ nitro + Variety + (1 | Block/Variety)``.

    Design (Yates' split plot): 6 blocks (I-VI) x 3 varieties (whole plots) x 4 nitrogen
    levels 0, 0.2, 0.4, 0.6 (sub-plots), 72 rows. Parameters (original REML: 82.400, 73.667,
    5.2917, -6.8750; SDs Variety:Block 10.438, Block 14.645; sigma 12.867):
    beta = (82.4, 73.7, 5.29, -6.88), SDs Block 15, Variety:Block 10, sigma = 13. Yield
    rounded to whole units, as in the original.
    """
    p = OATS
    rng = np.random.default_rng(p["seed"])
    nb, nv, nn = len(p["blocks"]), len(p["varieties"]), len(p["nitro"])
    b_block = rng.normal(0.0, p["sd_block"], size=nb)
    b_plot = rng.normal(0.0, p["sd_plot"], size=(nb, nv))
    block = np.repeat(np.arange(nb), nv * nn)
    variety = np.tile(np.repeat(np.arange(nv), nn), nb)
    nitro = np.tile(np.asarray(p["nitro"]), nb * nv)
    b0, b_nitro, b_marv, b_vict = p["beta"]
    effect = {"Golden Rain": 0.0, "Marvellous": b_marv, "Victory": b_vict}
    v_eff = np.array([effect[v] for v in p["varieties"]])
    mu = b0 + b_nitro * nitro + v_eff[variety] + b_block[block] + b_plot[block, variety]
    y = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "Block": [p["blocks"][j] for j in block],
            "Variety": [p["varieties"][j] for j in variety],
            "nitro": nitro,
            "yield": _rounded(y, p["decimals"]),
        }
    )


MACHINES = dict(
    seed=20240619,
    n_worker=6,
    machines=("A", "B", "C"),
    n_rep=3,
    beta=(52.4, 7.97, 13.9),  # (Intercept), MachineB, MachineC
    sd_worker=(4.1, 8.6, 4.4),  # MachineA, MachineB, MachineC
    corr_worker=(0.80, 0.62, 0.77),  # A-B, A-C, B-C
    sigma=0.96,
    decimals=1,
)


def machines() -> pd.DataFrame:
    """The shape of nlme::Machines, for ``machines_nested`` and ``machines_vector``.

    Design: 6 workers x 3 machines (A, B, C) x 3 replicates, 54 rows. One data set serves
    both ``score ~ Machine + (1 | Worker/Machine)`` and ``score ~ Machine + (0 + Machine |
    Worker)``, as the original does; it is drawn from the vector-valued model, the more
    general of the two (the nested model is its compound-symmetric special case), with the
    vector model's estimates. Parameters (original REML: 52.356, 7.9667, 13.917; by-worker
    SDs 4.079, 8.625, 4.389, correlations A-B 0.803, A-C 0.623, B-C 0.771; sigma 0.9616;
    the nested fit: SDs Worker 4.781, Machine:Worker 3.730): beta = (52.4, 7.97, 13.9),
    by-worker SDs (4.1, 8.6, 4.4), correlations (0.80, 0.62, 0.77), sigma = 0.96. Score
    rounded to 0.1, as in the original.
    """
    p = MACHINES
    rng = np.random.default_rng(p["seed"])
    nw, nm, nr = p["n_worker"], len(p["machines"]), p["n_rep"]
    b = _correlated(rng, p["sd_worker"], _corr3(*p["corr_worker"]), nw)
    machine = np.repeat(np.arange(nm), nw * nr)  # the original's row order
    worker = np.tile(np.repeat(np.arange(nw), nr), nm)
    m_eff = np.array((0.0, *p["beta"][1:]))
    mu = p["beta"][0] + m_eff[machine] + b[worker, machine]
    y = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "Worker": worker + 1,
            "Machine": [p["machines"][j] for j in machine],
            "score": _rounded(y, p["decimals"]),
        }
    )


CAKE = dict(
    seed=20240620,
    recipes=("A", "B", "C"),
    n_rep=15,
    temperatures=(175, 185, 195, 205, 215, 225),
    intercept=29.1,
    recipe=(-2.27, -1.20),  # recipeB, recipeC
    temperature=(2.40, 1.67, 4.40, 9.53, 5.93),  # temperature185 ... temperature225
    # recipeB:temperature185 ... 225, then recipeC:temperature185 ... 225
    interaction=((0.133, 3.20, 0.867, -1.93, 2.47), (-1.40, 2.13, -1.47, -3.07, 1.87)),
    sd_replicate=6.2,  # recipe:replicate
    sigma=4.4,
    decimals=0,
)


def cake() -> pd.DataFrame:
    """The shape of lme4::cake: ``angle ~ recipe * temperature + (1 | recipe:replicate)``.

    Design: 3 recipes x 15 replicates (batches of batter; 45 recipe:replicate groups) x 6
    baking temperatures 175, 185, ..., 225, 270 rows. Parameters (original ML, the case's
    fit; treatment contrasts, baseline recipe A at 175): the 18 fixed effects rounded to 3
    significant digits (intercept 29.1; recipe B -2.27, C -1.20; temperature 185-225 2.40,
    1.67, 4.40, 9.53, 5.93; B x 185-225 0.133, 3.20, 0.867, -1.93, 2.47; C x 185-225 -1.40,
    2.13, -1.47, -3.07, 1.87; ML: 29.133, -2.2667, -1.2000, 2.4000, 1.6667, 4.4000, 9.5333,
    5.9333, 0.1333, 3.2000, 0.8667, -1.9333, 2.4667, -1.4000, 2.1333, -1.4667, -3.0667,
    1.8667), recipe:replicate SD 6.2 (ML 6.249), sigma = 4.4 (ML 4.371). Angle rounded to
    whole degrees, as in the original. (The original's ``temp`` column, a numeric copy of
    temperature, is left out.)
    """
    p = CAKE
    rng = np.random.default_rng(p["seed"])
    nrec, nrep, nt = len(p["recipes"]), p["n_rep"], len(p["temperatures"])
    b = rng.normal(0.0, p["sd_replicate"], size=(nrec, nrep))
    cell = np.zeros((nrec, nt))
    cell += p["intercept"]
    cell[1:, :] += np.asarray(p["recipe"])[:, None]
    cell[:, 1:] += np.asarray(p["temperature"])[None, :]
    cell[1:, 1:] += np.asarray(p["interaction"])
    # the original's row order: replicate, then recipe, then temperature
    rep = np.repeat(np.arange(nrep), nrec * nt)
    recipe = np.tile(np.repeat(np.arange(nrec), nt), nrep)
    temp = np.tile(np.arange(nt), nrep * nrec)
    mu = cell[recipe, temp] + b[recipe, rep]
    y = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "replicate": rep + 1,
            "recipe": [p["recipes"][j] for j in recipe],
            "temperature": np.asarray(p["temperatures"])[temp],
            "angle": _rounded(y, p["decimals"]),
        }
    )


ERGOSTOOL = dict(
    seed=20240621,
    n_subject=9,
    types=("T1", "T2", "T3", "T4"),
    beta=(8.56, 3.89, 2.22, 0.667),  # (Intercept), TypeT2, TypeT3, TypeT4
    sd_subject=1.3,
    sigma=1.1,
    decimals=1,
)


def ergostool() -> pd.DataFrame:
    """The shape of nlme::ergoStool: ``effort ~ Type + (1 | Subject)``.

    Design (randomized block): 9 subjects x 4 stool types T1-T4, 36 rows. Parameters
    (original REML: 8.5556, 3.8889, 2.2222, 0.6667; subject SD 1.332; sigma 1.100):
    beta = (8.56, 3.89, 2.22, 0.667), subject SD 1.3, sigma = 1.1. Effort rounded to 0.1
    (the original's whole Borg-scale points are coarser than sigma / 4).
    """
    p = ERGOSTOOL
    rng = np.random.default_rng(p["seed"])
    ns, nt = p["n_subject"], len(p["types"])
    b = rng.normal(0.0, p["sd_subject"], size=ns)
    subj = np.repeat(np.arange(ns), nt)
    typ = np.tile(np.arange(nt), ns)
    mu = p["beta"][0] + np.array((0.0, *p["beta"][1:]))[typ] + b[subj]
    y = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "effort": _rounded(y, p["decimals"]),
            "Type": [p["types"][j] for j in typ],
            "Subject": subj + 1,
        }
    )


BODYWEIGHT = dict(
    seed=20240622,
    times=(1, 8, 15, 22, 29, 36, 43, 44, 50, 57, 64),
    diet_sizes=(8, 4, 4),  # rats 1-8 on diet 1, 9-12 on diet 2, 13-16 on diet 3
    # (Intercept), Time, Diet2, Diet3, Time:Diet2, Time:Diet3
    beta=(252.0, 0.360, 201.0, 252.0, 0.606, 0.298),
    sd_rat=(37.0, 0.25),  # (Intercept), Time; uncorrelated (||)
    sigma=4.4,
    decimals=0,
)


def bodyweight() -> pd.DataFrame:
    """The shape of nlme::BodyWeight: ``weight ~ Time * Diet + (Time || Rat)``.

    Design: 16 rats on 3 diets (8, 4, 4) x 11 weighings on days 1, 8, 15, 22, 29, 36, 43,
    44, 50, 57, 64 (uncentred), 176 rows. Parameters (original REML: 251.65, 0.3596,
    200.67, 252.07, 0.6058, 0.2983; SDs 36.85, 0.2478, uncorrelated; sigma 4.445):
    beta = (252, 0.360, 201, 252, 0.606, 0.298), independent by-rat SDs (37, 0.25),
    sigma = 4.4. Weight rounded to whole grams, as in the original.
    """
    p = BODYWEIGHT
    rng = np.random.default_rng(p["seed"])
    diets = np.repeat(np.arange(1, len(p["diet_sizes"]) + 1), p["diet_sizes"])
    n_rat = len(diets)
    times = np.asarray(p["times"], dtype=float)
    b = rng.normal(0.0, 1.0, size=(n_rat, 2)) * np.asarray(p["sd_rat"])
    rat = np.repeat(np.arange(n_rat), len(times))
    time = np.tile(times, n_rat)
    diet = diets[rat]
    b0, b_t, d2, d3, td2, td3 = p["beta"]
    d_eff = np.array((0.0, d2, d3))[diet - 1]
    td_eff = np.array((0.0, td2, td3))[diet - 1]
    mu = b0 + d_eff + (b_t + td_eff) * time + b[rat, 0] + b[rat, 1] * time
    y = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "weight": _rounded(y, p["decimals"]),
            "Time": time.astype(np.int64),
            "Rat": rat + 1,
            "Diet": diet,
        }
    )


OXBOYS = dict(
    seed=20240623,
    n_subject=26,
    # the (centred, scaled) age at each of the 9 occasions, as for most boys of the original
    ages=(-1.0, -0.7479, -0.4630, -0.1643, -0.0027, 0.2466, 0.5562, 0.7781, 0.9945),
    # the original's exceptions: (boy, occasion) -> age
    age_exceptions={
        (5, 3): -0.4493,
        (5, 9): 0.9973,
        (7, 3): -0.4493,
        (7, 5): 0.0,
        (7, 8): 0.7945,
        (8, 8): 0.7945,
        (8, 9): 1.0055,
        (9, 3): -0.4493,
        (9, 8): 0.7945,
        (12, 5): 0.0,
        (13, 2): -0.7150,
        (14, 5): 0.0,
        (19, 5): 0.0,
        (25, 8): 0.7808,
        (26, 9): 1.0055,
    },
    beta=(149.0, 6.52, 0.743),  # (Intercept), age, age^2
    sd_subject=(8.0, 1.7, 0.82),  # (Intercept), age, age^2
    corr_subject=(0.61, 0.22, 0.66),  # int-age, int-age^2, age-age^2
    sigma=0.48,
    decimals=1,
)


def oxboys() -> pd.DataFrame:
    """The shape of nlme::Oxboys: ``height ~ age + I(age^2) + (age + I(age^2) | Subject)``.

    Design: 26 boys x 9 occasions, 234 rows, with the original's ages (centred and scaled
    to -1..1): the common grid of ``OXBOYS["ages"]`` with the original's 15 per-boy
    exceptions. Parameters (original REML: 149.06, 6.5168, 0.7428; SDs 8.002, 1.691, 0.816;
    correlations int-age 0.614, int-age^2 0.217, age-age^2 0.662; sigma 0.4770):
    beta = (149, 6.52, 0.743), SDs (8.0, 1.7, 0.82), correlations (0.61, 0.22, 0.66),
    sigma = 0.48. Height rounded to 0.1 cm, as in the original.
    """
    p = OXBOYS
    rng = np.random.default_rng(p["seed"])
    ns, no = p["n_subject"], len(p["ages"])
    ages = np.tile(np.asarray(p["ages"]), (ns, 1))
    for (boy, occasion), a in p["age_exceptions"].items():
        ages[boy - 1, occasion - 1] = a
    b = _correlated(rng, p["sd_subject"], _corr3(*p["corr_subject"]), ns)
    subj = np.repeat(np.arange(ns), no)
    age = ages.ravel()
    b0, b1, b2 = p["beta"]
    mu = b0 + b1 * age + b2 * age**2 + b[subj, 0] + b[subj, 1] * age + b[subj, 2] * age**2
    y = mu + rng.normal(0.0, p["sigma"], size=len(mu))
    return pd.DataFrame(
        {
            "Subject": subj + 1,
            "age": age,
            "height": _rounded(y, p["decimals"]),
            "Occasion": np.tile(np.arange(1, no + 1), ns),
        }
    )


SIMULATORS: dict[str, Callable[[], pd.DataFrame]] = {
    "sim_crossed": crossed,
    "sim_manygroups": manygroups,
    "sim_orthodont": orthodont,
    "sim_chickweight": chickweight,
    "sim_dyestuff2": dyestuff2,
    "sim_oats": oats,
    "sim_machines": machines,
    "sim_cake": cake,
    "sim_ergostool": ergostool,
    "sim_bodyweight": bodyweight,
    "sim_oxboys": oxboys,
}


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for name, make in SIMULATORS.items():
        df = make()
        df.to_csv(DATA / f"{name}.csv", index=False)
        print(f"{name}: {len(df)} rows -> {DATA / (name + '.csv')}")


if __name__ == "__main__":
    main()
