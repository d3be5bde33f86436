"""Interval disclosure: no suppressed cell can be narrowed down by linear programming.

The attacker here is written independently of :mod:`sde.sdc.intervals`: from the
*published* table only (hidden cells are unknowns; every row and column adds up
to its total; totals the table does not show are assumed known; counts are not
negative), they minimise and maximise each unknown with scipy's HiGHS, one cell
at a time, exactly as tau-Argus audits a pattern.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from sde import sdc
from tests.sdc.test_suppression import full_grid, records_for

RECOVERY_TABLE = np.array([[0, 0, 50], [4, 30, 40], [25, 35, 45]])


def attacker_intervals(
    published: np.ndarray, row_sums: bool = True, col_sums: bool = True
) -> dict[tuple[int, int], tuple[float, float]]:
    """Each unknown (NaN) cell's [min, max] over every table consistent with ``published``.

    ``published`` is a full grid (last row and column are totals).
    """
    rows, cols = published.shape
    unknown = [(int(i), int(j)) for i, j in np.argwhere(np.isnan(published))]
    if not unknown:
        return {}
    var = {cell: k for k, cell in enumerate(unknown)}
    a_eq, b_eq = [], []
    lines: list[list[tuple[int, int]]] = []
    if row_sums:
        lines += [[(i, j) for j in range(cols)] for i in range(rows)]
    if col_sums:
        lines += [[(i, j) for i in range(rows)] for j in range(cols)]
    for line in lines:
        eq, rhs = np.zeros(len(unknown)), 0.0
        for pos, cell in enumerate(line):
            sign = -1.0 if pos == len(line) - 1 else 1.0  # cells minus their total
            if cell in var:
                eq[var[cell]] = sign
            else:
                rhs -= sign * published[cell]
        if eq.any():
            a_eq.append(eq)
            b_eq.append(rhs)
    out = {}
    for cell, k in var.items():
        c = np.zeros(len(unknown))
        c[k] = 1.0
        ends = []
        for sense in (1.0, -1.0):
            res = linprog(sense * c, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None))
            ends.append(np.inf if res.status == 3 else sense * res.fun)
        out[cell] = (ends[0], ends[1])
    return out


def test_the_old_pattern_gave_the_4_away_to_linear_programming() -> None:
    # What sde.sdc published before: the linear check passed (no hidden cell is a
    # combination of the published numbers), but row r0's hidden cells must add up
    # to 50 - 50 = 0, so non-negativity pins both to 0 and the 4 follows.
    old = full_grid(RECOVERY_TABLE).astype(float)
    old[0, 0] = old[0, 1] = old[1, 0] = old[1, 1] = np.nan
    found = attacker_intervals(old)
    assert found[(1, 0)] == (4.0, 4.0)
    assert found[(0, 0)] == (0.0, 0.0)


def test_the_recovery_table_is_now_protected() -> None:
    df = records_for(RECOVERY_TABLE)
    t = sdc.crosstab(df.r, df.c, margins=True)
    assert t.hidden.loc["r1", "c0"]
    found = attacker_intervals(t.safe.to_numpy(dtype=float))
    assert found
    assert min(hi - lo for lo, hi in found.values()) >= 10
    audit = t.report["protection"]["audit"]
    assert audit["method"] == "linear-programming"
    assert audit["width"] == 10
    assert audit["unmet"] == []


def test_protection_width_is_a_setting() -> None:
    df = records_for(RECOVERY_TABLE)
    t = sdc.crosstab(df.r, df.c, margins=True, rules={"protection_width": 30})
    found = attacker_intervals(t.safe.to_numpy(dtype=float))
    assert min(hi - lo for lo, hi in found.values()) >= 30
    assert t.report["protection"]["audit"]["width"] == 30


def _published_full(t: sdc.CheckedTable, shown: np.ndarray, margins: bool) -> np.ndarray:
    """The attacker's grid: the published table plus the totals it does not show."""
    truth = full_grid(shown).astype(float)
    published = truth.copy()
    safe = t.safe.to_numpy(dtype=float)
    published[: safe.shape[0], : safe.shape[1]] = safe
    r, c = shown.shape
    if not margins:  # a total that merely repeats a cell is not independent knowledge
        if c == 1:
            published[:r, c] = np.nan
        if r == 1:
            published[r, :c] = np.nan
        if r == 1 and c == 1:
            published[r, c] = np.nan
    visible = ~np.isnan(published)
    assert np.array_equal(published[visible], truth[visible])
    return published


count_tables = st.integers(1, 6).flatmap(
    lambda r: st.integers(1, 6).flatmap(
        lambda c: st.lists(
            st.one_of(st.integers(0, 12), st.integers(10, 60)), min_size=r * c, max_size=r * c
        ).map(lambda xs: np.array(xs, dtype=np.int64).reshape(r, c))
    )
)


@settings(max_examples=150, deadline=None)
@given(counts=count_tables, margins=st.booleans())
def test_no_suppressed_cell_interval_is_narrower_than_the_protection_width(
    counts: np.ndarray, margins: bool
) -> None:
    if counts.sum() == 0:
        return
    df = records_for(counts)
    t = sdc.crosstab(df.r, df.c, margins=margins)
    shown = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]
    published = _published_full(t, shown, margins)
    safe = t.safe.to_numpy(dtype=float)
    assert np.isnan(safe[t.flagged.to_numpy()]).all()
    found = attacker_intervals(published)
    narrow = sorted(
        cell
        for cell, (lo, hi) in found.items()
        if hi - lo < 10 - 1e-6 and cell[0] < safe.shape[0] and cell[1] < safe.shape[1]
    )
    audit = t.report["protection"]["audit"]
    unmet = sorted(tuple(p) for p in audit["unmet"])
    assert narrow == unmet
    unprotected = {tuple(p) for p in audit["unprotected"]}
    if unprotected:  # the checker sees it: the table fails with this reason on those cells
        assert t.status == "fail"
        assert {tuple(p) for p in t.report["rules"]["unprotected"]["cells"]} == unprotected
    else:
        assert "unprotected" not in t.report["rules"]
    for i, j in unmet:  # only where a total that is never hidden leaves no room:
        assert not margins
        if (i, j) in unprotected:  # crossing lines' totals pin it (table failed, above)
            continue
        # its own line's total is small: it keeps the whole range [0, total]
        own_line = np.nanmin([published[i, -1], published[-1, j]])
        assert own_line < 10
        assert found[(i, j)] == pytest.approx((0.0, own_line))


def test_one_way_table_with_margins() -> None:
    df = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 30 + ["c"] * 0 + ["d"] * 40 + ["e"] * 0})
    t = sdc.crosstab(df.g, margins=True)
    published = t.safe.to_numpy(dtype=float)  # one column: the row "All" is the total
    grid = np.c_[published, published]  # the column total repeats the cell
    grid[:, 1] = np.nan
    found = attacker_intervals(grid, row_sums=False, col_sums=True)
    hidden = {cell: w for cell, w in found.items() if cell[1] == 0}
    assert hidden
    assert min(hi - lo for lo, hi in hidden.values()) >= 10


def test_one_way_table_whose_total_is_too_small_hides_everything() -> None:
    df = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 4})
    t = sdc.crosstab(df.g, margins=True)
    assert t.hidden.to_numpy().all()


def test_a_known_total_below_the_width_is_reported_not_fought() -> None:
    # Without margins the row totals are assumed known; r2's is 3, so its cells lie in
    # [0, 3] whatever is hidden. They keep that whole range and are reported unmet;
    # the rest of the table stays published.
    counts = np.array([[30, 40, 25, 33], [28, 35, 41, 22], [2, 1, 0, 0], [31, 26, 38, 45]])
    df = records_for(counts)
    t = sdc.crosstab(df.r, df.c)
    audit = t.report["protection"]["audit"]
    assert sorted(map(tuple, audit["unmet"])) == [(2, 0), (2, 1), (2, 2), (2, 3)]
    assert t.hidden.to_numpy().sum() < counts.size
    published = _published_full(t, counts, margins=False)
    for (i, _), (lo, hi) in attacker_intervals(published).items():
        if i == 2:
            assert (lo, hi) == (0.0, 3.0)


def test_pivot_table_of_sums_protects_the_sums_too() -> None:
    # Counts alone would pass the audit; the sums of row r0 add up to the row total
    # minus published cells, so a sum cell could be pinned if only counts were audited.
    counts = np.array([[12, 11, 40], [3, 30, 40], [25, 35, 45]])
    df = records_for(counts)
    rng = np.random.default_rng(0)
    df["v"] = rng.uniform(1.0, 2.0, len(df)).round(2)
    df.loc[(df.r == "r0") & df.c.isin(["c0", "c1"]), "v"] = 0.0  # hidden sums add up to 0
    t = sdc.pivot_table(df, values="v", index="r", columns="c", aggfunc="sum", margins=True)
    sums = t.safe.to_numpy(dtype=float)
    found = attacker_intervals(sums)
    assert found
    for (i, j), (lo, hi) in found.items():
        value = float(t.table.iloc[i, j])
        assert hi - lo >= max(0.1 * abs(value), 1e-6), (i, j, lo, hi, value)


def test_mean_tables_are_audited_through_counts_and_sums() -> None:
    df = records_for(RECOVERY_TABLE).assign(v=5.0)
    t = sdc.crosstab(df.r, df.c, values=df.v, aggfunc="mean", margins=True)
    counts = sdc.crosstab(df.r, df.c, margins=True)
    assert t.hidden.equals(counts.hidden)
    assert t.report["protection"]["audit"]["grids"] == ["count", "sum"]


def test_rounded_tables_are_not_audited_by_linear_programming() -> None:
    df = records_for(RECOVERY_TABLE)
    t = sdc.crosstab(df.r, df.c, margins=True, protection="base-5")
    assert "audit" not in t.report["protection"]


def test_tables_with_nothing_hidden_solve_no_linear_program() -> None:
    df = records_for(np.full((3, 3), 20))
    t = sdc.crosstab(df.r, df.c, margins=True)
    assert t.report["protection"]["audit"]["programs"] == 0


def _union(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """What an attacker holding both releases knows (``second`` shows the margins)."""
    known = second.copy()
    r, c = first.shape
    known[:r, :c] = np.where(np.isnan(first), second[:r, :c], first)
    return known


def test_the_same_table_twice_with_another_pattern_is_audited_together(tmp_path: Path) -> None:
    counts = np.array([[27, 19, 0, 23], [21, 6, 2, 31], [36, 34, 8, 1], [33, 37, 19, 12]])
    df = records_for(counts)
    ledger = sdc.open_ledger(f"sqlite:///{tmp_path / 'r.sqlite'}", "p")
    first = sdc.crosstab(df.r, df.c, ledger=ledger)
    ledger.record_table("without margins", first)
    s1 = first.safe.to_numpy(dtype=float)
    # Without the ledger, the table with margins hides other cells: together the two
    # releases narrow r1's hidden cells (the 6 and the 2) below the width.
    alone = sdc.crosstab(df.r, df.c, margins=True).safe.to_numpy(dtype=float)
    leaked = attacker_intervals(_union(s1, alone))
    assert leaked[(1, 1)][1] - leaked[(1, 1)][0] < 10
    # With it, cells the first release published are known, and the audit works around them.
    second = sdc.crosstab(df.r, df.c, margins=True, ledger=ledger)
    assert second.report["protection"]["audit"]["known_from_earlier_releases"]
    found = attacker_intervals(_union(s1, second.safe.to_numpy(dtype=float)))
    assert min(hi - lo for lo, hi in found.values()) >= 10


@settings(max_examples=40, deadline=None)
@given(counts=count_tables.filter(lambda c: c.shape[0] * c.shape[1] > 1), seed=st.integers(0, 9))
def test_sum_tables_keep_every_hidden_sum_uncertain(counts: np.ndarray, seed: int) -> None:
    if (counts.sum(axis=0) == 0).any() or (counts.sum(axis=1) == 0).any():
        return
    df = records_for(counts)
    rng = np.random.default_rng(seed)
    df["v"] = np.where(rng.random(len(df)) < 0.3, 0.0, rng.gamma(2.0, 5.0, len(df)).round(1))
    t = sdc.pivot_table(df, values="v", index="r", columns="c", aggfunc="sum", margins=True)
    found = attacker_intervals(t.safe.to_numpy(dtype=float))
    unmet = {tuple(p) for p in t.report["protection"]["audit"]["unmet"]}
    assert not unmet
    for (i, j), (lo, hi) in found.items():
        value = float(np.nan_to_num(t.table.iloc[i, j]))
        assert hi - lo >= 0.1 * abs(value) - 1e-6, (i, j, lo, hi, value)
        assert hi - lo > 0, (i, j)
