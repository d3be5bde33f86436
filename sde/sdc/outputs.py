"""Other outputs: regression results, histograms and bar charts, survival tables.

Each check returns a :class:`CheckedOutput` with a status, a report in the
same shape as a table's (rules, cell positions) and what may be published.
Nothing here imports statsmodels or matplotlib: results and figures are read
through their public attributes.

>>> out = check_counts([12, 3, 0, 40], labels=["a", "b", "c", "d"])
>>> out.status, out.report["rules"]["threshold"]["cells"]
('fail', [[1, 0], [2, 0]])
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sde.errors import InvalidInput
from sde.sdc.config import SDCConfig, as_config
from sde.sdc.rules import BY_ID, RULES
from sde.sdc.rules import dof as dof_rule


@dataclass(frozen=True)
class CheckedOutput:
    """A checked non-table output: verdict, report, and the publishable content."""

    status: str
    report: dict[str, Any]
    published: Any = field(default=None)

    def to_markdown(self) -> str:
        lines = [f"**Status: {self.status}** ({self.report['type']})", "", self.report["summary"]]
        for rid, info in self.report["rules"].items():
            if info["count"]:
                where = ", ".join(str(label) for label in info.get("labels", []))
                lines.append(f"- {rid}: {info['count']} flagged ({info['explanation']}): {where}")
        lines += [f"- {note}" for note in self.report.get("notes", [])]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        import html

        md = self.to_markdown().replace("**", "")
        return "<section><pre>" + html.escape(md) + "</pre></section>"


def _report(
    *,
    kind: str,
    method: str,
    masks: Mapping[str, np.ndarray],
    labels: Sequence[Any],
    cfg: SDCConfig,
    notes: list[str],
    extra: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    status = "pass"
    for rule in RULES:
        if rule.id not in masks:
            continue
        mask = np.asarray(masks[rule.id], dtype=bool)
        where = np.flatnonzero(mask)
        rules[rule.id] = {
            "status": rule.severity if where.size else "pass",
            "acro_check": rule.acro_check,
            "count": int(where.size),
            "cells": [[int(i), 0] for i in where],
            "labels": [_jsonable(labels[int(i)]) for i in where],
            "explanation": rule.explanation,
        }
        if where.size and rule.severity == "fail":
            status = "fail"
        elif where.size and status == "pass":
            status = "review"
    parts = [f"{rid}: {info['count']} flagged" for rid, info in rules.items() if info["count"]]
    report = {
        "type": kind,
        "method": method,
        "status": status,
        "summary": status + ("; " + "; ".join(parts) if parts else ""),
        "parameters": asdict(cfg),
        "rules": rules,
        "notes": notes,
        **extra,
    }
    return status, report


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    return x if isinstance(x, int | float | str) or x is None else str(x)


def check_regression(
    results: Any, rules: SDCConfig | Mapping[str, Any] | None = None
) -> CheckedOutput:
    """A fitted model's results (statsmodels or alike): ``dof`` and per-coefficient support.

    Support is the number of observations with a non-zero value of the
    coefficient's regressor: a dummy for a category of three people describes
    three people, whatever the model's size. The intercept is exempt.
    """
    cfg = as_config(rules)
    if not hasattr(results, "df_resid"):
        raise InvalidInput("sdc.regression", "expected a fitted model's results (with df_resid)")
    df_resid = float(results.df_resid)
    model = getattr(results, "model", None)
    names = list(getattr(model, "exog_names", None) or [])
    exog = getattr(model, "exog", None)
    params = np.asarray(getattr(results, "params", np.zeros(len(names))), dtype=float).ravel()
    if not names:
        names = [f"x{i}" for i in range(len(params))]
    support = (
        np.count_nonzero(np.asarray(exog, dtype=float), axis=0)
        if exog is not None
        else np.full(len(names), np.inf)
    )
    is_const = np.array([n in ("const", "Intercept") for n in names], dtype=bool) | (
        np.ptp(np.asarray(exog, dtype=float), axis=0) == 0 if exog is not None else False
    )
    labels = ["(model)", *names]
    masks = {
        "threshold": np.r_[False, (support < cfg.threshold) & ~is_const],
        "dof": np.r_[dof_rule.too_few(df_resid, cfg), np.zeros(len(names), dtype=bool)],
    }
    coefficients = {
        n: {"estimate": float(p), "support": int(s) if np.isfinite(s) else None}
        for n, p, s in zip(names, params, support, strict=False)
    }
    status, report = _report(
        kind="regression",
        method=type(results).__name__,
        masks=masks,
        labels=labels,
        cfg=cfg,
        notes=[],
        extra={"dof": df_resid, "coefficients": coefficients},
    )
    bse = np.asarray(getattr(results, "bse", np.full(len(params), np.nan)), dtype=float).ravel()
    published = {
        "params": dict(zip(names, params.tolist(), strict=False)),
        "bse": dict(zip(names, bse.tolist(), strict=False)),
        "df_resid": df_resid,
    }
    return CheckedOutput(status, report, published)


def check_counts(
    counts: Any,
    labels: Sequence[Any] | None = None,
    kind: str = "bar chart",
    rules: SDCConfig | Mapping[str, Any] | None = None,
    notes: list[str] | None = None,
) -> CheckedOutput:
    """The counts behind a bar chart or histogram: ``threshold`` and ``zeros`` per bar."""
    cfg = as_config(rules)
    if isinstance(counts, pd.Series):
        labels = list(counts.index) if labels is None else list(labels)
        counts = counts.to_numpy()
    arr = np.asarray(counts, dtype=float).ravel()
    labels = list(range(arr.size)) if labels is None else list(labels)
    if len(labels) != arr.size:
        raise InvalidInput("sdc.labels", f"{len(labels)} labels for {arr.size} counts")
    if np.any(arr != np.round(arr)) or np.any(arr < 0):
        raise InvalidInput("sdc.counts", "bar heights must be non-negative whole counts")
    masks = {"threshold": arr < cfg.threshold}
    if cfg.zeros_are_disclosive:
        masks["zeros"] = arr == 0
    status, report = _report(
        kind=kind,
        method=kind,
        masks=masks,
        labels=labels,
        cfg=cfg,
        notes=list(notes or []),
        extra={},
    )
    published = pd.Series(arr, index=labels).where(~masks["threshold"])
    return CheckedOutput(status, report, published.to_dict())


def check_histogram(
    data_or_counts: Any,
    bins: Any = 10,
    rules: SDCConfig | Mapping[str, Any] | None = None,
) -> CheckedOutput:
    """A histogram: raw data (binned as ``numpy.histogram``), or its ``(counts, edges)``.

    The outer bin edges show the minimum and maximum: the report asks a checker
    to confirm that they are not disclosive.
    """
    if isinstance(data_or_counts, tuple) and len(data_or_counts) == 2:
        counts, edges = (np.asarray(x) for x in data_or_counts)
    else:
        data = np.asarray(data_or_counts, dtype=float)
        counts, edges = np.histogram(data[~np.isnan(data)], bins=bins)
    labels = [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(edges)]
    note = "the outer bin edges reveal the minimum and maximum: check they are not disclosive"
    return check_counts(counts, labels, kind="histogram", rules=rules, notes=[note])


def check_figure(figure: Any, rules: SDCConfig | Mapping[str, Any] | None = None) -> CheckedOutput:
    """The bar heights drawn on a matplotlib figure (or axes): bar charts and histograms."""
    axes = figure.get_axes() if hasattr(figure, "get_axes") else [figure]
    heights: list[float] = []
    labels: list[str] = []
    for a, ax in enumerate(axes):
        for c, container in enumerate(getattr(ax, "containers", [])):
            for b, patch in enumerate(container):
                if hasattr(patch, "get_height"):
                    heights.append(float(patch.get_height()))
                    labels.append(f"axes {a} series {c} bar {b}")
    if not heights:
        raise InvalidInput("sdc.figure", "no bars found on the figure")
    return check_counts(heights, labels, kind="bar chart", rules=rules)


def survival_table(time: Any, event: Any) -> pd.DataFrame:
    """Number at risk, events and censored per distinct time (vectorised).

    >>> survival_table([1, 2, 2, 3], [1, 1, 0, 1])["at_risk"].tolist()
    [4, 3, 1]
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    if t.shape != e.shape:
        raise InvalidInput("sdc.survival", "time and event must have the same length")
    times, inverse = np.unique(t, return_inverse=True)
    events = np.bincount(inverse, weights=e, minlength=times.size).astype(np.int64)
    leaving = np.bincount(inverse, minlength=times.size)
    at_risk = t.size - np.concatenate([[0], np.cumsum(leaving)[:-1]])
    return pd.DataFrame(
        {"at_risk": at_risk, "events": events, "censored": leaving - events},
        index=pd.Index(times, name="time"),
    )


def check_survival(
    table: pd.DataFrame | None = None,
    *,
    time: Any = None,
    event: Any = None,
    at_risk: str = "at_risk",
    events: str = "events",
    rules: SDCConfig | Mapping[str, Any] | None = None,
) -> CheckedOutput:
    """A survival table (a step per time): small risk sets and small steps fail.

    Give a table with a number-at-risk column (``at_risk``; statsmodels calls it
    ``"num at risk"``, lifelines ``"at_risk"``) and an events column, or raw
    ``time``/``event``. A step fails ``threshold`` when fewer than
    ``survival_threshold`` units are at risk, or when between 1 and
    ``survival_threshold - 1`` units leave the risk set there. The published
    table merges steps until at least ``survival_threshold`` units have left
    and drops the tail where the risk set is small.
    """
    cfg = as_config(rules)
    if table is None:
        if time is None or event is None:
            raise InvalidInput("sdc.survival", "give a survival table, or time= and event=")
        table = survival_table(time, event)
    for col in (at_risk, events):
        if col not in table.columns:
            raise InvalidInput("sdc.survival", f"the survival table has no {col!r} column")
    risk = table[at_risk].to_numpy(dtype=float)
    ev = table[events].to_numpy(dtype=float)
    leaving = np.append(risk[:-1] - risk[1:], ev[-1:]) if risk.size else risk
    t = cfg.survival_threshold
    small_risk = risk < t
    small_step = (leaving > 0) & (leaving < t)
    labels = [str(x) for x in table.index]
    status, report = _report(
        kind="survival table",
        method="survival",
        masks={"threshold": small_risk | small_step},
        labels=labels,
        cfg=cfg,
        notes=["steps are merged in the published table until enough units have left"],
        extra={},
    )
    published = _merged_steps(table.index, risk, ev, t)
    return CheckedOutput(status, report, published)


def _merged_steps(times: pd.Index, risk: np.ndarray, ev: np.ndarray, t: int) -> dict[str, Any]:
    """Publish a step only once ``t`` units have left since the last one (searchsorted jumps)."""
    if risk.size == 0:
        return {"time": [], "at_risk": [], "events": []}
    left = np.concatenate([[0.0], np.cumsum(risk[:-1] - risk[1:])])
    cum_events = np.cumsum(ev)
    keep = [0]
    # One iteration per published step (each needs >= t units gone), not per time.
    while True:
        nxt = int(np.searchsorted(left, left[keep[-1]] + t, side="left"))
        if nxt >= risk.size or risk[nxt] < t:
            break
        keep.append(nxt)
    idx = np.array(keep)
    ev_at = np.diff(np.concatenate([[0.0], cum_events[idx]]))
    return {
        "time": [_jsonable(x) for x in times[idx]],
        "at_risk": risk[idx].tolist(),
        "events": ev_at.tolist(),
    }


__all__ = [
    "BY_ID",
    "CheckedOutput",
    "check_counts",
    "check_figure",
    "check_histogram",
    "check_regression",
    "check_survival",
    "survival_table",
]
