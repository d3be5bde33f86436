"""Regression results, histograms, bar charts and survival tables get the same kind of report."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from sde import sdc
from sde.errors import InvalidInput


def ols(n: int, rare: int) -> object:
    rng = np.random.default_rng(5)
    x = pd.DataFrame(
        {"age": rng.normal(50, 10, n), "rare_dummy": [1.0] * rare + [0.0] * (n - rare)}
    )
    y = 0.1 * x.age + rng.normal(0, 1, n)
    return sm.OLS(y, sm.add_constant(x)).fit()


def test_regression_dof_boundary() -> None:
    # df_resid = n - 3 parameters.
    assert sdc.check_regression(ols(13, 12)).report["rules"]["dof"]["count"] == 0
    low = sdc.check_regression(ols(12, 11))
    assert low.status == "fail"
    assert low.report["dof"] == 9
    assert low.report["rules"]["dof"]["labels"] == ["(model)"]


def test_regression_coefficient_support() -> None:
    out = sdc.check_regression(ols(500, 4))
    assert out.status == "fail"
    assert out.report["rules"]["threshold"]["labels"] == ["rare_dummy"]
    assert out.report["coefficients"]["rare_dummy"]["support"] == 4
    assert sdc.check_regression(ols(500, 40)).status == "pass"
    assert set(out.published["params"]) == {"const", "age", "rare_dummy"}


def test_logit_results_are_read_the_same_way() -> None:
    rng = np.random.default_rng(2)
    x = sm.add_constant(pd.DataFrame({"z": rng.normal(size=300)}))
    y = (x.z + rng.normal(size=300) > 0).astype(float)
    out = sdc.check_regression(sm.Logit(y, x).fit(disp=0))
    assert out.status == "pass"
    assert out.report["dof"] == 298


def test_regression_needs_results() -> None:
    with pytest.raises(InvalidInput):
        sdc.check_regression(object())


def test_histogram_from_data_and_from_numpy() -> None:
    rng = np.random.default_rng(1)
    data = np.r_[rng.normal(0, 1, 500), [8.0]]
    out = sdc.check_histogram(data, bins=10)
    assert out.status == "fail"  # the outlier's bin holds one value; empty bins too
    counts, edges = np.histogram(data, bins=10)
    again = sdc.check_histogram((counts, edges))
    assert again.report["rules"] == out.report["rules"]
    assert any("minimum and maximum" in n for n in out.report["notes"])
    small = np.flatnonzero(counts < 10).tolist()
    assert [c[0] for c in out.report["rules"]["threshold"]["cells"]] == small


def test_counts_behind_a_matplotlib_figure() -> None:
    fig, ax = plt.subplots()
    ax.bar(["a", "b", "c"], [25, 7, 40])
    out = sdc.check_figure(fig)
    plt.close(fig)
    assert out.status == "fail"
    assert out.report["rules"]["threshold"]["count"] == 1
    fig, ax = plt.subplots()
    ax.hist(np.random.default_rng(0).normal(size=2000), bins=5)
    out = sdc.check_figure(ax)
    plt.close(fig)
    assert out.report["type"] == "bar chart"


def test_bar_counts_with_labels() -> None:
    out = sdc.check_counts(pd.Series({"F": 30, "M": 9}))
    assert out.report["rules"]["threshold"]["labels"] == ["M"]
    assert np.isnan(out.published["M"])
    with pytest.raises(InvalidInput):
        sdc.check_counts([1.5, 20])


def test_survival_table_from_times() -> None:
    rng = np.random.default_rng(4)
    n = 200
    time = rng.integers(1, 60, n)
    event = rng.random(n) < 0.7
    table = sdc.outputs.survival_table(time, event)
    assert table["at_risk"].iloc[0] == n
    assert (np.diff(table["at_risk"].to_numpy()) <= 0).all()
    out = sdc.check_survival(time=time, event=event)
    assert out.status == "fail"  # single steps of a few people
    published = out.published
    left = -np.diff(np.array(published["at_risk"]))
    assert (left >= 10).all()
    assert min(published["at_risk"]) >= 10


def test_survival_table_from_statsmodels() -> None:
    rng = np.random.default_rng(8)
    time = rng.exponential(10, 400).round() + 1
    status = (rng.random(400) < 0.8).astype(int)
    summary = sm.SurvfuncRight(time, status).summary()
    out = sdc.check_survival(summary, at_risk="num at risk", events="num events")
    assert out.status == "fail"
    assert out.report["rules"]["threshold"]["count"] > 0
    big = pd.DataFrame({"at_risk": [1000, 900, 800], "events": [100, 100, 100]})
    assert sdc.check_survival(big).status == "pass"
