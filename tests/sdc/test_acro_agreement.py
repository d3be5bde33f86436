"""Verdicts agree with ACRO 1.0.2 where the rules coincide; where we differ, a test says why.

ACRO runs in its own virtual environment (``tests/fixtures/acro.py``): the
same records go to both, as CSV, and ACRO's ``sdc`` block (per-check counts
and cell positions) comes back as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from sde import sdc

#: Our rule ids and ACRO's check names, where they mean the same thing.
SAME = {
    "threshold": "MinimumThresholdCheck",
    "zeros": "PresenceOfZeroCheck",
    "nk-dominance": "NKCheck",
    "p-ratio": "PPercentCheck",
}


def ours(case: dict[str, Any], df: pd.DataFrame) -> sdc.CheckedTable:
    columns = case.get("columns", [])
    if case["kind"] == "crosstab":
        values = df[case["values"]] if case.get("values") else None
        return sdc.crosstab(
            [df[c] for c in case["index"]],
            [df[c] for c in columns],
            values=values,
            aggfunc=case.get("aggfunc"),
            margins=case.get("margins", False),
        )
    return sdc.pivot_table(
        df,
        values=case["values"],
        index=case["index"],
        columns=columns or None,
        aggfunc=case["aggfunc"],
        margins=case.get("margins", False),
    )


def boundary_records() -> pd.DataFrame:
    """Cells at each rule's boundary (rows g, columns c, values v)."""
    cells = {
        ("t9", "x"): [5.0] * 9,  # threshold: 9 fails
        ("t9", "y"): [5.0] * 10,  # 10 passes
        ("nk", "x"): [45.0, 45.0] + [1.25] * 8,  # nk exactly 0.90
        ("nk", "y"): [45.0, 44.99] + [10.01 / 8] * 8,  # just below
        ("pr", "x"): [100.0, 50.0] + [1.0] * 10,  # p-ratio exactly 0.10
        ("pr", "y"): [100.0, 50.0] + [0.999] * 10,  # just below
        ("tie", "x"): [30.0, 30.0, 30.0] + [1.0] * 9,  # ties: top two of three equal values
        ("tie", "y"): [46.0, 46.0] + [0.8] * 10,  # tied pair dominating
        ("zero", "x"): [0.0] * 12,  # all-zero contributions
        ("zero", "y"): [3.0] * 14,
    }
    rows = [(g, c, v) for (g, c), vs in cells.items() for v in vs]
    rows += [("empty", "x", 2.0)] * 12  # ("empty", "y") has no records: zeros
    return pd.DataFrame(rows, columns=["g", "c", "v"])


def random_records(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(80, 600))
    return pd.DataFrame(
        {
            "g": rng.choice([f"g{i}" for i in range(int(rng.integers(2, 7)))], n),
            "c": rng.choice([f"c{i}" for i in range(int(rng.integers(2, 6)))], n),
            "v": np.round(rng.pareto(1.5, n) * 10, 2),
        }
    )


AGREEMENT_CASES: list[tuple[str, dict[str, Any], pd.DataFrame]] = [
    ("counts", {"kind": "crosstab", "index": ["g"], "columns": ["c"]}, boundary_records()),
    (
        "counts with margins",
        {"kind": "crosstab", "index": ["g"], "columns": ["c"], "margins": True},
        boundary_records(),
    ),
    (
        "sum crosstab",
        {"kind": "crosstab", "index": ["g"], "columns": ["c"], "values": "v", "aggfunc": "sum"},
        boundary_records(),
    ),
    (
        "mean pivot",
        {"kind": "pivot_table", "index": ["g"], "columns": ["c"], "values": "v", "aggfunc": "mean"},
        boundary_records(),
    ),
    (
        "median pivot",
        {
            "kind": "pivot_table",
            "index": ["g"],
            "columns": ["c"],
            "values": "v",
            "aggfunc": "median",
        },
        boundary_records(),
    ),
    (
        "max crosstab",
        {"kind": "crosstab", "index": ["g"], "columns": ["c"], "values": "v", "aggfunc": "max"},
        boundary_records(),
    ),
    *[
        (
            f"random counts {seed}",
            {"kind": "crosstab", "index": ["g"], "columns": ["c"]},
            random_records(seed),
        )
        for seed in range(4)
    ],
    *[
        (
            f"random sums {seed}",
            {
                "kind": "pivot_table",
                "index": ["g"],
                "columns": ["c"],
                "values": "v",
                "aggfunc": "sum",
            },
            random_records(seed),
        )
        for seed in range(4, 8)
    ],
]


@pytest.fixture(scope="module")
def acro_answers(acro: Any) -> list[dict[str, Any]]:
    """ACRO's answers to every case of this module, from one subprocess."""
    cases = [c for _, c, _ in AGREEMENT_CASES] + [c for c, _ in DIFFERENCES.values()]
    frames = [d for _, _, d in AGREEMENT_CASES] + [d for _, d in DIFFERENCES.values()]
    return acro.run(cases, frames)


@pytest.mark.parametrize("i", range(len(AGREEMENT_CASES)), ids=[n for n, _, _ in AGREEMENT_CASES])
def test_verdicts_agree_with_acro(i: int, acro_answers: list[dict[str, Any]]) -> None:
    _, case, df = AGREEMENT_CASES[i]
    answer = acro_answers[i]
    t = ours(case, df)
    assert t.status == answer["status"]
    compared = 0
    for rule_id, check in SAME.items():
        if check in answer["cells"]:
            assert rule_id in t.report["rules"], check
            assert sorted(t.report["rules"][rule_id]["cells"]) == sorted(answer["cells"][check]), (
                check
            )
            compared += 1
    assert compared >= 2


def test_the_boundary_cases_really_sit_on_the_boundaries() -> None:
    t = ours(AGREEMENT_CASES[2][1], boundary_records())
    flags = t.flags
    assert "nk-dominance" in flags.loc["nk", "x"]
    assert "nk-dominance" not in flags.loc["nk", "y"]
    assert "p-ratio" not in flags.loc["pr", "x"]
    assert "p-ratio" in flags.loc["pr", "y"]
    assert "p-ratio" in flags.loc["zero", "x"]
    assert "threshold" in flags.loc["t9", "x"]


# Deliberate differences ----------------------------------------------------------------

_SUM = {"kind": "pivot_table", "index": ["g"], "columns": ["c"], "values": "v", "aggfunc": "sum"}
_MEAN = {**_SUM, "aggfunc": "mean"}
_SMALL = {
    ("a", "x"): 4,
    ("a", "y"): 20,
    ("a", "z"): 30,
    ("b", "x"): 25,
    ("b", "y"): 40,
    ("b", "z"): 35,
}

DIFFERENCES: dict[str, tuple[dict[str, Any], pd.DataFrame]] = {
    "negative": (
        _SUM,
        pd.DataFrame(
            {
                "g": ["neg"] * 12 + ["dom"] * 12,
                "c": "x",
                "v": [5.0, -1.0] + [5.0] * 10 + [1000.0] + [1.0] * 11,
            }
        ),
    ),
    "mode": (
        {"kind": "crosstab", "index": ["g"], "columns": ["c"], "values": "v", "aggfunc": "mode"},
        pd.DataFrame({"g": ["a"] * 9 + ["b"] * 20, "c": "x", "v": [3.0] * 9 + [1.0] * 20}),
    ),
    "missing": (
        _MEAN,
        pd.DataFrame(
            {"g": ["a"] * 12 + ["b"] * 20, "c": "x", "v": [1.0] * 9 + [np.nan] * 3 + [2.0] * 20}
        ),
    ),
    "dof": (
        {"kind": "crosstab", "index": ["g"], "columns": ["c"], "values": "v", "aggfunc": "std"},
        pd.DataFrame({"g": ["a"] * 9 + ["b"] * 30, "c": "x", "v": np.arange(39, dtype=float)}),
    ),
    "nan labels": (
        {"kind": "crosstab", "index": ["g"], "columns": ["c"]},
        pd.DataFrame({"g": ["a"] * 12 + [None] * 3 + ["b"] * 12, "c": "x"}),
    ),
    "suppression": (
        {"kind": "crosstab", "index": ["g"], "columns": ["c"], "margins": True, "suppress": True},
        pd.DataFrame(
            [(g, c) for (g, c), n in _SMALL.items() for _ in range(n)], columns=["g", "c"]
        ),
    ),
}


def acro_on(name: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """ACRO's answer to the deliberate-difference case ``name``."""
    return answers[len(AGREEMENT_CASES) + list(DIFFERENCES).index(name)]


def test_negative_values_do_not_switch_dominance_off_for_the_whole_table(
    acro_answers: list[dict[str, Any]],
) -> None:
    """ACRO skips both dominance rules for every cell once any cell has a negative value,
    so a dominated cell elsewhere passes; we only skip the cell with the negative."""
    case, df = DIFFERENCES["negative"]
    assert acro_on("negative", acro_answers)["status"] == "review"
    t = ours(case, df)
    assert t.status == "fail"
    assert "p-ratio" in t.flags.loc["dom", "x"]
    assert t.flags.loc["neg", "x"] == ("negative",)


def test_mode_tables_get_the_threshold(acro_answers: list[dict[str, Any]]) -> None:
    """ACRO checks only zeros for a mode, yet the mode of nine records is one of their values."""
    case, df = DIFFERENCES["mode"]
    assert acro_on("mode", acro_answers)["status"] == "pass"
    t = ours(case, df)
    assert t.status == "fail"
    assert t.flags.loc["a", "x"] == ("threshold",)


def test_threshold_counts_contributors_and_missing_values_are_reported(
    acro_answers: list[dict[str, Any]],
) -> None:
    """ACRO counts records, including those whose value is missing, and does not report
    missing values by default; a mean of 9 values from 12 records describes 9 people."""
    case, df = DIFFERENCES["missing"]
    assert acro_on("missing", acro_answers)["status"] == "pass"
    t = ours(case, df)
    assert set(t.flags.loc["a", "x"]) == {"threshold", "missing"}


def test_dof_cells_are_the_cells_with_too_few_degrees_of_freedom(
    acro_answers: list[dict[str, Any]],
) -> None:
    """ACRO lists every cell with non-zero degrees of freedom under MinimumDoFCheck (it
    treats the dof table as a mask); the verdict agrees, the positions are ours."""
    case, df = DIFFERENCES["dof"]
    answer = acro_on("dof", acro_answers)
    t = ours(case, df)
    assert answer["status"] == t.status == "fail"
    assert sorted(answer["cells"]["MinimumDoFCheck"]) == [[0, 0], [1, 0]]
    assert t.report["rules"]["dof"]["cells"] == [[0, 0]]


def test_nan_labels_follow_pandas_not_acro(acro_answers: list[dict[str, Any]]) -> None:
    """ACRO tabulates with dropna=False, so missing labels become a row; we follow pandas
    (the table the researcher sees) and report how many records were left out.
    ``dropna=False`` gives ACRO's table and verdict."""
    _, df = DIFFERENCES["nan labels"]
    assert acro_on("nan labels", acro_answers)["status"] == "fail"
    assert sdc.crosstab(df.g, df.c).status == "pass"
    assert sdc.crosstab(df.g, df.c).report["records_left_out"] == 3
    assert sdc.crosstab(df.g, df.c, dropna=False).status == "fail"


def test_acro_suppression_leaves_a_cell_recoverable_from_a_known_total(
    acro_answers: list[dict[str, Any]],
) -> None:
    """With suppress=True ACRO hides the small cell but leaves the rest of its row, so the
    row total (published by crosstab(g), or by ACRO's own unsuppressed table) minus the
    row's other cells gives it back. Secondary suppression hides a second cell per line."""
    case, df = DIFFERENCES["suppression"]
    table = acro_on("suppression", acro_answers)["table"]
    acro_safe = pd.DataFrame(table["data"], index=table["index"], columns=table["columns"])
    assert np.isnan(acro_safe.loc["a", "x"])
    row_total = int((df.g == "a").sum())
    assert row_total - acro_safe.loc["a", "y"] - acro_safe.loc["a", "z"] == 4
    t = ours(case, df)
    assert t.safe.loc["a"].isna().sum() >= 2
    assert t.safe["x"].isna().sum() >= 2
