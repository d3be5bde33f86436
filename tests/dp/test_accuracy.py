"""Statistics of the noise: scale = sensitivity / epsilon, and stated intervals cover.

OpenDP's sampler is a CSPRNG and cannot be seeded; the data are seeded, and each test draws
thousands of cells in one vectorised call, with tolerances of several standard errors so a
correct implementation fails less than once in ~10^5 runs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sde.dp import accuracy
from sde.dp.analyse import analyse
from sde.dp.mechanisms import QuantileSelect, Threshold, VectorGaussian, VectorLaplace
from sde.dp.metadata import Metadata
from sde.dp.plan import build
from sde.dp.release import privatise, render

CELLS = 4000


def _discrete_laplace_var(scale: float) -> float:
    p = math.exp(-1 / scale)
    return 2 * p / (1 - p) ** 2


@pytest.mark.parametrize(("l1", "eps"), [(1, 1.0), (4, 0.5), (750, 0.05)])
def test_laplace_scale_is_sensitivity_over_epsilon(l1: int, eps: float) -> None:
    m = VectorLaplace(l1, eps)
    assert m.scale == pytest.approx(l1 / eps, rel=1e-9)
    assert m.meas.map(l1) <= eps
    noise = m(np.zeros(20_000, dtype=int))
    assert noise.var() == pytest.approx(_discrete_laplace_var(m.scale), rel=0.08)
    hw = accuracy.count_half_width(m.scale, "discrete_laplace", 0.05)
    p = math.exp(-1 / m.scale)
    stated = 1 - 2 * p ** (math.floor(hw) + 1) / (1 + p)  # P(|X| <= hw), X discrete Laplace
    assert stated >= 0.95
    assert np.mean(np.abs(noise) <= hw) == pytest.approx(stated, abs=0.008)


def test_other_mechanisms_scale_from_sensitivity() -> None:
    g = VectorGaussian(l2=3.0, rho=0.5)
    assert g.scale == pytest.approx(3.0 / math.sqrt(2 * 0.5), rel=1e-9)
    assert g(np.zeros(20_000, dtype=int)).std() == pytest.approx(g.scale, rel=0.05)
    t = Threshold(l0=2, linf=1, epsilon=0.5, delta=1e-7)
    assert t.scale == pytest.approx(2 / 0.5, rel=1e-9)
    assert t.spend.delta <= 1e-7
    assert t.spend.epsilon <= 0.5
    q = QuantileSelect(0.75, rows=3, epsilon_per_cell=0.2)
    assert q.linf == 3 * 3  # rows * max(n, d - n) for 3/4
    assert q.scale == pytest.approx(2 * q.linf / 0.2, rel=1e-9)


def _grid_query() -> tuple[str, dict[str, list[int]]]:
    sql = (
        "SELECT visit_source_value AS k, COUNT(*) AS n, SUM(LEAST(GREATEST(value_as_number, "
        "0), 100)) AS s, AVG(LEAST(GREATEST(value_as_number, 0), 100)) AS a, "
        "VARIANCE(LEAST(GREATEST(value_as_number, 0), 100)) AS v, "
        "STDDEV(LEAST(GREATEST(value_as_number, 0), 100)) AS sd "
        "FROM measurement m JOIN visit_occurrence v USING (person_id) GROUP BY 1"
    )
    return sql, {"k": list(range(CELLS))}


def test_intervals_cover_at_stated_level() -> None:
    """One privatisation of 4,000 independent cells; each aggregate's coverage is checked."""
    rng = np.random.default_rng(5)
    sql, keys = _grid_query()
    a = analyse(sql, keys=keys)
    plan = build(
        a, epsilon=1.0, delta=None, rows=2, groups=1, salt="s", defaults=Metadata.default().defaults
    )
    res = a.aggregates[1].bounds.resolution
    n = rng.integers(20, 3000, CELLS)
    mean = rng.uniform(10, 90, CELLS)
    sd = rng.uniform(1, 20, CELLS)
    q_sum = np.round(n * mean / res).astype(np.int64)
    cs = q_sum - n * plan.slots[0].mid_u
    css = np.round(n * (sd / res) ** 2 + cs**2 / n).astype(np.int64)
    exact = pd.DataFrame(
        {
            "_dp_k0": range(CELLS),
            "n_rows": n,
            "n_0": n,
            "s_0": q_sum,
            "cs_0": cs,
            "css_0": css,
            "clamped_0": 0,
        }
    )
    out = render(a, privatise(plan, exact), alpha=0.05)
    info = out.attrs["dp"]["columns"]
    mid = plan.slots[0].mid_u * res
    truth = {
        "n": n,
        "s": q_sum * res,
        "a": mid + cs * res / n,
        "v": (css / n - (cs / n) ** 2) * n / (n - 1) * res**2,
    }
    truth["sd"] = np.sqrt(truth["v"])
    for col, exact_value in truth.items():
        err = np.abs(out[col].to_numpy() - exact_value)
        covered = np.mean(err <= np.asarray(info[col]["half_width"]) + 1e-9)
        assert covered >= 0.94, (col, covered)
        if col in {"n", "s"}:  # exact tail bounds, not union bounds: close to 95%
            assert covered <= 0.97, (col, covered)


def test_quantile_rank_error_covers() -> None:
    q = QuantileSelect(0.5, rows=1, epsilon_per_cell=0.05)
    rng = np.random.default_rng(3)
    candidates = 101
    misses = 0
    runs = 400
    bound = accuracy.quantile_rank_error(q.scale, candidates, q.den, 0.05)
    for _ in range(runs):
        hist = rng.multinomial(2000, np.full(candidates, 1 / candidates))
        scores = q.scores(hist)
        pick = q(hist)
        misses += (scores[pick] - scores.min()) / q.den > bound
    assert misses / runs <= 0.05 + 0.035
