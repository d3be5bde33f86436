"""A DP plan: the analysed query, its truncation, and every mechanism, costed before data.

The plan splits the query's epsilon over its noisy statistics by weight (1 per statistic,
``clamped_report_weight`` for each clamped-values report), builds each OpenDP measurement at
its share, and checks that the sum of OpenDP's privacy maps fits the request (basic
sequential composition). Contribution bounds after truncation, for ``rows`` rows per person
per group and ``groups`` groups per person:

=====================  ===========================  =================================
statistic              per cell (linf, grid units)  over cells
=====================  ===========================  =================================
COUNT(*), COUNT(x)     rows                         l1 = groups * linf,
COUNT(DISTINCT pid)    1                            l2 = sqrt(groups) * linf
SUM(x)                 rows * max(|lo|, |hi|)
centred sum (AVG)      rows * half range
centred squares (VAR)  rows * half range ** 2
quantile scores        rows * max(n, d - n)         groups cells, each its own epsilon
clamped report         --                           l1 = 2 * groups * rows (2 totals)
=====================  ===========================  =================================
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from sde.dp.analyse import Analysis
from sde.dp.arguments import check_grid
from sde.dp.locality import refuse
from sde.dp.mechanisms import (
    QuantileSelect,
    Spend,
    Threshold,
    VectorGaussian,
    VectorLaplace,
    quantile_select,
    rho_for,
    threshold,
    vector_gaussian,
    vector_laplace,
    zcdp_to_approx,
)
from sde.dp.metadata import Defaults
from sde.dp.rewrite import ExactPlan, Slot, rewrite, slots_of

MAX_PUBLIC_CELLS = 100_000
NOISES = ("laplace", "gaussian")


@dataclass
class Plan:
    analysis: Analysis
    exact: ExactPlan
    rows: int
    groups: int
    epsilon: float
    delta: float
    noise: str
    #: Public cells (key tuples) or None when keys are released through the threshold.
    cells: list[tuple[Any, ...]] | None
    vectors: dict[str, VectorLaplace | VectorGaussian] = field(default_factory=dict)
    quantiles: dict[int, QuantileSelect] = field(default_factory=dict)
    clamp_reports: dict[int, VectorLaplace] = field(default_factory=dict)
    threshold: Threshold | None = None
    max_candidates: int = 1000

    @property
    def slots(self) -> list[Slot]:
        return self.exact.slots

    def spends(self) -> dict[str, Spend]:
        out: dict[str, Spend] = {n: m.spend for n, m in self.vectors.items()}
        out.update({f"quantile_{i}": q.spend for i, q in self.quantiles.items()})
        out.update({f"clamped_{j}": c.spend for j, c in self.clamp_reports.items()})
        if self.threshold is not None:
            out["n_persons"] = self.threshold.spend
        return out


def _linf(stat: str, slots: list[Slot], rows: int) -> int:
    if stat == "n_persons":
        return 1
    if stat == "n_rows":
        return rows
    kind, _, idx = stat.rpartition("_")
    if kind == "np":
        return 1
    if kind in {"cnt", "n"}:
        return rows
    s = slots[int(idx)]
    return rows * {"s": s.abs_u, "cs": s.half_u, "css": s.half_u**2}[kind]


def public_cells(a: Analysis) -> list[tuple[Any, ...]] | None:
    """Every cell of the public key sets (one empty cell without GROUP BY), or None."""
    if not a.keys:
        return [()]
    if any(k.keys is None for k in a.keys):
        return None
    size = math.prod(len(k.keys or ()) for k in a.keys)
    if size > MAX_PUBLIC_CELLS:
        raise refuse(
            "too-many-cells",
            f"the public key sets give {size} cells; group by fewer or coarser keys "
            f"(at most {MAX_PUBLIC_CELLS})",
        )
    return list(itertools.product(*(k.keys or () for k in a.keys)))


def _check_request(epsilon: float, rows: int, groups: int, noise: str) -> None:
    if noise not in NOISES:
        raise refuse("noise", f"noise must be one of {NOISES}")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise refuse("epsilon", "epsilon must be a positive number")
    if rows < 1 or groups < 1:
        raise refuse("contribution", "max_rows_per_person and max_groups_per_person must be >= 1")


#: Persons in one node, at most (the UK has fewer than 2^27): with the per-person row cap
#: this bounds every exact sum statically, so no SUM can overflow a BIGINT on any engine.
MAX_PERSONS = 2**27


def _check_sums(slots: list[Slot], rows: int) -> None:
    """Every grid value and every sum of them fits a BIGINT on any data (static bounds)."""
    for s in slots:
        if s.bounds is None:
            continue
        check_grid(s.b.lower, s.b.upper, s.b.resolution, rule="bounds")
        per_row = max(s.abs_u, s.half_u**2)
        if per_row * rows * MAX_PERSONS > 2**63 - 1:
            raise refuse(
                "bounds",
                f"{s.expr.sql()}: bounds [{s.b.lower:g}, {s.b.upper:g}] at resolution "
                f"{s.b.resolution:g} with {rows} rows per person could overflow an exact sum; "
                "choose a coarser resolution or fewer rows per person",
            )


def build(
    a: Analysis,
    *,
    epsilon: float,
    delta: float | None,
    rows: int,
    groups: int,
    salt: str,
    defaults: Defaults,
    noise: str = "laplace",
) -> Plan:
    """Every mechanism for ``a`` at ``epsilon`` (and ``delta`` where one is needed)."""
    _check_request(epsilon, rows, groups, noise)
    groups = groups if a.keys else 1
    cells = public_cells(a)
    thresholded = cells is None
    exact = rewrite(
        a,
        rows=rows,
        groups=groups,
        salt=salt,
        threshold=thresholded,
        max_candidates=defaults.quantile_candidates,
        cap_groups=cells is None or groups < len(cells),
    )
    slots, by_agg = slots_of(a)
    _check_sums(slots, rows)
    stats = [s for s in exact.stats if not s.startswith("clamped_")]
    reported = {f"n_{s.index}" for s in slots if s.bounds is not None}
    needed = {n for n in stats if n not in reported} | _needed_counts(a, by_agg)
    vector_stats = [s for s in stats if s in needed and not (thresholded and s == "n_persons")]
    quantile_aggs = [i for i, g in enumerate(a.aggregates) if g.kind == "quantile"]
    w_clamp = defaults.clamped_report_weight
    # A weight of 0 turns the clamped-values report off (every epsilon to the statistics).
    bounded = [s for s in slots if s.bounds is not None] if w_clamp > 0 else []

    weights = len(vector_stats) + len(quantile_aggs) + int(thresholded) + w_clamp * len(bounded)
    share = epsilon / weights
    d_q = delta if delta is not None else defaults.threshold_delta
    needs_delta = thresholded or (noise == "gaussian" and bool(vector_stats))
    if needs_delta and not (0 < d_q < 1):
        raise refuse(
            "delta",
            "this query needs a delta in (0, 1) (keys without a public key set are released "
            "through a noisy threshold, or Gaussian noise)",
        )
    plan = Plan(
        a,
        exact,
        rows,
        groups,
        epsilon,
        d_q if needs_delta else 0.0,
        noise,
        cells,
        max_candidates=defaults.quantile_candidates,
    )
    # With both a threshold and Gaussian noise, each gets half of delta.
    d_each = d_q / 2 if thresholded and noise == "gaussian" and vector_stats else d_q
    if thresholded:
        plan.threshold = threshold(groups, 1, share, d_each)
    _vectors(plan, vector_stats, share, d_each)
    for i in quantile_aggs:
        plan.quantiles[i] = quantile_select(a.aggregates[i].q or 0.5, rows, share / groups)
    for s in bounded:
        plan.clamp_reports[s.index] = vector_laplace(2 * groups * rows, share * w_clamp)
    _check_total(plan, d_each)
    return plan


def _vectors(plan: Plan, stats: list[str], share: float, delta: float) -> None:
    rows, groups = plan.rows, plan.groups
    if plan.noise == "gaussian" and stats:
        rho = rho_for(share * len(stats), delta) / len(stats)
        for s in stats:
            l2 = math.sqrt(groups) * _linf(s, plan.slots, rows)
            plan.vectors[s] = vector_gaussian(l2, rho)
        return
    for s in stats:
        plan.vectors[s] = vector_laplace(groups * _linf(s, plan.slots, rows), share)


def _needed_counts(a: Analysis, by_agg: dict[int, int]) -> set[str]:
    """Per-slot counts that an output needs (AVG/VAR divide by them)."""
    out = set()
    for i, agg in enumerate(a.aggregates):
        if agg.kind in {"avg", "var", "std"}:
            out.add(f"n_{by_agg[i]}")
    return out


def _check_total(plan: Plan, delta_gaussian: float) -> None:
    """The composed cost of OpenDP's maps must fit the request (it does by construction)."""
    spends = plan.spends()
    eps = sum(
        s.epsilon * (plan.groups if k.startswith("quantile_") else 1) for k, s in spends.items()
    )
    if plan.noise == "gaussian":
        rho = sum(s.rho for s in spends.values())
        if rho > 0:
            eps += zcdp_to_approx(rho, delta_gaussian)
    if eps > plan.epsilon * (1 + 1e-9):
        raise AssertionError(f"composed epsilon {eps} exceeds the request {plan.epsilon}")
