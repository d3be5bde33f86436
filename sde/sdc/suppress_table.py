"""Suppression of a checked table: the grids the attacker reasons about, then the audit.

The pattern is found on the *full* grid: the displayed table plus the totals it
does not show, which are assumed known (they are easy to learn from another
output) and taken as the sums of their cells. What is audited
(:mod:`sde.sdc.audit`):

* **counts**, always (a table of values is published with its counts, or they
  are easy to learn): hidden counts must keep an interval at least
  ``SDCConfig.width`` units wide (``protection_width``, default ``threshold``);
* **sums** when the table shows sums or means: a mean is not additive, but the
  mean times the count is the cell's sum, and sums are. Hidden sums must keep
  an interval at least ``p_ratio`` of their value wide (tau-Argus' p% rule),
  and never be pinned exactly. Sums of a measure with no negative value are
  non-negative; otherwise the attacker gets no bound.

Medians, extremes, modes and spreads are not additive and add no equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sde.sdc.audit import AuditGrid, Problem, protect_audited
from sde.sdc.config import SDCConfig
from sde.sdc.evidence import Evidence
from sde.sdc.suppression import Lines

#: Statistics whose hidden cells are also audited as sums.
SUM_AUDITED = frozenset({"sum", "mean"})


@dataclass(frozen=True)
class Layout:
    """Where the displayed table sits in the full grid."""

    rows: int
    cols: int
    has_row_totals: bool
    margins: bool

    @property
    def full(self) -> tuple[int, int]:
        return self.rows + 1, self.cols + int(self.has_row_totals)

    @property
    def lines(self) -> Lines:
        return Lines(
            row_lines=self.has_row_totals and (self.cols > 1 or self.margins),
            col_lines=self.rows > 1 or self.margins,
        )

    def extend(self, displayed: np.ndarray, fill: Any) -> np.ndarray:
        out = np.full(self.full, fill, dtype=displayed.dtype)
        out[: displayed.shape[0], : displayed.shape[1]] = displayed
        return out

    def totals(self, displayed: np.ndarray) -> np.ndarray:
        """The full grid of values; totals not shown are the sums of their cells."""
        out = self.extend(np.nan_to_num(displayed.astype(float)), 0.0)
        if self.margins:
            return out
        inner = out[: self.rows, : self.cols]
        out[self.rows, : self.cols] = inner.sum(axis=0)
        if self.has_row_totals:
            out[: self.rows, self.cols] = inner.sum(axis=1)
            out[self.rows, self.cols] = inner.sum()
        return out


def audit_grids(
    ev: Evidence, aggs: list[str | None], layout: Layout, cfg: SDCConfig
) -> list[AuditGrid]:
    """Counts, and sums when the table shows sums or means."""
    counts = layout.totals(ev.n)
    grids = [AuditGrid("count", counts, np.full(layout.full, cfg.width))]
    if ev.has_values and SUM_AUDITED & set(aggs):
        sums = layout.totals(ev.records_sum)
        floor = 1e-6 * max(1.0, float(np.abs(sums).max()))
        required = np.maximum(cfg.p_ratio * np.abs(sums), floor)
        grids.append(AuditGrid("sum", sums, required, nonnegative=not ev.n_negative.any()))
    return grids


def suppress(
    *,
    ev: Evidence,
    aggs: list[str | None],
    failing: np.ndarray,
    layout: Layout,
    cfg: SDCConfig,
    known: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The hidden cells of the displayed grid and the audit's report."""
    shape = failing.shape
    is_margin = np.zeros(layout.full, dtype=bool)
    is_margin[layout.rows, :] = True
    if layout.has_row_totals:
        is_margin[:, layout.cols] = True
    problem = Problem(
        primary=layout.extend(failing, False),
        units=layout.extend(ev.n.astype(float), 0.0),
        lines=layout.lines,
        suppressible=layout.extend(np.ones(shape, dtype=bool), False),
        is_margin=is_margin,
        known=None if known is None else layout.extend(known, False),
    )
    pattern = protect_audited(problem, audit_grids(ev, aggs, layout, cfg))
    hidden = pattern.hidden[: shape[0], : shape[1]]
    report = {
        "method": "linear-programming",
        "width": cfg.width,
        "grids": pattern.grids,
        "programs": pattern.programs,
        "unmet": [[int(i), int(j)] for i, j in np.argwhere(pattern.unmet)],
        "unprotected": []
        if pattern.unprotected is None
        else [
            [int(i), int(j)] for i, j in np.argwhere(pattern.unprotected[: shape[0], : shape[1]])
        ],
        "known_from_earlier_releases": []
        if known is None
        else [[int(i), int(j)] for i, j in np.argwhere(known)],
    }
    return hidden, report
