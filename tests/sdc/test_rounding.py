"""Rounding policies: values, consistent totals, shares from rounded counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sde import sdc
from sde.sdc.rounding import policy_named


@pytest.mark.parametrize(
    ("policy", "counts", "expected"),
    [
        ("base-5", [0, 1, 2, 3, 7, 8, 10, 12, 13], [0, 0, 0, 5, 5, 10, 10, 10, 15]),
        ("base-10", [4, 5, 14, 15, 25], [0, 10, 10, 20, 30]),
        ("midpoint-6", [0, 1, 6, 7, 12, 13, 18], [0, 3, 3, 9, 9, 15, 15]),
        ("redact-7-round-5", [0, 5, 7, 8, 12, 13], [np.nan, np.nan, np.nan, 10, 10, 15]),
    ],
)
def test_policy_values(policy: str, counts: list[int], expected: list[float]) -> None:
    got = policy_named(policy).apply(np.array(counts))
    np.testing.assert_array_equal(got, np.array(expected, dtype=float))


def records(counts: np.ndarray) -> pd.DataFrame:
    rows, cols = np.indices(counts.shape)
    return pd.DataFrame(
        {
            "r": np.repeat(rows.ravel(), counts.ravel()),
            "c": np.repeat(cols.ravel(), counts.ravel()),
        }
    )


@pytest.mark.parametrize("policy", ["base-5", "base-10", "midpoint-6"])
def test_totals_are_sums_of_published_cells(policy: str) -> None:
    counts = np.array([[3, 17, 22], [8, 1, 40], [12, 13, 6]])
    df = records(counts)
    t = sdc.crosstab(df.r, df.c, margins=True, protection=policy)
    safe = t.safe.to_numpy()
    np.testing.assert_array_equal(safe[:-1, -1], safe[:-1, :-1].sum(axis=1))
    np.testing.assert_array_equal(safe[-1, :-1], safe[:-1, :-1].sum(axis=0))
    assert safe[-1, -1] == safe[:-1, :-1].sum()
    assert t.report["protection"]["method"] == policy


def test_redact_then_round_rounds_totals_independently() -> None:
    counts = np.array([[3, 17], [8, 40]])
    df = records(counts)
    t = sdc.crosstab(df.r, df.c, margins=True, protection="redact-7-round-5")
    assert np.isnan(t.safe.iloc[0, 0])
    assert t.safe.loc["All", "All"] == 70  # 68 rounded to 5, not a sum of published cells
    assert t.hidden.iloc[0, 0]


def test_shares_come_from_rounded_counts() -> None:
    df = records(np.array([[12, 13], [21, 4]]))
    t = sdc.crosstab(df.r, df.c, protection="base-5")
    shares = sdc.shares(t.safe, "index")
    assert shares.iloc[0].tolist() == [40.0, 60.0]  # 10 and 15 of 25, not 12 and 13
    assert shares.iloc[1].tolist() == [80.0, 20.0]
