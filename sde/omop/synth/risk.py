"""Condition risk: a logistic model in age, deprivation, sex and a shared latent factor.

The log-odds of a condition for a person is ``intercept + shape(age) +
beta * deprivation + female_shift + loading * factor``, where ``shape`` is the
logit of the condition's prevalence-by-age curve, ``deprivation`` runs from -1
(IMD decile 10, least deprived) to +1 (decile 1) so that ``2 * beta`` is the log
odds ratio between the extremes, and ``factor`` is a standard normal per person
shared by related conditions (so that hypertension, diabetes and heart failure
cluster). The intercept is solved once so that the expected prevalence over the
region's age pyramid and deprivation mix equals the condition's target.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from sde.omop.synth import params
from sde.omop.synth.geography import geography


def deprivation_score(decile: np.ndarray) -> np.ndarray:
    """+1 for the most deprived decile (1), -1 for the least deprived (10)."""
    return (5.5 - decile.astype(np.float64)) / 4.5


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def age_shape(model: params.ConditionModel, age: np.ndarray) -> np.ndarray:
    """Logit of the condition's prevalence-by-age curve at each age (years)."""
    xs = np.array([a for a, _ in model.age_knots], dtype=np.float64)
    ys = np.array([p for _, p in model.age_knots], dtype=np.float64)
    return _logit(np.interp(age, xs, ys))


def _age_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ages (mid-year), their weight, the share of women and whether the age is an age
    at death, for the living (the pyramid) and the dead (ages at death) together."""
    years = np.arange(0, 105)
    band = np.minimum(years // 5, len(params.AGE_BAND_SHARE) - 1)
    width = np.where(band == len(params.AGE_BAND_SHARE) - 1, 10.0, 5.0)
    alive = np.where(years < 100, params.AGE_BAND_SHARE[band] / width, 0.0)
    alive = alive / alive.sum() * (1 - params.DEATH_SHARE)
    edges = params.DEATH_AGE_EDGES
    dband = np.searchsorted(edges, years, side="right") - 1
    dead = params.DEATH_AGE_SHARE[dband] / (edges[dband + 1] - edges[dband])
    dead = dead / dead.sum() * params.DEATH_SHARE
    female = params.FEMALE_SHARE[band]
    ages = np.concatenate([years, years]) + 0.5
    return (
        ages,
        np.concatenate([alive, dead]),
        np.concatenate([female, female]),
        np.concatenate([np.zeros(len(years)), np.ones(len(years))]),
    )


def _population_grid() -> tuple[np.ndarray, ...]:
    """Ages, deprivation scores, female flags, death flags and weights covering the
    population on record over the period."""
    ages, age_w, fem, dead = _age_weights()
    deciles, counts = np.unique(geography().decile, return_counts=True)
    dep_w = counts / counts.sum()
    a, d, f = np.meshgrid(
        np.arange(len(ages)), np.arange(len(deciles)), np.array([0, 1]), indexing="ij"
    )
    sex_w = np.where(f == 1, fem[a], 1 - fem[a])
    weight = age_w[a] * dep_w[d] * sex_w
    return (
        ages[a].ravel(),
        deprivation_score(deciles[d]).ravel(),
        f.ravel(),
        dead[a].ravel(),
        weight.ravel(),
    )


def _linear(
    model: params.ConditionModel, age: np.ndarray, dep: np.ndarray, female: np.ndarray
) -> np.ndarray:
    beta = np.log(model.deprivation_or) / 2
    return age_shape(model, age) + beta * dep + model.female_log_odds * female


@cache
def intercepts() -> tuple[float, ...]:
    """The intercept of each condition (in :data:`params.CONDITIONS` order)."""
    age, dep, female, dead, weight = _population_grid()
    nodes, gh_weights = np.polynomial.hermite_e.hermegauss(9)
    gh_weights = gh_weights / gh_weights.sum()
    out = []
    for model in params.CONDITIONS:
        base = _linear(model, age, dep, female)
        base = base + dead * params.DECEDENT_LOG_ODDS.get(model.key, 0.0)
        loading = 0.0 if model.factor == "none" else params.FACTOR_LOADING
        lo, hi = -15.0, 15.0
        for _ in range(60):  # bisection on the expected prevalence
            mid = (lo + hi) / 2
            eta = base[:, None] + mid + loading * nodes[None, :]
            expected = float(((1 / (1 + np.exp(-eta))) @ gh_weights) @ weight)
            lo, hi = (mid, hi) if expected < model.prevalence else (lo, mid)
        out.append((lo + hi) / 2)
    return tuple(out)


def probability(
    index: int, age: np.ndarray, dep: np.ndarray, female: np.ndarray, factor: np.ndarray
) -> np.ndarray:
    """Probability that each person has condition ``index`` recorded over the period."""
    model = params.CONDITIONS[index]
    loading = 0.0 if model.factor == "none" else params.FACTOR_LOADING
    eta = intercepts()[index] + _linear(model, age, dep, female) + loading * factor
    return 1 / (1 + np.exp(-eta))
