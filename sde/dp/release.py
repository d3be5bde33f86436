"""Noise the exact totals (once, on merged partials) and rebuild answers from the record.

:func:`privatise` is the only step that sees exact values: it merges node partials by
addition, releases keys (public sets, or the noisy threshold), runs every mechanism of the
plan and returns a JSON-safe *record* of noisy statistics. :func:`render` turns a record
into the researcher's DataFrame (AVG = mid + noisy centred sum / noisy count, variances,
quantile candidates, confidence intervals): pure post-processing, so the engine answers
from the stored record and repeated or re-rendered answers cost nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from sde.dp import accuracy
from sde.dp.analyse import Aggregate, Analysis
from sde.dp.plan import Plan
from sde.dp.rewrite import Slot, slots_of


def norm_key(v: Any) -> Any:
    """A JSON-safe, comparable form of a group key value."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, Decimal):
        v = int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dt.datetime | dt.date | pd.Timestamp):
        return v.isoformat()
    if isinstance(v, int | float | str | bool):
        return v
    return str(v)


def _as_int(series: pd.Series) -> list[int]:
    return [0 if v is None or pd.isna(v) else round(v) for v in series.tolist()]


def merge(frame: pd.DataFrame, key_cols: list[str], value_cols: list[str]) -> pd.DataFrame:
    """Sum partial totals (from one or many nodes) per cell; cells keyed by normalised JSON."""
    sums = {c: _as_int(frame[c]) for c in value_cols}
    if not key_cols:
        return pd.DataFrame([{c: int(sum(v)) for c, v in sums.items()}])
    cells = [
        json.dumps([norm_key(v) for v in row])
        for row in frame[key_cols].itertuples(index=False, name=None)
    ]
    df = pd.DataFrame({"_cell": cells, **sums})
    return df.groupby("_cell", sort=True)[value_cols].sum().reset_index()


def privatise(
    plan: Plan, exact: pd.DataFrame, histograms: Mapping[int, pd.DataFrame] | None = None
) -> dict[str, Any]:
    """Run every mechanism of ``plan`` on exact totals; the record to store and answer from."""
    a = plan.analysis
    keys = plan.exact.key_cols
    stats = plan.exact.stats
    merged = merge(exact, keys, stats)
    if keys:
        index = dict(zip(merged["_cell"], merged.to_dict("records"), strict=True))
    else:
        index = {"[]": merged.iloc[0].to_dict()}

    record: dict[str, Any] = {"noisy": {}, "quantiles": {}, "clamped": {}}
    if plan.cells is not None:
        cells = [json.dumps([norm_key(v) for v in c]) for c in plan.cells]
    else:
        if plan.threshold is None:
            raise ValueError("a plan without public cells needs a threshold")
        kept = plan.threshold({c: int(r["n_persons"]) for c, r in index.items()})
        cells = sorted(kept)
        record["noisy"]["n_persons"] = [kept[c] for c in cells]
    record["cells"] = [json.loads(c) for c in cells]

    def exact_vector(stat: str) -> list[int]:
        return [int(index[c][stat]) if c in index else 0 for c in cells]

    for stat, mech in plan.vectors.items():
        record["noisy"][stat] = mech(exact_vector(stat)).tolist()

    slots, by_agg = slots_of(a)
    hist = dict(histograms or {})
    for i, select in plan.quantiles.items():
        s = slots[by_agg[i]]
        record["quantiles"][str(i)] = _quantiles(
            plan, s, select, hist.get(s.index), keys=keys, cells=cells
        )

    for j, report in plan.clamp_reports.items():
        totals = [int(merged[f"clamped_{j}"].sum()), int(merged[f"n_{j}"].sum())]
        record["clamped"][str(j)] = report(totals).tolist()

    record["spends"] = {k: asdict(v) for k, v in plan.spends().items()}
    record["rows"], record["groups"] = plan.rows, plan.groups
    record["epsilon"], record["delta"], record["noise"] = plan.epsilon, plan.delta, plan.noise
    record["thresholded"] = plan.cells is None
    record["max_candidates"] = plan.max_candidates
    return record


def _quantiles(
    plan: Plan,
    s: Slot,
    mech: Any,
    hist: pd.DataFrame | None,
    *,
    keys: list[str],
    cells: list[str],
) -> list[float]:
    candidates = s.candidates(plan.max_candidates)
    per_cell: dict[str, np.ndarray] = {c: np.zeros(len(candidates), dtype=np.int64) for c in cells}
    if hist is not None and len(hist):
        h = merge(hist, [*keys, "_dp_bin"], ["n"])
        for cell_bin, n in zip(h["_cell"], h["n"], strict=True):
            *key, b = json.loads(cell_bin)
            cell = json.dumps(key)
            if cell in per_cell and 0 <= int(b) < len(candidates):
                per_cell[cell][int(b)] += int(n)
    return [candidates[mech(per_cell[c])] for c in cells]


# -- rendering (post-processing only) -------------------------------------------------------


def render(a: Analysis, record: Mapping[str, Any], alpha: float) -> pd.DataFrame:
    """The researcher's DataFrame from a stored record; ``attrs["dp"]`` holds accuracy."""
    slots, by_agg = slots_of(a)
    spends = record["spends"]
    cells = [tuple(c) for c in record["cells"]]
    post = _Post(
        slots,
        {k: np.asarray(v, dtype=float) for k, v in record["noisy"].items()},
        record,
        spends,
        alpha,
        len(cells),
    )
    data: dict[str, Any] = {}
    info: dict[str, dict[str, Any]] = {}
    for kind, i in a.outputs:
        if kind == "key":
            data[a.keys[i].name] = [c[i] for c in cells]
            continue
        agg = a.aggregates[i]
        values, hw, extra = post.aggregate(i, agg, by_agg.get(i))
        data[agg.name] = values
        info[agg.name] = {"kind": agg.kind, "half_width": hw, **extra}
    frame = pd.DataFrame(data, columns=a.columns)
    frame = _order(frame, info, a)
    frame.attrs["dp"] = {
        "epsilon": record["epsilon"],
        "delta": record["delta"],
        "alpha": alpha,
        "noise": record["noise"],
        "max_rows_per_person": record["rows"],
        "max_groups_per_person": record["groups"],
        "keys": "thresholded" if record["thresholded"] else "public",
        "threshold": spends["n_persons"].get("threshold") if record["thresholded"] else None,
        "columns": info,
        "statistics": {
            k: {
                "mechanism": v["mechanism"],
                "scale": v["scale"],
                "epsilon": v["epsilon"] * (record["groups"] if k.startswith("quantile_") else 1),
                "rho": v.get("rho", 0.0),
                "delta": v.get("delta", 0.0),
            }
            for k, v in spends.items()
        },
        "clamped": _clamped(record, slots, spends, alpha),
    }
    return frame


def _half(spend: Mapping[str, Any], alpha: float) -> float:
    mech = "discrete_gaussian" if spend["mechanism"] == "discrete_gaussian" else "discrete_laplace"
    return accuracy.count_half_width(spend["scale"], mech, alpha)


Column = tuple[list[Any], list[float], dict[str, Any]]


@dataclass
class _Post:
    """Post-processing of noisy statistics into output columns and their half-widths."""

    slots: list[Slot]
    noisy: dict[str, np.ndarray]
    record: Mapping[str, Any]
    spends: Mapping[str, Any]
    alpha: float
    n_cells: int

    def aggregate(self, i: int, agg: Aggregate, j: int | None) -> Column:
        counts = {
            "count": "n_rows",
            "count_persons": "n_persons" if j is None else f"np_{j}",
            "count_value": f"cnt_{j}",
        }
        if agg.kind in counts:
            return self.count(counts[agg.kind])
        if j is None:
            raise ValueError(f"{agg.name} has no value column")
        s = self.slots[j]
        if agg.kind == "sum":
            return self.total(s)
        if agg.kind == "quantile":
            return self.quantile(i, agg, s)
        return self.mean(s) if agg.kind == "avg" else self.variance(s, agg)

    def count(self, stat: str) -> Column:
        v = np.maximum(self.noisy[stat], 0).astype(int)
        sp = self.spends[stat]
        return v.tolist(), [_half(sp, self.alpha)] * self.n_cells, _cost(sp)

    def total(self, s: Slot) -> Column:
        sp, res = self.spends[f"s_{s.index}"], s.b.resolution
        hw = [_half(sp, self.alpha) * res] * self.n_cells
        return (self.noisy[f"s_{s.index}"] * res).tolist(), hw, _cost(sp)

    def quantile(self, i: int, agg: Aggregate, s: Slot) -> Column:
        sp = self.spends[f"quantile_{i}"]
        cands = len(s.candidates(self.record.get("max_candidates", 1000)))
        rank = accuracy.quantile_rank_error(sp["scale"], cands, _den(agg.q or 0.5), self.alpha)
        extra = {**_cost(sp, cells=self.record["groups"]), "rank_error": rank}
        return list(self.record["quantiles"][str(i)]), [math.nan] * self.n_cells, extra

    def _moments(self, s: Slot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.noisy[f"n_{s.index}"]
        cs = self.noisy[f"cs_{s.index}"] * s.b.resolution
        return n, cs, np.maximum(n, 1.0)

    def mean(self, s: Slot) -> Column:
        res, j = s.b.resolution, s.index
        n, cs, safe_n = self._moments(s)
        values = np.clip(s.mid_u * res + cs / safe_n, s.b.lower, s.b.upper)
        sp_n, sp_cs = self.spends[f"n_{j}"], self.spends[f"cs_{j}"]
        a2 = self.alpha / 2
        hw = accuracy.mean_half_width(n, _half(sp_n, a2), _half(sp_cs, a2) * res, s.half_u * res)
        return values.tolist(), hw.tolist(), _cost(sp_n, sp_cs)

    def variance(self, s: Slot, agg: Aggregate) -> Column:
        res, j = s.b.resolution, s.index
        half_range = s.half_u * res
        n, cs, safe_n = self._moments(s)
        css = self.noisy[f"css_{j}"] * res * res
        sp = [self.spends[f"{k}_{j}"] for k in ("n", "cs", "css")]
        var = css / safe_n - (cs / safe_n) ** 2
        if agg.sample:
            var = var * safe_n / np.maximum(safe_n - 1, 1.0)
        var = np.clip(var, 0.0, half_range**2 * (2.0 if agg.sample else 1.0))
        a3 = self.alpha / 3
        v_lo, v_hi = accuracy.variance_interval(
            n,
            cs,
            css,
            t_n=_half(sp[0], a3),
            t_s=_half(sp[1], a3) * res,
            t_ss=_half(sp[2], a3) * res * res,
            half_range=half_range,
            sample=agg.sample,
        )
        if agg.kind == "std":
            var, v_lo, v_hi = np.sqrt(var), np.sqrt(v_lo), np.sqrt(v_hi)
        hw = np.maximum(v_hi - var, var - v_lo)
        return var.tolist(), hw.tolist(), _cost(*sp)


def _den(q: float) -> int:
    from fractions import Fraction

    return Fraction(q).limit_denominator(1000).denominator


def _cost(*spends: Mapping[str, Any], cells: int = 1) -> dict[str, Any]:
    return {
        "mechanism": "+".join(sorted({s["mechanism"] for s in spends})),
        "scale": [s["scale"] for s in spends] if len(spends) > 1 else spends[0]["scale"],
        "epsilon": sum(s["epsilon"] for s in spends) * cells,
        "rho": sum(s.get("rho", 0.0) for s in spends),
        "delta": sum(s.get("delta", 0.0) for s in spends),
    }


def _clamped(
    record: Mapping[str, Any], slots: list[Slot], spends: Mapping[str, Any], alpha: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for j, (clamped, total) in record["clamped"].items():
        s = slots[int(j)]
        c, t = max(int(clamped), 0), max(int(total), 1)
        out[s.expr.sql()] = {
            "bounds": [s.b.lower, s.b.upper],
            "source": s.b.source,
            "clamped": c,
            "share": min(c / t, 1.0),
            "half_width": _half(spends[f"clamped_{j}"], alpha),
        }
    return out


def _order(frame: pd.DataFrame, info: dict[str, dict[str, Any]], a: Analysis) -> pd.DataFrame:
    """ORDER BY / LIMIT of the query, applied to the noisy result (post-processing)."""
    if not a.order_by and a.limit is None:
        return frame
    hw = pd.DataFrame({f"__hw_{k}": v["half_width"] for k, v in info.items()})
    both = pd.concat([frame.reset_index(drop=True), hw], axis=1)
    if a.order_by:
        both = both.sort_values(
            [c for c, _ in a.order_by], ascending=[not d for _, d in a.order_by], kind="stable"
        )
    if a.limit is not None:
        both = both.head(a.limit)
    for k, v in info.items():
        v["half_width"] = both.pop(f"__hw_{k}").tolist()
    return both.reset_index(drop=True)
