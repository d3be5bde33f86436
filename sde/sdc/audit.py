"""Secondary suppression audited by linear programming, until every interval is wide enough.

:func:`protect_audited` starts from the linear pattern of
:func:`sde.sdc.suppression.protect` and audits it (:mod:`sde.sdc.intervals`):
every hidden cell's interval over the tables consistent with the published
ones must be at least as wide as required. While one is narrower, the
narrowest cell gets a complementary suppression: the cheapest cell (fewest
units, shown margins last) in the line through it whose hidden cells add up to
the least (that line's slack is what pins the cell), then the linear pass runs
again. When neither line has a cell left, every suppressible cell is hidden.

A cell in a line whose total is never hidden (a total the table does not show
is assumed known) cannot exceed that total: when the total is smaller than the
width, the cell is required to keep the whole range ``[0, total]`` instead, and
is reported as ``unmet`` (no pattern can do better; hiding the rest of the
table would not help).

Hiding a cell only removes a constraint, so an interval never narrows when
more cells are hidden: a cell that passed once is not audited again.

>>> from sde.sdc.suppression import Lines
>>> grid = np.array([[0, 0, 50, 50], [4, 30, 40, 74], [25, 35, 45, 105], [29, 65, 135, 229]])
>>> primary = np.zeros(grid.shape, dtype=bool); primary[0, :2] = primary[1, 0] = True
>>> problem = Problem(primary, grid, Lines(True, True), np.ones(grid.shape, dtype=bool))
>>> found = protect_audited(problem, [AuditGrid("count", grid, np.full(grid.shape, 10.0))])
>>> bool(found.unmet.any()), bool(found.hidden[1, 0])
(False, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sde.sdc.intervals import TOLERANCE, cell_intervals
from sde.sdc.suppression import Lines, cell_costs, protect


@dataclass(frozen=True)
class AuditGrid:
    """One statistic the attacker can reason about: true values and required widths."""

    name: str
    #: The full grid (margins included), true values.
    values: np.ndarray
    #: The narrowest interval each hidden cell may have.
    required: np.ndarray
    #: Values cannot be negative (counts; sums of a non-negative measure).
    nonnegative: bool = True


@dataclass(frozen=True)
class Problem:
    """The suppression problem on a full grid (see :func:`sde.sdc.suppression.protect`)."""

    primary: np.ndarray
    units: np.ndarray
    lines: Lines
    suppressible: np.ndarray
    is_margin: np.ndarray | None = None
    #: Cells the attacker already knows (published in an earlier release): constants.
    known: np.ndarray | None = None


@dataclass(frozen=True)
class Pattern:
    """The cells to hide, the hidden cells still too narrow, and the programs solved."""

    hidden: np.ndarray
    unmet: np.ndarray
    programs: int
    grids: list[str] = field(default_factory=list)
    #: Hidden cells too narrow whatever else is hidden, not because of a small total of
    #: their own line: the table's known totals pin them. The table cannot be released.
    unprotected: np.ndarray | None = None


def ceilings(values: np.ndarray, fixed: np.ndarray, lines: Lines) -> np.ndarray:
    """The most a non-negative cell can be: the smallest total of its lines that is never hidden.

    A total the table does not show is assumed known, so a cell in a row whose
    total is 3 lies in ``[0, 3]`` whatever is hidden: no pattern makes its
    interval wider than that.
    """
    out = np.full(values.shape, np.inf)
    rows, cols = values.shape
    if lines.row_lines:
        row_total = np.where(fixed[:, -1], values[:, -1], np.inf)
        out[:, : cols - 1] = np.minimum(out[:, : cols - 1], row_total[:, None])
    if lines.col_lines:
        col_total = np.where(fixed[-1, :], values[-1, :], np.inf)
        out[: rows - 1, :] = np.minimum(out[: rows - 1, :], col_total[None, :])
    return out


def _short(
    hidden: np.ndarray, known: np.ndarray, lines: Lines, grid: AuditGrid, passed: np.ndarray
) -> tuple[np.ndarray, int]:
    """Width / required for hidden cells narrower than required (NaN elsewhere)."""
    unknown = hidden & ~known
    found = cell_intervals(
        grid.values, unknown, lines, grid.nonnegative, targets=~passed, enough=grid.required
    )
    width = found.width
    audited = unknown & ~passed
    slack = TOLERANCE * np.maximum(1.0, grid.required)
    short = audited & (width < grid.required - slack)
    passed |= audited & ~short
    ratio = np.where(short, width / np.maximum(grid.required, TOLERANCE), np.nan)
    return ratio, found.programs


def _attainable(grid: AuditGrid, fixed: np.ndarray, lines: Lines) -> AuditGrid:
    """``grid`` with each required width capped at what the fixed totals allow."""
    if not grid.nonnegative:
        return grid
    cap = np.minimum(grid.required, ceilings(grid.values, fixed, lines))
    return AuditGrid(grid.name, grid.values, cap, grid.nonnegative)


def _next_cells(
    hidden: np.ndarray, cost: np.ndarray, ratio: np.ndarray, values: np.ndarray, lines: Lines
) -> list[tuple[int, int]]:
    """Complementary cells for the short cells, narrowest first, one per line touched."""
    picked: list[tuple[int, int]] = []
    trial = hidden.copy()
    while True:
        cell = _next_cell(trial, cost, ratio, values, lines)
        if cell is None:
            return picked
        picked.append(cell)
        trial[cell] = True
        ratio = ratio.copy()
        ratio[cell[0], :] = np.nan  # the lines just widened wait for the next audit
        ratio[:, cell[1]] = np.nan


def _next_cell(
    hidden: np.ndarray, cost: np.ndarray, ratio: np.ndarray, values: np.ndarray, lines: Lines
) -> tuple[int, int] | None:
    """The complementary cell for the narrowest short cell that has a candidate."""
    order = np.argsort(np.where(np.isnan(ratio), np.inf, ratio), axis=None)
    for flat in order[: int(np.isfinite(ratio).sum())]:
        i, j = np.unravel_index(int(flat), ratio.shape)
        through: list[np.ndarray] = []
        if lines.row_lines:
            through.append(np.zeros(hidden.shape, dtype=bool))
            through[-1][i, :] = True
        if lines.col_lines:
            through.append(np.zeros(hidden.shape, dtype=bool))
            through[-1][:, j] = True
        through.sort(key=lambda line: float(np.abs(values[line & hidden]).sum()))
        for line in through:
            candidates = np.where(line & ~hidden, cost, np.inf)
            if np.isfinite(candidates).any():
                r, c = np.unravel_index(int(np.argmin(candidates)), candidates.shape)
                return int(r), int(c)
    return None


def _audit_all(
    hidden: np.ndarray,
    known: np.ndarray,
    lines: Lines,
    grids: list[AuditGrid],
    passed: list[np.ndarray],
    first: int = 0,
) -> tuple[np.ndarray, int | None, int]:
    """The first grid (from ``first``) with cells too narrow: width ratios, its index, programs."""
    programs = 0
    for k in range(first, len(grids)):
        ratio, n = _short(hidden, known, lines, grids[k], passed[k])
        programs += n
        if np.isfinite(ratio).any():
            return ratio, k, programs
    return np.full(hidden.shape, np.nan), None, programs


def protect_audited(problem: Problem, grids: list[AuditGrid]) -> Pattern:
    """Hide ``problem.primary`` and enough other cells that every interval is wide enough.

    Cells still too narrow when nothing more can be hidden are ``unprotected``
    (the known totals of *other* lines pin them: no pattern helps); they are
    listed in ``unmet`` too, with the cells a small total of their own line caps.
    """
    p = problem
    known = np.zeros(p.primary.shape, dtype=bool) if p.known is None else p.known
    allowed = p.suppressible & ~known
    cost = cell_costs(p.units, allowed, p.is_margin)
    hidden = protect(p.primary, p.units, p.lines, allowed | p.primary, p.is_margin)
    fixed = ~p.suppressible | known
    capped = [_attainable(g, fixed, p.lines) for g in grids]
    below = np.zeros(hidden.shape, dtype=bool)
    for nominal, cap in zip(grids, capped, strict=True):
        below |= cap.required < nominal.required
    passed = [np.zeros(hidden.shape, dtype=bool) for _ in capped]
    programs = 0
    short: int | None = None
    ratio = np.full(hidden.shape, np.nan)
    for _ in range(hidden.size + 1):
        ratio, short, n = _audit_all(hidden, known, p.lines, capped, passed)
        programs += n
        if short is None:
            break
        cells = _next_cells(hidden, cost, ratio, capped[short].values, p.lines)
        if not cells:
            if not (allowed & ~hidden).any():
                break
            hidden = hidden | allowed
            continue
        for cell in cells:
            hidden[cell] = True
        hidden = protect(hidden, p.units, p.lines, allowed | hidden, p.is_margin)
    unprotected = np.isfinite(ratio)
    while short is not None:  # nothing more to hide: which cells of later grids are short too
        ratio, short, n = _audit_all(hidden, known, p.lines, capped, passed, short + 1)
        programs += n
        unprotected |= np.isfinite(ratio)
    unmet = unprotected | (hidden & below)
    return Pattern(hidden, unmet, programs, [g.name for g in capped], unprotected)
