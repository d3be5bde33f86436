"""Secondary suppression: no hidden cell can be recomputed from what is published.

The property test rebuilds the attacker's equations from the *published*
table alone (hidden cells are unknowns; every row and column adds up to its
total, and totals the table does not show are assumed known) and shows by a
rank argument that no unknown is determined: appending its unit vector to the
equations always raises their rank.
A total that merely repeats a cell (the row totals of a one-column table) is
not independent knowledge, so it is not assumed known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from sde import sdc
from sde.sdc.suppression import Lines, exposed, protect


def records_for(counts: np.ndarray) -> pd.DataFrame:
    """Records whose crosstab is ``counts`` (rows r0.., columns c0..)."""
    rows, cols = np.indices(counts.shape)
    reps = counts.ravel()
    return pd.DataFrame(
        {
            "r": np.repeat([f"r{i}" for i in rows.ravel()], reps),
            "c": np.repeat([f"c{j}" for j in cols.ravel()], reps),
        }
    )


def full_grid(counts: np.ndarray) -> np.ndarray:
    """Counts with a totals column and a totals row appended."""
    with_rows = np.c_[counts, counts.sum(axis=1)]
    return np.r_[with_rows, with_rows.sum(axis=0, keepdims=True)]


def attacker_determines(published: np.ndarray) -> list[tuple[int, int]]:
    """Unknown (NaN) cells of a full grid that the margin equations pin down."""
    rows, cols = published.shape
    unknown = np.argwhere(np.isnan(published))
    if unknown.size == 0:
        return []
    column_of = {(int(i), int(j)): k for k, (i, j) in enumerate(unknown)}
    equations = []
    for i in range(rows):  # each row's cells minus its total
        eq = np.zeros(len(unknown))
        for j in range(cols):
            if (i, j) in column_of:
                eq[column_of[(i, j)]] = -1.0 if j == cols - 1 else 1.0
        equations.append(eq)
    for j in range(cols):
        eq = np.zeros(len(unknown))
        for i in range(rows):
            if (i, j) in column_of:
                eq[column_of[(i, j)]] = -1.0 if i == rows - 1 else 1.0
        equations.append(eq)
    a = np.array(equations)
    base = np.linalg.matrix_rank(a)
    found = []
    for k, (i, j) in enumerate(unknown):
        e = np.zeros((1, len(unknown)))
        e[0, k] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, e])) == base:
            found.append((int(i), int(j)))
    return found


count_tables = st.integers(2, 6).flatmap(
    lambda r: st.integers(2, 6).flatmap(
        lambda c: st.lists(
            st.one_of(st.integers(0, 12), st.integers(10, 60)), min_size=r * c, max_size=r * c
        ).map(lambda xs: np.array(xs, dtype=np.int64).reshape(r, c))
    )
)


@settings(max_examples=120, deadline=None)
@given(counts=count_tables, margins=st.booleans())
def test_no_suppressed_cell_is_recoverable_by_linear_reasoning(
    counts: np.ndarray, margins: bool
) -> None:
    if counts.sum() == 0:
        return
    df = records_for(counts)
    t = sdc.crosstab(df.r, df.c, margins=margins)
    # Rows/columns with no records vanish from a crosstab, as in pandas.
    shown = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]
    truth = full_grid(shown).astype(float)
    published = truth.copy()
    r, c = shown.shape
    safe = t.safe.to_numpy(dtype=float)
    published[: safe.shape[0], : safe.shape[1]] = safe  # unshown totals stay known...
    if not margins:  # ...unless they merely repeat a cell (a table one row or column wide)
        if c == 1:
            published[:r, c] = np.nan
        if r == 1:
            published[r, :c] = np.nan
        if r == 1 and c == 1:
            published[r, c] = np.nan
    # Every flagged cell is hidden; every shown number is true.
    flagged = t.flagged.to_numpy()
    assert np.isnan(safe[flagged]).all()
    visible = ~np.isnan(published)
    assert np.array_equal(published[visible], truth[visible])
    # The attacker cannot pin down any hidden cell.
    shown_rows, shown_cols = safe.shape
    recovered = [
        (i, j) for i, j in attacker_determines(published) if i < shown_rows and j < shown_cols
    ]
    assert recovered == []
    # Cells are hidden only when something needed hiding.
    if not flagged.any():
        assert not np.isnan(safe).any()


def test_acro_style_primary_suppression_alone_gives_a_cell_away() -> None:
    counts = np.array([[3, 20, 30], [25, 40, 35]])
    grid = full_grid(counts).astype(float)
    primary_only = grid.copy()
    primary_only[0, 0] = np.nan
    assert attacker_determines(primary_only) == [(0, 0)]  # 53 - 20 - 30 = 3
    df = records_for(counts)
    t = sdc.crosstab(df.r, df.c, margins=True)
    assert np.isnan(t.safe.iloc[0, 0])
    assert attacker_determines(t.safe.to_numpy(dtype=float)) == []
    assert len(t.report["protection"]["secondary"]) >= 3


def test_bridge_between_two_protected_blocks_is_closed() -> None:
    # Two 2x2 blocks of hidden cells joined by one hidden cell: the joining cell is a
    # bridge of the hidden pattern and is determined unless a rectangle is closed.
    hidden = np.zeros((6, 6), dtype=bool)
    hidden[np.ix_([0, 1], [0, 1])] = True
    hidden[np.ix_([2, 3], [2, 3])] = True
    hidden[0, 2] = True
    lines = Lines(True, True)
    assert exposed(hidden, lines)[0, 2]
    units = np.full((6, 6), 50.0)
    fixed = protect(hidden, units, lines, np.ones((6, 6), dtype=bool))
    assert not exposed(fixed, lines).any()
    assert (fixed & hidden).sum() == hidden.sum()


def test_one_way_table_hides_a_second_cell() -> None:
    df = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 30 + ["c"] * 40})
    t = sdc.pivot_table(df.assign(v=1.0), values="v", index="g", aggfunc="count", margins=True)
    hidden = t.hidden.iloc[:, 0]
    assert hidden["a"]
    assert hidden.sum() == 2
    assert not hidden["All"]


def test_margins_are_never_hidden_when_interior_cells_can_protect() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(15, 60, size=(5, 4))
    counts[1, 2] = 2
    df = records_for(counts)
    t = sdc.crosstab(df.r, df.c, margins=True)
    assert not t.hidden.loc["All"].any()
    assert not t.hidden["All"].any()


def test_value_tables_use_the_same_pattern_for_every_statistic() -> None:
    df = records_for(np.array([[3, 20, 30], [25, 40, 35]])).assign(v=1.0)
    t = sdc.crosstab(df.r, df.c, values=df.v, aggfunc=["sum", "mean"])
    assert t.hidden["sum"].equals(t.hidden["mean"])
    assert t.hidden["sum"].to_numpy().sum() == 4
