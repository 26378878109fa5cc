"""Write the teaching notebooks and execute them in a fresh kernel.

    python notebooks/build.py            # write + execute all (full-size sampling)
    python notebooks/build.py 01 03      # only these

Every figure is stored as an image (``%matplotlib inline`` in the setup cell: the package's
figures display as PNG), and progress bars as their one final line (:func:`clean_streams`).

The notebooks read ``BAYESLMM_NB_DRAWS`` / ``BAYESLMM_NB_CHAINS`` (defaults 1000 / 4), so CI
can execute them quickly (tests/test_notebooks.py); the saved outputs are the full-size run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent

SETUP = """\
%matplotlib inline
import os
import warnings

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt

import bayeslmm as blm

DRAWS = int(os.environ.get("BAYESLMM_NB_DRAWS", 1000))   # CI lowers these
CHAINS = int(os.environ.get("BAYESLMM_NB_CHAINS", 4))
pd.set_option("display.precision", 5)"""


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip())


NOTEBOOKS = {
    "01_fixed_and_random_effects": [
        md("""
# 1. Fixed and random effects, estimated together

> **The question** (Cross Validated, "How are random effects included in the LMM and how are
> they calculated?"): *are the fixed effects estimated first and the random effects
> afterwards, or together, and how is a random effect calculated at all?*
>
> **The answer in words.** Together. Once the variances of the random effects are known,
> the fixed effects and every group's random effect come out of **one** linear system, in
> which each random effect is a group's own deviation from the fixed effects, pulled toward
> zero by a penalty that grows as the between-group variance shrinks. Estimating the
> variances (REML) is the only iterative part. The Bayesian sampler calculates the random
> effects from the very same system, once per posterior draw.

A linear mixed model writes the response as

$$y = X\\beta + Zb + \\varepsilon,\\qquad b \\sim N(0, \\Sigma_\\theta),\\qquad \\varepsilon \\sim N(0, \\sigma^2 I).$$

$X\\beta$ is the **fixed** part: coefficients shared by the whole population.
$Zb$ is the **random** part: one small deviation per group (here: per subject), drawn from a
common distribution whose variance is estimated from the data.
This notebook fits lme4's `Reaction ~ Days + (1 | Subject)` with bayeslmm's REML path and
takes the estimates apart."""),
        code(SETUP),
        code("""
sleep = blm.load_dataset("sleepstudy")
sleep.head()"""),
        md("""
## A random intercept per subject
`(1 | Subject)` gives every subject its own intercept deviation $b_j$; `Days` has one
population slope. `fit_reml()` runs lme4's algorithm (profiled REML, penalised least
squares) and prints lme4's summary."""),
        code("""
model = blm.Model("Reaction ~ Days + (1 | Subject)", sleep)
fit = model.fit_reml()
fit"""),
        md("""
## The fixed effects equal ordinary least squares here
Every subject is measured on the same days 0-9, so the design is balanced: the random
intercepts are orthogonal to `Days` after centring, and generalised least squares collapses to
plain least squares. The fixed effects are exactly the OLS coefficients (251.40510, 10.46729),
but their standard errors are not: the mixed model knows that 10 observations of one subject
are not 10 independent pieces of information about the intercept."""),
        code("""
X, y = model.design.X, model.design.y
ols, *_ = np.linalg.lstsq(X, y, rcond=None)
pd.DataFrame({"REML fixef": fit.fixef, "OLS": ols, "REML SE": fit.fixef_se})"""),
        md("""
## Random effects and per-subject coefficients
`ranef` holds each subject's deviation $\\hat b_j$ (the conditional mode), `conditional_sd`
its uncertainty, and `coef` the subject's own line: fixed effect + deviation. Subject 308:
251.40510 + 40.783710 = 292.1888."""),
        code("""
pd.concat({"ranef": fit.ranef["Subject"], "conditional_sd": fit.conditional_sd["Subject"]},
          axis=1).head()"""),
        code("""
b308 = fit.ranef["Subject"].loc["308", "(Intercept)"]
print(f"{fit.fixef['(Intercept)']:.5f} + {b308:.6f} = {fit.fixef['(Intercept)'] + b308:.4f}")
fit.coef["Subject"].head()"""),
        md("""
Each subject's intercept is its own deviation pulled toward the population value. The
picture shows it: the open circle is the subject's own least-squares intercept (its own
line, fitted alone), the filled one the mixed model's $\\hat\\beta_0 + \\hat b_j$; every
arrow points toward the population intercept (the black line)."""),
        code("""
blm.plot_shrinkage(fit, None)"""),
        md("""
## Why "estimated together"
Given the variance components, $\\hat\\beta$ and $\\hat b$ solve **one** linear system,
Henderson's mixed-model equations:

$$\\begin{pmatrix} X^\\top X & X^\\top Z \\\\ Z^\\top X & Z^\\top Z + \\sigma^2\\Sigma^{-1} \\end{pmatrix}
\\begin{pmatrix}\\hat\\beta \\\\ \\hat b\\end{pmatrix} = \\begin{pmatrix} X^\\top y \\\\ Z^\\top y\\end{pmatrix}.$$

The penalty $\\sigma^2\\Sigma^{-1}$ is what pulls each $\\hat b_j$ toward zero. Solving it with
numpy reproduces the fit exactly; REML's job is to choose $\\Sigma$ (through $\\theta$)."""),
        code("""
Z = model.design.Z().toarray()
tau2 = fit.varcorr.loc[0, "vcov"]          # Var(b_j) for the Subject intercept
sigma2 = fit.sigma ** 2
q = Z.shape[1]
lhs = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + sigma2 / tau2 * np.eye(q)]])
rhs = np.concatenate([X.T @ y, Z.T @ y])
solution = np.linalg.solve(lhs, rhs)
print("beta:", solution[:2])
print("max |b - ranef|:", np.abs(solution[2:] - fit.ranef["Subject"]["(Intercept)"]).max())"""),
        md("""
## The Bayesian twin: how the sampler computes the random effects
`model.sample()` estimates the same model with priors. It never samples the 18 subject
effects: with $b$ (and $\\beta$, whose priors are Normal) integrated out, the data have the
closed-form density

$$y \\sim N\\big(Xm,\\; \\sigma^2 I + Z\\Sigma Z^\\top + XSX^\\top\\big)$$

($m$, $S$: the prior means and variances of $\\beta$), so NUTS explores only the variance
components ($\\tau$ and $\\sigma$ here: 2 parameters instead of 22). Afterwards every draw of
$(\\tau, \\sigma)$ gets $(\\beta, b)$ from their exact conditional distribution, a Gaussian
whose mean solves Henderson's equations above (with the prior precision $S^{-1}$ added for
$\\beta$) and whose covariance is the inverse of that system's matrix times $\\sigma^2$.

So the random effects are "calculated" the same way on both sides. Fix $\\beta$, $\\tau$ and
$\\sigma$ at lme4's estimates and draw $b$ from this conditional, as the sampler does for each
draw: the mean of the draws is lme4's conditional mode (`ranef`) and their SD is lme4's
`condVar` (`conditional_sd`)."""),
        code("""
from bayeslmm.bayes import marginal   # the sampler's own pieces

mm = marginal.build(model.design, None)          # b integrated out, beta given
tau = np.array([fit.varcorr.loc[0, "sdcor"]])
theta = marginal.unconstrained(mm, fit.fixef.to_numpy(), [tau], [np.eye(1)], fit.sigma)
n = 20_000
b = marginal.draw_effects(mm, np.tile(theta, (1, n, 1)), seed=1, cores=2).ranef[0]
b = b.reshape(n, -1)                              # draws x subjects
twin = pd.DataFrame({
    "lme4 ranef": fit.ranef["Subject"]["(Intercept)"],
    "mean of draws": b.mean(0),
    "lme4 condVar SD": fit.conditional_sd["Subject"]["(Intercept)"],
    "SD of draws": b.std(0),
})
print("largest |mean - ranef| in Monte Carlo SEs:",
      round(float(((twin["mean of draws"] - twin["lme4 ranef"])
                   / (twin["lme4 condVar SD"] / np.sqrt(n))).abs().max()), 2))
twin.head()"""),
        md("""
The posterior then averages this conditional over the uncertainty in $\\tau$ and $\\sigma$
(and $\\beta$): its SDs of $b$ are a little wider than condVar, which treats the
estimates as known.

## Integrated out or sampled: the same posterior
The older way to fit the model (`parameterization="noncentered"`, PyMC's NUTS on all 22
parameters) targets the same posterior. Both runs below agree within Monte Carlo error
(the `z` column: difference of the means over its Monte Carlo SE), random effects included;
the integrated form gets there with more effective draws in less time."""),
        code("""
import time

with warnings.catch_warnings():
    warnings.simplefilter("ignore", blm.ConvergenceWarning)
    t0 = time.perf_counter()
    post_marginal = model.sample(draws=DRAWS, chains=CHAINS, seed=1, progressbar=False)
    t1 = time.perf_counter()
    post_latent = model.sample(draws=DRAWS, chains=CHAINS, seed=1, progressbar=False,
                               parameterization="noncentered")
    t2 = time.perf_counter()
print(f"marginal: {t1 - t0:.1f} s, latent (PyMC, compile included): {t2 - t1:.1f} s")


def summary(post):
    params = blm.compare(fit, post, reml_ci=None)[["mean", "sd", "ess_bulk"]]
    ranef = post.ranef["Subject"].head(6)[["mean", "sd", "ess_bulk"]]
    ranef.index = [f"ranef[{level}]" for level, _ in ranef.index]
    table = pd.concat([params, ranef])
    return table.assign(mcse=table["sd"] / np.sqrt(table["ess_bulk"]))


a, b_ = summary(post_marginal), summary(post_latent)
both = pd.concat({"marginal": a, "latent": b_}, axis=1)
both[("difference", "z")] = (a["mean"] - b_["mean"]) / np.hypot(a["mcse"], b_["mcse"])
both.round(3)"""),
        md("""
## A correlated random slope: iris
`Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)` lets each species
have its own intercept and its own `Sepal.Length` slope, correlated. With only 3 species the
variance components are poorly determined, yet the REML fit reproduces lme4 exactly:
REML criterion −66.7 and setosa's coefficients (−0.1400153, 0.2727164, −0.10956019)."""),
        code("""
iris = blm.load_dataset("iris")
fit_iris = blm.lmer(
    "Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)", iris
)
print(fit_iris)"""),
        code("""
fit_iris.varcorr"""),
        code("""
fit_iris.coef["Species"]"""),
        md("""
`Sepal.Width` has no random part, so its coefficient is the same for every species; the
intercept and the `Sepal.Length` slope differ by species, each pulled toward the population
value by an amount that depends on how much data the species has and on the estimated
between-species variance. Notebook 2 looks at that pull — partial pooling — in detail."""),
    ],
    "02_partial_pooling": [
        md("""
# 2. Partial pooling

> **The question:** *what does "partial pooling" of random effects actually do to each
> group's estimate?*
>
> **The answer in words.** Each group's line ends up between its own fit (no pooling) and
> the population line (complete pooling). How far it moves depends on two things only: how
> much the group's own data say (more observations, less noise: it stays nearer its own
> fit) and how much groups differ (a large between-group SD τ: little pooling; τ → 0: all
> groups share the population line). The explorer at the end of this notebook lets you move
> τ and σ and watch exactly that, computed from the closed form without refitting.

Three ways to estimate each subject's line in `sleepstudy`:

* **no pooling** — fit each subject alone (lme4's `lmList`);
* **complete pooling** — ignore subjects, one line for everyone;
* **partial pooling** — the mixed model `Reaction ~ Days + (Days | Subject)`: each subject's
  line is a compromise, pulled toward the population line by an amount that depends on how
  much that subject's data say and on how much subjects differ (the estimated $\\Sigma$).

We estimate partial pooling twice: REML (point estimates, lme4-exact) and the posterior (NUTS)."""),
        code(SETUP),
        code("""
sleep = blm.load_dataset("sleepstudy")
model = blm.Model("Reaction ~ Days + (Days | Subject)", sleep)
fit = model.fit_reml()
posterior = model.sample(draws=DRAWS, tune=DRAWS, chains=CHAINS, seed=2024)
posterior.diagnostics"""),
        md("""
## The shrinkage table
One row per subject and coefficient: the no-pooling estimate, complete pooling, REML and
posterior partial pooling, and the shrinkage fraction — how far the estimate moved from the
subject's own fit toward the population (0 = not at all, 1 = all the way)."""),
        code("""
table = blm.shrinkage(fit, posterior)
table.head(8)"""),
        md("""
The fraction is computed per coefficient, and it can fall outside [0, 1]: subject 308's
intercept overshoots the population value (1.31) and some slopes move *away* from it
(negative values). That is not a bug. Intercept and slope are pulled **jointly**, toward the
population along the shape of $\\hat\\Sigma$, so one coordinate can move further than
"straight toward β" would. The right yardstick is the Mahalanobis distance
$\\sqrt{(c_j-\\hat\\beta)^\\top\\hat\\Sigma^{-1}(c_j-\\hat\\beta)}$: partial pooling brings every
subject closer to the population than its own fit."""),
        code("""
sub = table.loc["Subject"]
nopool = sub["no_pooling"].unstack("term")[["(Intercept)", "Days"]]
partial = sub["reml"].unstack("term")[["(Intercept)", "Days"]]
vc = fit.varcorr
sd = vc.query("grp == 'Subject' and var2.isna()")["sdcor"].to_numpy()
rho = vc.query("grp == 'Subject' and var2.notna()")["sdcor"].item()
Sigma = np.outer(sd, sd) * np.array([[1, rho], [rho, 1]])
beta = fit.fixef[["(Intercept)", "Days"]].to_numpy()

def mahalanobis(c):
    d = c.to_numpy() - beta
    return np.sqrt(np.einsum("ij,jk,ik->i", d, np.linalg.inv(Sigma), d))

distances = pd.DataFrame({"no pooling": mahalanobis(nopool), "REML": mahalanobis(partial)},
                         index=nopool.index)
print("every subject closer to the population:", bool((distances["REML"] < distances["no pooling"]).all()))
distances.head()"""),
        md("""
## Lines per subject
Each panel: the subject's data, its own least-squares line (no pooling), the population line
(complete pooling) and the mixed-model lines. The partial-pooling line sits between the two,
closer to the subject's own fit because every subject has 10 observations."""),
        code("""
fig = blm.plot_group_fits(fit, posterior)
fig"""),
        md("""
## The partial-pooling picture
Intercept on x, slope on y. Each arrow starts at a subject's own fit and ends at its
partial-pooling estimate; the ellipses are contours of the estimated population distribution
$N(\\hat\\beta, \\hat\\Sigma)$. Subjects far from the centre are pulled hardest, and they are
pulled *along* the ellipse's shape: the slope and intercept shrink jointly."""),
        code("""
fig = blm.plot_shrinkage(fit, posterior)
fig"""),
        md("""
## Less data, more pooling
Keep only the first three days of subjects 309 and 335 and refit. Three noisy points give a
wild slope of their own (309: −9.9 ms/day); the mixed model barely trusts it and pulls it
almost all the way to the population slope, while subject 308, with all 10 days, keeps most
of its own slope."""),
        code("""
keep = ~sleep["Subject"].isin(["309", "335"]) | (sleep["Days"] < 3)
sparse_model = blm.Model("Reaction ~ Days + (Days | Subject)", sleep[keep])
sparse_fit = sparse_model.fit_reml()
sparse = blm.shrinkage(sparse_fit, None)
slopes = pd.DataFrame({
    "n (all)": table.loc[("Subject", slice(None), "Days"), "n"].droplevel([0, 2]),
    "own slope (all)": table.loc[("Subject", slice(None), "Days"), "no_pooling"].droplevel([0, 2]),
    "REML slope (all)": table.loc[("Subject", slice(None), "Days"), "reml"].droplevel([0, 2]),
    "n (sparse)": sparse.loc[("Subject", slice(None), "Days"), "n"].droplevel([0, 2]),
    "own slope (sparse)": sparse.loc[("Subject", slice(None), "Days"), "no_pooling"].droplevel([0, 2]),
    "REML slope (sparse)": sparse.loc[("Subject", slice(None), "Days"), "reml"].droplevel([0, 2]),
})
print(f"population slope: {sparse_fit.fixef['Days']:.2f}")
slopes.loc[["309", "335", "308"]]"""),
        code("""
fig = blm.plot_shrinkage(sparse_fit, None)
fig"""),
        md("""
## Move τ and σ yourself
Given the between-subject covariance $\\Sigma$ and the residual SD $\\sigma$, the
partial-pooling estimates are not fitted but *calculated*: they solve one penalised least
squares problem (notebook 1). So they can be recomputed in a millisecond for any $\\Sigma$,
$\\sigma$, without refitting. `blm.explore_pooling` does that behind sliders:

* one slider per random-effect SD, one for the correlation and one for $\\sigma$, starting at
  the REML estimates; the observations kept per subject (the first *k* days);
* buttons for the REML estimates, the posterior means, and data simulated from the current
  values;
* the arrows (own fit → partial pooling) inside the population ellipse, each subject's
  lines, and the shrinkage table, all recomputed on every move.

Slide `sd_Subject[Days]` toward its left end and every subject's slope collapses onto the
population slope (complete pooling); slide it right and each keeps its own (no pooling).
Raising $\\sigma$ pools harder, because each subject's data then say less; so does keeping
fewer days. (Sliders need a running Jupyter kernel; a page that only shows stored outputs
shows the picture below instead.)"""),
        code("""
explorer = blm.explore_pooling(fit, posterior)
explorer"""),
        md("""
What the explorer shows, it exposes: `explorer.coefficients` (each subject's line at the
current values), `explorer.table` (the shrinkage table), `explorer.arrows`. At the REML
values the coefficients are lme4's `coef`; setting a value from code works like a slider:"""),
        code("""
at_reml = explorer.coefficients
explorer.set(explorer.setting.scaled(0.25))     # every SD of Subject a quarter of REML's
pd.concat({"REML": at_reml, "SDs x 0.25": explorer.coefficients}, axis=1).head()"""),
        md("""
The same picture at three values of the SDs, for a page without a kernel: a tenth of the
REML values (nearly complete pooling), the REML values, and ten times them (nearly no
pooling)."""),
        code("""
explorer.set(explorer.reml)
explorer.small_multiple((0.1, 1.0, 10.0))"""),
    ],
    "03_generative_story": [
        md("""
# 3. The generative story

> **The question:** *what does a random slope generate? Is it a random value of the
> predictor?*
>
> **The answer in words.** No. The predictor (`Days`) is data and stays fixed. A random slope
> generates one slope **per subject**, drawn from a population distribution with its own
> mean (the fixed slope) and SD (τ); each subject's responses then scatter around that
> subject's own line. Running the model forwards, step by step, makes this concrete.

The clearest way to see it is to run the model forwards: draw the covariance, draw each
group's effects, draw the responses."""),
        code(SETUP),
        code("""
sleep = blm.load_dataset("sleepstudy")
model = blm.Model("Reaction ~ Days + (Days | Subject)", sleep)
model.explain()"""),
        md("""
With a REML fit the story carries the estimates:"""),
        code("""
fit = model.fit_reml()
model.explain(fit)"""),
        md("""
## Step by step
`simulate(..., return_components=True)` keeps every intermediate quantity. We simulate one
new experiment from the REML estimates, drawing **new** subjects (lme4's `simulate` default)."""),
        code("""
sim = model.simulate(fit, seed=1, return_components=True)
print("Step 1 - the covariance of one subject's (intercept, slope) deviations:")
sim.Sigma["Subject"]"""),
        code("""
print("Step 2 - each subject's effects, drawn from MvNormal(0, Sigma):")
sim.ranef["Subject"].head()"""),
        code("""
print("Step 3 - linear predictor mu = X beta + Z b, then y = mu + noise:")
sim.table().head(12)"""),
        md("""
Each simulated subject gets its own line: intercept $\\beta_0 + u_{0j}$ and slope
$\\beta_1 + u_{1j}$. `Days` is the same 0-9 for everyone."""),
        code("""
data = sim.table()
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for subject, rows in sleep.groupby("Subject", observed=True):
    axes[0].plot(rows["Days"], rows["Reaction"], color="C0", alpha=0.5)
for subject, rows in data.groupby("Subject", observed=True):
    axes[1].plot(rows["Days"], rows["Reaction"], color="C1", alpha=0.5)
axes[0].set_title("observed sleepstudy")
axes[1].set_title("one simulated experiment (new subjects)")
for ax in axes:
    ax.set_xlabel("Days")
axes[0].set_ylabel("Reaction (ms)")
fig.tight_layout()"""),
        md("""
## Does the generator match the fit?
Simulate 200 experiments from known parameters, refit REML to each, and average: the
estimates come back (REML is nearly unbiased for the fixed effects and σ)."""),
        code("""
nsim = 200 if DRAWS >= 1000 else 20
truth = {"fixef": {"(Intercept)": 250.0, "Days": 10.0}, "sigma": 25.0,
         "sd": {"Subject": {"(Intercept)": 25.0, "Days": 6.0}}, "corr": {"Subject": 0.1}}
sims = model.simulate(truth, seed=7, nsim=nsim)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    refits = [blm.lmer("Reaction ~ Days + (Days | Subject)", d) for _, d in sims.groupby("sim")]
est = pd.DataFrame([{**r.fixef, "sigma": r.sigma} for r in refits])
pd.DataFrame({"truth": [250.0, 10.0, 25.0], "mean of refits": est.mean(),
              "Monte Carlo SE": est.std() / np.sqrt(nsim)})"""),
        md("""
## Prior predictive check
Before seeing data, what do the default priors (data-scaled, see `model.priors`) say
experiments look like? `simulate(None)` draws parameters from the prior and then data.
Weakly informative priors give plausible but wide data: most simulated reaction times lie
within a few hundred ms of the observed ones, and some are even negative. The priors rule out
absurd scales (seconds or millions of ms), not every impossible value; a model on the log
scale would rule those out too."""),
        code("""
model.priors"""),
        code("""
prior_sims = model.simulate(None, seed=3, nsim=100)
fig, ax = plt.subplots(figsize=(7, 3.5))
for _, d in prior_sims.groupby("sim"):
    ax.hist(d["Reaction"], bins=30, histtype="step", color="C1", alpha=0.2, density=True)
ax.hist(sleep["Reaction"], bins=30, histtype="step", color="k", lw=2, density=True,
        label="observed")
ax.set_xlabel("Reaction (ms)")
ax.legend()
ax.set_title("prior predictive: 100 simulated experiments (orange) vs the data");"""),
        md("""
## The LKJ prior on the correlation
The correlation between a subject's intercept and slope gets an LKJ(η) prior. η = 1 is
uniform over correlations; larger η concentrates mass near 0. bayeslmm's default is η = 2:
it keeps correlations of ±0.9 possible but not favoured, which stabilises fits with few groups."""),
        code("""
import pymc as pm

fig, ax = plt.subplots(figsize=(7, 3.5))
for eta in (1, 2, 5):
    chol = pm.draw(pm.LKJCorr.dist(n=2, eta=eta), draws=4000, random_seed=1)  # Cholesky factors
    corr = (chol @ chol.transpose(0, 2, 1))[:, 0, 1]
    ax.hist(corr, bins=40, range=(-1, 1), density=True, histtype="step", lw=2,
            label=f"eta = {eta}")
ax.set_xlabel("correlation of intercept and slope")
ax.legend()
ax.set_title("LKJ prior draws");"""),
    ],
    "04_posterior_exploration": [
        md("""
# 4. Exploring the posterior

> **The question:** *the random effects are "calculated", but how sure can we be of them, and
> of the variances behind them?*
>
> **The answer in words.** The posterior answers it directly: every parameter, the variance
> components and each subject's effect included, gets a distribution rather than a single
> number. We first check that the sampler can be trusted, then read the uncertainty off the
> draws, and check the model against the data it should have generated.

The Bayesian path gives a full distribution for every parameter — including the variance
components, which REML reports as single numbers. This notebook checks the sampler, looks at
the posterior of the intercept-slope correlation, compares REML with the posterior, and
then explores the posterior as a brms user would: posterior predictive checks, predictions
for observed and new subjects, fitted lines, hypotheses, $R^2$, and model comparison by LOO
beside the likelihood-ratio test — on a model with many groups (sleepstudy, 18 subjects) and
one with very few (iris, 3 species)."""),
        code(SETUP),
        code("""
import arviz as az

sleep = blm.load_dataset("sleepstudy")
model = blm.Model("Reaction ~ Days + (Days | Subject)", sleep)
fit = model.fit_reml()
posterior = model.sample(draws=DRAWS, tune=DRAWS, chains=CHAINS, seed=11)
print(posterior.summary())"""),
        md("""
## Diagnostics
bayeslmm checks every run (divergences, R-hat, ESS) and warns when something is off. ArviZ
works directly on `posterior.idata`, whose dimensions are named after the model's terms and
levels; `blm.plot_trace` is ArviZ's trace plot with the package's parameter labels."""),
        code("""
posterior.diagnostics"""),
        code("""
az.summary(posterior.idata, var_names=["fixef", "sd_Subject", "sigma"])"""),
        code("""
blm.plot_trace(posterior)"""),
        md("""
## The correlation between intercepts and slopes
REML estimates it as a single number; the posterior shows how little 18 subjects pin it
down."""),
        code("""
corr = posterior.draws("corr_Subject").sel(
    {"Subject__term": "(Intercept)", "Subject__term_bis": "Days"}).values.ravel()
reml_corr = fit.varcorr.query("var2 == 'Days'")["sdcor"].item()
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(corr, bins=50, density=True, color="C0", alpha=0.6, label="posterior")
ax.axvline(reml_corr, color="k", lw=2, label=f"REML {reml_corr:.3f}")
ax.set_xlabel("corr(intercept, slope)")
ax.legend();"""),
        md("""
## REML beside the posterior
The fixed effects agree closely (the standardised difference is a small fraction of a
posterior SD); the variance components differ more — the posterior mean of an SD sits above
the REML mode because its distribution is right-skewed."""),
        code("""
blm.compare(fit, posterior)"""),
        code("""
fig = blm.plot_compare(fit, posterior)
fig"""),
        md("""
## The posterior of every parameter
`blm.plot_posterior` and `blm.plot_trace` are ArviZ's `plot_dist` and `plot_trace_dist`
with the labels of `blm.compare`: `fixef[Days]`, `sd_Subject[Days]`,
`corr_Subject[(Intercept), Days]`, `sigma`."""),
        code("""
blm.plot_posterior(posterior)"""),
        md("""
## Posterior predictive checks
Each posterior draw replicates the data set, $y^{rep}_s = X\\beta_s + Zb_s + \\varepsilon_s$.
If the model is adequate the observed data look like one more replicate (brms's `pp_check`):
first the whole distribution, then a statistic per subject. The within-subject SD singles
out the subjects whose day-to-day scatter the common $\\sigma$ does not describe (red: outside
the replicated interval): 309 and 335 vary far less around their lines than the model's
replicates do, 332 (two outlying days) far more. The model's one residual SD is a compromise."""),
        code("""
blm.plot_ppc(posterior, seed=1)"""),
        code("""
blm.plot_ppc(posterior, stat="sd", group="Subject", seed=1)"""),
        md("""
## Predictions for observed and new subjects
`predict` gives one row per row of `newdata`: the mean, SD and interval of the predictions
over the draws. `group_effects` says which subject effects to use:

* `"observed"`: the subject's own effects, draw by draw (a subject the data lack falls back
  to the population line);
* `"new"`: a fresh subject, $b \\sim N(0, \\Sigma)$ in each draw (brms's
  `sample_new_levels = "gaussian"`);
* `"none"`: the population line $X\\beta$.

`kind="response"` adds the residual noise: an interval for a new *measurement* rather than
for the line. The same call works on the REML fit (`summary=True` for the SDs and normal
intervals, conditional on the estimated variance components)."""),
        code("""
new = pd.DataFrame({"Days": [0, 9, 0, 9], "Subject": ["308", "308", "new", "new"]},
                   index=["308, day 0", "308, day 9", "new, day 0", "new, day 9"])
tables = {}
for group_effects in ["observed", "new", "none"]:
    for kind in ["mean", "response"]:
        tables[group_effects, kind] = pd.concat({
            "posterior": posterior.predict(new, group_effects, kind, seed=1),
            "REML": fit.predict(new, group_effects, kind, summary=True),
        }, axis=1)
pd.concat(tables, names=["group_effects", "kind", "row"]).round(1)"""),
        md("""
The predicted mean for subject 308 is the posterior mean of its coefficient line, and a new
subject's `"new"` interval is far wider than its population (`"observed"`) one: it carries
the between-subject spread of intercepts and slopes. `plot_predictions` draws the lines
(brms's `conditional_effects`)."""),
        code("""
blm.plot_predictions(posterior, x="Days")"""),
        code("""
blm.plot_predictions(posterior, x="Days", by="Subject")"""),
        md("""
## Hypotheses
`hypothesis` evaluates expressions of the parameter labels on every draw (brms's
`hypothesis()`). One-sided: the posterior probability and the evidence ratio
$p / (1 - p)$. Two-sided (`=`): the interval of the difference and the Savage–Dickey ratio
of posterior to prior density at the hypothesised value (> 1 favours it)."""),
        code("""
posterior.hypothesis([
    "fixef[Days] > 5",
    "fixef[Days] - 10 = 0",
    "sd_Subject[Days] * 4 < sd_Subject[(Intercept)]",
    "corr_Subject[(Intercept), Days] > 0",
], seed=1)"""),
        md("""
## R²
The Bayesian $R^2$ (Gelman, Goodrich, Gabry & Vehtari 2019) per draw,
$V(\\hat y_s) / (V(\\hat y_s) + V(y - \\hat y_s))$: *marginal* with $\\hat y = X\\beta$,
*conditional* with $\\hat y = X\\beta + Zb$. Beside it the REML fit's Nakagawa–Johnson–
Schielzeth $R^2$ (`performance::r2_nakagawa`), which divides the model's variance
components instead of the fitted values' variances."""),
        code("""
pd.concat({"Bayesian R2": posterior.r2(), "Nakagawa R2 (REML)": fit.r2().to_frame("mean")}, axis=1).round(3)"""),
        md("""
## Comparing models: LOO beside the likelihood-ratio test
Does each subject need its own slope? PSIS-LOO estimates the expected log predictive density
of held-out data. *By observation* it asks how well each model predicts a held-out day of a
subject it knows; *by group* it leaves a whole subject out, with that subject's effects
integrated out exactly, and asks how well the model predicts a new subject. bayeslmm warns
when a Pareto $k$ is too large for the importance sampling to be trusted."""),
        code("""
model0 = blm.Model("Reaction ~ Days + (1 | Subject)", sleep)
posterior0 = model0.sample(draws=DRAWS, tune=DRAWS, chains=CHAINS, seed=11)
models = {"(1 | Subject)": posterior0, "(Days | Subject)": posterior}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", blm.LOOWarning)
    by_obs = blm.compare_models(models, by="observation")
    by_group = blm.compare_models(models, by="group")
for w in caught:
    print("warning:", w.message)
columns = ["rank", "elpd", "se", "elpd_diff", "dse", "p", "weight"]
pd.concat({"by observation": by_obs[columns], "by subject": by_group[columns]}).round(1)"""),
        md("""
`blm.anova` is lme4's likelihood-ratio test: it refits both models by ML (REML likelihoods
are comparable only between models with the same fixed effects, and lme4's `anova` refits
regardless). The slope variance and its correlation are two parameters whose null value sits
on the boundary (a variance of 0), so the $\\chi^2_2$ p-value is conservative."""),
        code("""
with warnings.catch_warnings():
    warnings.simplefilter("ignore", blm.MLRefitWarning)
    lrt = blm.anova(model0.fit_reml(), fit, names=["(1 | Subject)", "(Days | Subject)"])
lrt"""),
        md("""
All three point the same way. The correlated random slopes predict held-out days better
(about two standard errors of the difference) and held-out subjects better (about one and a
half: 18 subjects are 18 units of evidence, not 180), and the likelihood-ratio test rejects
the random-intercept model outright (p ≈ 7·10⁻¹⁰). They answer different questions: LOO the
expected log predictive density of new observations or new subjects, the LRT whether the
extra variance parameters are zero on the ML fits. The Pareto $k$ warnings name the
outlying days and the subjects (332 among them, with two outlying days) whose own
contribution PSIS estimates poorly: exact refits without them would settle those terms."""),
        md("""
## Three groups instead of eighteen
With only 3 species in iris, the between-species SDs are barely identified: three draws from
a distribution say little about its spread. The posterior for them is wide and skewed, and
its mean is far from the REML estimate; the correlation's posterior is close to its LKJ(2)
prior. The fixed effects are still well estimated. This is where the priors matter, and where
a single REML number hides the most uncertainty.

The default sampler integrates the species effects and the fixed effects out, so NUTS
moves only through the two SDs, the correlation and σ, and the species' coefficients are
drawn exactly afterwards; with three groups these variance parameters are barely
identified, which is the geometry the default `target_accept = 0.95` is set for. bayeslmm
reports any divergences that remain."""),
        code("""
iris = blm.load_dataset("iris")
iris_model = blm.Model(
    "Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)", iris)
iris_fit = iris_model.fit_reml()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    iris_post = iris_model.sample(draws=DRAWS, tune=DRAWS, chains=CHAINS, seed=5)
print(iris_post.diagnostics)
for w in caught:
    if issubclass(w.category, blm.ConvergenceWarning):
        print("warning:", w.message)
blm.compare(iris_fit, iris_post)"""),
        code("""
fig = blm.plot_compare(iris_fit, iris_post)
fig"""),
    ],
    "05_reml_inference": [
        md("""
# 5. Intervals from both sides: profile likelihood, bootstrap, t-tests and the posterior

> **The question:** *how well are the fixed effects and the variance components determined,
> and do frequentist and Bayesian intervals agree?*
>
> **The answer in words.** With many groups (18 subjects) the profile, bootstrap and
> posterior intervals tell the same story. With very few groups (3 species) the variance
> components are barely determined: the profile intervals reach zero, and the posterior
> intervals then lean on the prior. The fixed effects' small-sample degrees of freedom show
> the same thing.

Right after `summary()`, lme4 users reach for three things: `confint(m)` (profile intervals
for every parameter), lmerTest's t-tests with small-sample degrees of freedom, and
`anova(m0, m1)`. bayeslmm's REML fit has all three — `fit.confint()`,
`fit.fixef_table()` / `fit.summary(ddf=...)` and `blm.anova()` — and `blm.compare` puts the
REML interval beside the posterior interval **of the same probability** for every
parameter. This notebook uses them on sleepstudy (18 subjects), where the two sides agree,
and on iris (3 species), where they part, and explains why."""),
        code(SETUP),
        md("""
## Profile intervals (lme4's `confint`)
For one parameter $w$ at a value $x$, the profile is the best the model can do with $w$
held at $x$: the ML deviance minimised over every other parameter,
$\\zeta(x) = \\mathrm{sign}(x - \\hat w)\\sqrt{\\min_{\\text{others}} D - \\hat D}$. The 95 %
interval is $\\{x : |\\zeta(x)| \\le 1.96\\}$: the values a likelihood-ratio test would not
reject. As in lme4 the profile is of the ML likelihood, whatever the fit, on the scale of
the SDs, correlations and $\\sigma$; bayeslmm solves for each end with a root finder and
matches lme4 1.1-31's ends to 1e-4 of the interval's width."""),
        code("""
sleep = blm.load_dataset("sleepstudy")
model = blm.Model("Reaction ~ Days + (Days | Subject)", sleep)
fit = model.fit_reml()
fit.confint()"""),
        md("""
`method="wald"` is $\\hat\\beta \\pm 1.96\\,\\mathrm{SE}$ for the fixed effects (nothing for the
variance parameters, as in lme4); `method="boot"` refits `nsim` data sets simulated from
the fit (lme4's `bootMer`) and takes percentiles. With 18 subjects the three agree on the
fixed effects, and profile and bootstrap on the SDs and $\\sigma$. For the correlation the
bootstrap's upper end is higher: about 2 % of the refits land on $\\rho = 1$ (a singular
fit), and the percentile interval counts them."""),
        code("""
pd.concat({
    "profile": fit.confint(),
    "wald": fit.confint("wald"),
    "bootstrap": fit.confint("boot", nsim=500, seed=1, progress=False),
}, axis=1).round(3)"""),
        md("""
## t-tests with small-sample degrees of freedom (lmerTest)
$t = \\hat\\beta_j / \\mathrm{SE}_j$ is not exactly $t$-distributed in a mixed model.
Satterthwaite's method matches its variance to a $t_{df}$: with $V_j = \\mathrm{Var}(\\hat\\beta_j)$
as a function of the variance parameters $(\\theta, \\sigma)$,
$df_j = 2V_j^2 / (\\nabla V_j^\\top C\\, \\nabla V_j)$, $C$ the asymptotic covariance of
$(\\hat\\theta, \\hat\\sigma)$. Here the slope is estimated from 18 subjects' slopes: df = 17,
as a two-stage analysis would say. `ddf="kenward-roger"` also adjusts the SEs."""),
        code("""
print(fit.summary(ddf="satterthwaite"))"""),
        code("""
fit.fixef_table("kenward-roger")"""),
        md("""
## Likelihood-ratio test: is the random slope needed?
`blm.anova` compares nested models as lme4's `anova` does: REML fits are refitted by ML
(with lme4's message), and $\\chi^2 = 2\\Delta\\log L$ on $\\Delta$npar degrees of freedom.
(A variance on its boundary makes this $p$ conservative.)"""),
        code("""
fit0 = blm.lmer("Reaction ~ Days + (1 | Subject)", sleep)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    table = blm.anova(fit0, fit)
print(*[w.message for w in caught], sep="\\n")
table"""),
        md("""
## The same probability on both sides: sleepstudy
`compare` shows the REML estimate with its profile interval (`profile95_lb`, `profile95_ub`)
beside the posterior's interval of the same probability (`eti95_lb`, `eti95_ub`). With 18
subjects the data dominate the priors, and the two kinds of interval nearly coincide,
variance parameters included."""),
        code("""
posterior = model.sample(draws=DRAWS, tune=DRAWS, chains=CHAINS, seed=11)
blm.compare(fit, posterior, ci_prob=0.95)"""),
        code("""
blm.plot_compare(fit, posterior, ci_prob=0.95)"""),
        md("""
## Three species: where the profile and the posterior part
iris with a random intercept and slope per species, `(1 + Sepal.Length | Species)`: the
between-species SDs and their correlation are estimated from **three** groups. (The default
sampler integrates the species effects out and samples the SDs, the correlation and σ.)"""),
        code("""
iris = blm.load_dataset("iris")
iris_model = blm.Model(
    "Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)", iris)
iris_fit = iris_model.fit_reml()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    iris_post = iris_model.sample(draws=DRAWS, tune=DRAWS, chains=CHAINS, seed=5)
for w in caught:
    if issubclass(w.category, blm.ConvergenceWarning):
        print("warning:", w.message)
iris_table = blm.compare(iris_fit, iris_post, ci_prob=0.95)
iris_table"""),
        code("""
blm.plot_compare(iris_fit, iris_post, ci_prob=0.95)"""),
        md("""
The 95 % profile intervals of both SDs reach **0** and the correlation's covers all of
**[−1, 1]**: the data cannot rule out that the species share one intercept and one slope,
nor any correlation. The posterior intervals stay away from 0 and from ±1, and the slope
SD's reaches far above the profile's upper end. Four things are at work.

**1. The likelihood is flat and skewed.** Three species' coefficients carry little
information about the spread of the distribution they come from. The deviance at SD = 0 is
within $1.96^2$ of the best (the likelihood there is still 15 % of its maximum), so the 95 %
interval reaches the boundary; to the right it falls off slowly. Intervals at lower levels
show how flat it is — even the 50 % interval of the correlation reaches +1:"""),
        code("""
rows = ["sd_Species[(Intercept)]", "sd_Species[Sepal.Length]",
        "corr_Species[(Intercept), Sepal.Length]"]
pd.concat({f"{level:.0%}": iris_fit.confint(level=level, parm=rows)
           for level in (0.5, 0.8, 0.95)}, axis=1).round(3)"""),
        md("""
**2. The profile maximises, the posterior averages.** The profile of an SD puts every other
parameter at its best value for that SD, and it is of the ML likelihood, which treats the
fixed effects as known. Estimating two fixed effects from three species' coefficients
uses up most of their information: REML, which integrates the fixed effects out, puts the
SDs well above ML, and the posterior, which integrates everything else out too, spreads
them further up."""),
        code("""
iris_ml = iris_model.fit_reml(reml=False)
pd.DataFrame({"ML": iris_ml.varcorr["sdcor"].to_numpy(),
              "REML": iris_fit.varcorr["sdcor"].to_numpy(),
              "posterior median": iris_table.loc[rows + ["sigma"], "median"].to_numpy()},
             index=rows + ["sigma"]).round(3)"""),
        md("""
**3. Where the likelihood is flat, the prior decides.** The default priors
(`iris_model.priors`) are a half-Student-t for each SD and LKJ(2) for the correlation,
which pulls away from ±1. The correlation's posterior interval is close to its prior's:
the data have hardly moved it. For the SDs the data cut the prior's long right tail, but
not all the way down to the profile's."""),
        code("""
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # PyTensor's note on how it runs the likelihood
    prior = iris_model.sample_prior_predictive(draws=4000, seed=1)["prior"]
corr_draws = prior["corr_Species"].sel(
    Species__term="(Intercept)", Species__term_bis="Sepal.Length").values.ravel()
prior_draws = {
    rows[0]: prior["sd_Species"].sel(Species__term="(Intercept)").values.ravel(),
    rows[1]: prior["sd_Species"].sel(Species__term="Sepal.Length").values.ravel(),
    rows[2]: corr_draws,
}
pd.DataFrame({
    "prior eti95": [np.round(np.quantile(prior_draws[r], [0.025, 0.975]), 3) for r in rows],
    "posterior eti95": [iris_table.loc[r, ["eti95_lb", "eti95_ub"]].to_numpy().round(3)
                        for r in rows],
    "profile95": [iris_table.loc[r, ["profile95_lb", "profile95_ub"]].to_numpy().round(3)
                  for r in rows],
}, index=rows)"""),
        md("""
**4. The fixed effects feel it too.** The population slope of `Sepal.Length` is the average
of three species' slopes, so its uncertainty is driven by the slope SD. The profile (and
Wald) intervals are large-sample normal intervals; Satterthwaite's df says the $t$
statistic has about **2** degrees of freedom, and the $t_{df}$ interval is about as wide as
the posterior's, which averages over the uncertain SD:"""),
        code("""
from scipy import stats

tests = iris_fit.fixef_table()
half = stats.t.ppf(0.975, tests["df"]) * tests["se"]
fixed = [f"fixef[{name}]" for name in tests.index]
pd.DataFrame({
    "df": tests["df"].to_numpy(),
    "t-interval (Satterthwaite)": list(zip((tests["estimate"] - half).round(3),
                                           (tests["estimate"] + half).round(3))),
    "profile95": [tuple(iris_table.loc[f, ["profile95_lb", "profile95_ub"]].round(3))
                  for f in fixed],
    "posterior eti95": [tuple(iris_table.loc[f, ["eti95_lb", "eti95_ub"]].round(3))
                        for f in fixed],
}, index=tests.index)"""),
        md("""
**In short.** With many groups (sleepstudy) the profile, bootstrap and posterior intervals
tell the same story. With three groups they answer different questions: the profile interval
says which values the data alone cannot exclude — for a variance, often everything down to
0 — while the posterior interval averages over everything else and adds what the prior
assumed. Neither is wrong, but when they differ this much the honest summary is that the
data say little about the between-group variation, and any conclusion about it rests on
the method and the prior."""),
    ],
}


def _final_line(text: str) -> str:
    """A stream as a terminal leaves it: of each line redrawn with carriage returns
    (a progress bar), only its last state."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def clean_streams(nb) -> None:
    """Merge each cell's consecutive stream outputs of one name and keep the final state of
    redrawn lines: a progress bar is stored as its one finished line."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged: list = []
        for out in cell.outputs:
            if out.output_type == "stream" and merged and merged[-1].get("name") == out.name:
                merged[-1].text += out.text
            else:
                merged.append(out)
        for out in merged:
            if out.output_type == "stream":
                out.text = _final_line(out.text)
        cell.outputs = merged


def build(name: str, cells: list, execute: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    if execute:
        NotebookClient(
            nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
        ).execute()
        clean_streams(nb)
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    wanted = sys.argv[1:]
    for name, cells in NOTEBOOKS.items():
        if not wanted or any(name.startswith(w) for w in wanted):
            print("wrote", build(name, cells))
