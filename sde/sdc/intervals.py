"""How far an attacker can narrow each hidden cell: its interval, by linear programming.

The linear check of :mod:`sde.sdc.suppression` asks whether the published
numbers *determine* a hidden cell. An attacker also knows that counts are not
negative, and that alone can pin cells down: when a row's hidden cells must add
up to 0 (its total minus its published cells), every one of them is 0, and the
cells sharing a column with them follow by subtraction. So, as tau-Argus
does, the pattern is audited by linear programming: over every table
consistent with what is published (the margin equations, the published cells
as constants, non-negativity), each hidden cell is minimised and maximised
(two programs per cell, scipy's HiGHS). The interval ``[min, max]`` is what the
attacker learns; its width must be at least a protection width.

Lines whose true total is the sum of their cells are equations. A line that is
not additive (distinct persons: a person in two cells of a row counts once in
the row's total) gives the attacker inequalities only: the cells add up to at
least the total, and none exceeds it.

>>> from sde.sdc.suppression import Lines
>>> grid = np.array([[0, 0, 50, 50], [4, 30, 40, 74], [25, 35, 45, 105], [29, 65, 135, 229]])
>>> hidden = np.zeros(grid.shape, dtype=bool)
>>> hidden[0, 0] = hidden[0, 1] = hidden[1, 0] = hidden[1, 1] = True
>>> found = cell_intervals(grid, hidden, Lines(True, True))
>>> float(found.low[1, 0]), float(found.high[1, 0]), found.programs   # the 4, recovered
(4.0, 4.0, 8)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from sde.sdc.suppression import Lines

#: Relative tolerance for "this line adds up" and for comparing widths.
TOLERANCE = 1e-7


@dataclass(frozen=True)
class Intervals:
    """Each unknown cell's ``[low, high]`` (NaN elsewhere) and how many programs it took."""

    low: np.ndarray
    high: np.ndarray
    programs: int

    @property
    def width(self) -> np.ndarray:
        return self.high - self.low


def grid_lines(shape: tuple[int, int], lines: Lines) -> list[np.ndarray]:
    """Flat indices of each line of a grid whose last row/column are totals (total last).

    >>> [x.tolist() for x in grid_lines((2, 3), Lines(True, False))]
    [[0, 1, 2], [3, 4, 5]]
    """
    ids = np.arange(shape[0] * shape[1]).reshape(shape)
    out: list[np.ndarray] = []
    if lines.row_lines:
        out += [ids[i, :] for i in range(shape[0])]
    if lines.col_lines:
        out += [ids[:, j] for j in range(shape[1])]
    return out


@dataclass(frozen=True)
class _System:
    a_eq: np.ndarray
    b_eq: np.ndarray
    a_ub: np.ndarray
    b_ub: np.ndarray


def _system(values: np.ndarray, unknown: np.ndarray, lines: Lines) -> _System:
    """The attacker's constraints over the unknown cells (published cells as constants)."""
    flat_values = values.ravel().astype(float)
    flat_unknown = unknown.ravel()
    var = np.full(flat_values.size, -1)
    var[flat_unknown] = np.arange(int(flat_unknown.sum()))
    n = int(flat_unknown.sum())
    eq_rows: list[np.ndarray] = []
    eq_rhs: list[float] = []
    ub_rows: list[np.ndarray] = []
    ub_rhs: list[float] = []
    for line in grid_lines(values.shape, lines):
        if not flat_unknown[line].any():
            continue
        sign = np.ones(line.size)
        sign[-1] = -1.0  # cells minus their total
        row = np.zeros(n)
        hid = flat_unknown[line]
        row[var[line[hid]]] = sign[hid]
        known = float((sign[~hid] * flat_values[line[~hid]]).sum())
        gap = float((sign * flat_values[line]).sum())
        if abs(gap) <= TOLERANCE * max(1.0, abs(float(flat_values[line[-1]]))):
            eq_rows.append(row)  # the line adds up: an equation
            eq_rhs.append(-known)
            continue
        ub_rows.append(-row)  # distinct units: the cells add up to at least the total...
        ub_rhs.append(known)
        for cell in line[:-1]:  # ...and no cell exceeds it
            bound = np.zeros(n)
            rhs = 0.0
            for idx, s in ((cell, 1.0), (line[-1], -1.0)):
                if flat_unknown[idx]:
                    bound[var[idx]] += s
                else:
                    rhs -= s * flat_values[idx]
            if bound.any():
                ub_rows.append(bound)
                ub_rhs.append(rhs)
    return _System(
        np.array(eq_rows).reshape(-1, n),
        np.array(eq_rhs),
        np.array(ub_rows).reshape(-1, n),
        np.array(ub_rhs),
    )


def _segments(x0: np.ndarray, system: _System, nonnegative: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each unknown, a feasible segment through the true table: ``[low, high]``.

    Moving along ``d``, the shortest direction of the equations' null space
    with ``d_k = 1``, keeps every line's sum; it stops where a cell would turn
    negative. The segment lies inside the cell's interval, so a long enough
    segment proves a cell safe without solving a program.
    """
    n = x0.size
    if system.a_ub.size:  # inequalities: no shortcut
        return x0.copy(), x0.copy()
    if system.a_eq.size:
        _, sv, vt = np.linalg.svd(system.a_eq, full_matrices=True)
        rank = int((sv > 1e-9 * max(1.0, float(sv[0]) if sv.size else 1.0)).sum())
        basis = vt[rank:]
    else:
        basis = np.eye(n)
    proj = basis.T @ basis
    diag = np.diag(proj).copy()
    free = diag > 1e-9
    d = np.where(free[None, :], proj / np.where(free, diag, 1.0)[None, :], 0.0)  # column k: d
    if not nonnegative:
        inf = np.where(free, np.inf, 0.0)
        return x0 - inf, x0 + inf
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(d < -1e-12, x0[:, None] / -d, np.inf).min(axis=0)
        down = np.where(d > 1e-12, x0[:, None] / d, np.inf).min(axis=0)
    up = np.where(free, up, 0.0)
    down = np.where(free, down, 0.0)
    return x0 - down, x0 + up


def cell_intervals(
    values: np.ndarray,
    unknown: np.ndarray,
    lines: Lines,
    nonnegative: bool = True,
    targets: np.ndarray | None = None,
    enough: np.ndarray | None = None,
) -> Intervals:
    """The interval of each ``unknown`` cell of a full grid (margins last) given the rest.

    ``targets`` (unknown cells) limits which intervals are computed; all
    ``unknown`` cells remain unknowns of the programs. With ``enough`` (a
    width per cell) only the verdict "at least that wide" is exact: a cell
    whose feasible segment through the true table is that wide gets the
    segment (an inner bound) and no program; the maximum is solved first and
    the minimum only when the maximum alone does not settle the verdict.
    """
    low = np.full(values.shape, np.nan)
    high = np.full(values.shape, np.nan)
    cells = np.flatnonzero(unknown.ravel())
    wanted = unknown if targets is None else unknown & targets
    if not wanted.any():
        return Intervals(low, high, 0)
    system = _system(values, unknown, lines)
    bounds = (0.0, None) if nonnegative else (None, None)
    programs = 0
    if enough is not None:
        x0 = values.ravel()[cells].astype(float)
        seg_low, seg_high = _segments(x0, system, nonnegative)
        wide = seg_high - seg_low >= enough.ravel()[cells]
        low.ravel()[cells[wide]] = seg_low[wide]
        high.ravel()[cells[wide]] = seg_high[wide]
        wanted = wanted.copy()
        wanted.ravel()[cells[wide]] = False
    for k, cell in enumerate(cells):
        if not wanted.ravel()[cell]:
            continue
        truth = float(values.ravel()[cell])
        hi = _extreme(system, k, cells.size, -1.0, bounds, truth)
        programs += 1
        need = None if enough is None else float(enough.ravel()[cell])
        if need is not None and hi - truth >= need:  # settled: at least [truth, hi]
            lo = truth
        elif need is not None and nonnegative and hi < need:  # settled: at most [0, hi]
            lo = 0.0
        else:
            lo = _extreme(system, k, cells.size, 1.0, bounds, truth)
            programs += 1
        low.ravel()[cell], high.ravel()[cell] = lo, hi
    return Intervals(low, high, programs)


def _extreme(
    system: _System,
    k: int,
    n: int,
    sense: float,
    bounds: tuple[float | None, float | None],
    truth: float,
) -> float:
    """The minimum (``sense`` 1) or maximum (-1) of unknown ``k`` over the attacker's tables."""
    objective = np.zeros(n)
    objective[k] = sense
    res = linprog(
        objective,
        A_ub=system.a_ub if system.a_ub.size else None,
        b_ub=system.b_ub if system.b_ub.size else None,
        A_eq=system.a_eq if system.a_eq.size else None,
        b_eq=system.b_eq if system.b_eq.size else None,
        bounds=bounds,
        method="highs",
    )
    if res.status == 3:  # unbounded in this direction
        return -sense * np.inf
    if res.status == 0:
        return sense * float(res.fun)
    return truth  # numerically troubled: assume the attacker learns the true value
