"""Primary and secondary cell suppression, verified by linear algebra.

Primary suppression hides the cells a rule flags. That alone is not enough:
with the row and column totals known, a row holding a single hidden cell gives
it away by subtraction (ACRO recomputes its totals without the hidden cells,
which does exactly that). Secondary suppression hides further cells until no
hidden cell is determined by the published numbers.

The model. The table is a grid with a totals row and a totals column (the
*margins*). Every row says "its cells add up to its total", every column the
same, and the totals row adds up to the grand total. The margins are assumed
known even when the table does not show them: a total is easy to learn from
another output. A hidden cell is *exposed* when those equations, with every
published number plugged in, fix its value: when its unit vector lies in the
row space of the equations restricted to the hidden cells. :func:`exposed`
computes that with one SVD.

The method. (1) Every line (row or column, totals included) that hides
exactly one cell hides one more: the cheapest (fewest units; shown margins
last). (2) Any cell still exposed (in a 2-D table this happens when the hidden
cells' pattern has a "bridge") gets a complementary cell that closes a
rectangle through it. Repeat until nothing is exposed. Each pass hides at
least one more cell, so the loop ends; the loops run over lines and exposed
cells, never over all cells.

>>> counts = np.array([[20, 3, 23], [25, 40, 65], [45, 43, 88]])   # last row/col: totals
>>> primary = np.zeros((3, 3), dtype=bool); primary[0, 1] = True
>>> hidden = protect(primary, counts, Lines(row_lines=True, col_lines=True),
...                  suppressible=np.ones((3, 3), dtype=bool))
>>> hidden.astype(int).tolist()
[[1, 1, 0], [1, 1, 0], [0, 0, 0]]
>>> bool(exposed(hidden, Lines(True, True)).any())
False
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Cost multiplier that makes a shown margin the last choice for secondary suppression.
MARGIN_PENALTY = 1e6


@dataclass(frozen=True)
class Lines:
    """Which additivity equations hold in a grid whose last row/column are totals."""

    #: Each row's cells add up to the row's last cell (the grid has a totals column).
    row_lines: bool
    #: Each column's cells add up to the column's last cell (the grid has a totals row).
    col_lines: bool


def constraint_matrix(shape: tuple[int, int], lines: Lines) -> np.ndarray:
    """One equation per line over the grid's cells (row-major): cells minus their total.

    >>> constraint_matrix((2, 3), Lines(True, False)).tolist()
    [[1.0, 1.0, -1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0, -1.0]]
    """
    rows, cols = shape
    equations: list[np.ndarray] = []
    ids = np.arange(rows * cols).reshape(rows, cols)
    if lines.row_lines:
        eq = np.zeros((rows, rows * cols))
        for i in range(rows):
            eq[i, ids[i, :-1]] = 1.0
            eq[i, ids[i, -1]] = -1.0
        equations.append(eq)
    if lines.col_lines:
        eq = np.zeros((cols, rows * cols))
        for j in range(cols):
            eq[j, ids[:-1, j]] = 1.0
            eq[j, ids[-1, j]] = -1.0
        equations.append(eq)
    if not equations:
        return np.zeros((0, rows * cols))
    return np.vstack(equations)


def restricted_equations(hidden: np.ndarray, lines: Lines) -> np.ndarray:
    """The margin equations restricted to the hidden cells (columns in row-major order).

    Built directly in the small (lines x hidden) shape, so large grids cost little.
    """
    rows, cols = hidden.shape
    hi, hj = np.nonzero(hidden)
    blocks: list[np.ndarray] = []
    if lines.row_lines:
        eq = np.zeros((rows, hi.size))
        eq[hi, np.arange(hi.size)] = np.where(hj == cols - 1, -1.0, 1.0)
        blocks.append(eq)
    if lines.col_lines:
        eq = np.zeros((cols, hi.size))
        eq[hj, np.arange(hi.size)] = np.where(hi == rows - 1, -1.0, 1.0)
        blocks.append(eq)
    if not blocks:
        return np.zeros((0, hi.size))
    a = np.vstack(blocks)
    return a[np.abs(a).sum(axis=1) > 0]


def exposed(hidden: np.ndarray, lines: Lines) -> np.ndarray:
    """Hidden cells whose value the published cells and the margin equations determine.

    Cell ``j`` is determined iff ``e_j`` lies in the row space of the equations
    restricted to the hidden cells: its projection on that space has norm 1.
    """
    out = np.zeros(hidden.shape, dtype=bool)
    a = restricted_equations(hidden, lines)
    if a.shape[0] == 0 or a.shape[1] == 0:
        return out
    idx = np.flatnonzero(hidden.ravel())
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    rank = int((s > 1e-9 * max(1.0, float(s[0]))).sum())
    norms = (vt[:rank] ** 2).sum(axis=0)
    out.ravel()[idx[norms > 1 - 1e-9]] = True
    return out


def _line_pass(hidden: np.ndarray, cost: np.ndarray, lines: Lines) -> bool:
    """Hide one more cell in every line that hides exactly one; True if anything changed."""
    changed = False
    for axis, active in ((1, lines.row_lines), (0, lines.col_lines)):
        if not active:
            continue
        lonely = hidden.sum(axis=axis) == 1
        if not lonely.any():
            continue
        candidate_cost = np.where(hidden, np.inf, cost)
        best = np.argmin(candidate_cost, axis=axis)
        best_cost = np.min(candidate_cost, axis=axis)
        pick = lonely & np.isfinite(best_cost)
        where = np.flatnonzero(pick)
        if axis == 1:
            hidden[where, best[where]] = True
        else:
            hidden[best[where], where] = True
        changed = changed or bool(where.size)
    return changed


def _complement(hidden: np.ndarray, cost: np.ndarray, i: int, j: int) -> bool:
    """Hide the cheapest cell closing a rectangle through exposed cell (i, j)."""
    rows_with = hidden[:, j].copy()
    rows_with[i] = False
    cols_with = hidden[i, :].copy()
    cols_with[j] = False
    block = np.where(np.outer(rows_with, cols_with) & ~hidden, cost, np.inf)
    if not np.isfinite(block).any():
        # No rectangle available: hide the cheapest cell of the row or column instead.
        line = np.full(hidden.shape, np.inf)
        line[i, :] = cost[i, :]
        line[:, j] = cost[:, j]
        block = np.where(hidden, np.inf, line)
        if not np.isfinite(block).any():
            return False
    r, c = np.unravel_index(int(np.argmin(block)), block.shape)
    hidden[r, c] = True
    return True


def cell_costs(
    units: np.ndarray, suppressible: np.ndarray, is_margin: np.ndarray | None = None
) -> np.ndarray:
    """The cost of hiding each cell: its units plus one, shown margins last, inf if not allowed."""
    cost = units.astype(float) + 1.0
    if is_margin is not None:
        cost = np.where(is_margin, cost * MARGIN_PENALTY, cost)
    return np.where(suppressible, cost, np.inf)


def protect(
    primary: np.ndarray,
    units: np.ndarray,
    lines: Lines,
    suppressible: np.ndarray,
    is_margin: np.ndarray | None = None,
) -> np.ndarray:
    """The cells to hide: ``primary`` plus complementary cells, none left exposed.

    ``units`` (the cost of hiding a cell) and the masks have the grid's shape,
    margins included; cells that are not ``suppressible`` (totals the table does
    not show, assumed known) are never chosen.
    """
    hidden = primary.copy()
    cost = cell_costs(units, suppressible, is_margin)
    for _ in range(hidden.size + 1):
        while _line_pass(hidden, cost, lines):
            pass
        bad = exposed(hidden, lines)
        if not bad.any():
            return hidden
        progressed = False
        for i, j in np.argwhere(bad)[:1]:
            progressed = _complement(hidden, cost, int(i), int(j)) or progressed
        if not progressed:
            break
    # Nothing cheaper protects the remaining exposed cells: hide every suppressible cell.
    return hidden | suppressible
