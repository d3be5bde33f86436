"""``crosstab`` and ``pivot_table``: pandas' tables, checked and protected.

Both compute the table from the same cell codes as the evidence (one pass over
the records), apply the rules for each statistic (:data:`sde.sdc.rules.APPLIES`),
check the differencing ledger when one is given, and protect the table
(suppression by default, or a rounding policy).

>>> import pandas as pd
>>> df = pd.DataFrame({"sex": ["F"] * 25 + ["M"] * 14,
...                    "ward": ["A"] * 12 + ["B"] * 13 + ["A"] * 5 + ["B"] * 9})
>>> t = crosstab(df.sex, df.ward)
>>> t.status, t.flags.loc["M", "A"], int(t.table.loc["M", "A"])
('fail', ('threshold',), 5)
>>> t.safe.isna().sum().sum()   # the 5, and the cells that would give it away
np.int64(4)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from sde.errors import InvalidInput
from sde.sdc import rounding, statistics
from sde.sdc.checked import CheckedTable, ReleaseSpec, Status
from sde.sdc.config import SDCConfig, as_config
from sde.sdc.differencing import (
    Between,
    Cell,
    Constraint,
    DifferencingLedger,
    Finding,
    In,
    NotNull,
)
from sde.sdc.evidence import (
    Evidence,
    Grouping,
    as_series_list,
    cell_evidence,
    group,
    person_codes_of,
)
from sde.sdc.report import table_report
from sde.sdc.rules import AUDIT_RULE, BY_ID, EMPTY_RULE, LEDGER_RULE, RULES, rules_for
from sde.sdc.suppress_table import Layout, suppress

_RULE_BIT = {rule.id: 1 << i for i, rule in enumerate(RULES)}


def crosstab(
    index: Any,
    columns: Any = None,
    values: Any = None,
    rownames: Sequence[str] | None = None,
    colnames: Sequence[str] | None = None,
    aggfunc: Any = None,
    margins: bool = False,
    margins_name: str = "All",
    dropna: bool = True,
    *,
    persons: Any = None,
    rules: SDCConfig | Mapping[str, Any] | None = None,
    protection: str | rounding.RoundingPolicy = "suppress",
    ledger: DifferencingLedger | None = None,
    population: str = "default",
    filters: Mapping[str, Any] | None = None,
) -> CheckedTable:
    """A checked ``pandas.crosstab``: counts, or ``aggfunc`` of ``values``, per cell.

    ``persons`` (ids aligned with the records) makes cells count distinct
    persons; ``rules`` overrides rule parameters; ``protection`` is
    ``"suppress"`` (primary and secondary suppression), ``"none"``, or a
    rounding policy (frequency tables only). With a ``ledger``, cells are also
    checked for differencing against the project's earlier releases over the
    same ``population`` (``filters`` describes restrictions applied to the data
    before tabulating, e.g. ``{"year": Between(2015, 2020)}``).
    """
    if (values is None) != (aggfunc is None):
        raise InvalidInput("sdc.aggfunc", "values and aggfunc go together: give both or neither")
    idx = as_series_list(index, "row")
    n = len(idx[0]) if idx else 0
    cols = as_series_list(columns, "col", n)
    if rownames is not None:
        idx = [s.rename(name) for s, name in zip(idx, rownames, strict=True)]
    if colnames is not None:
        cols = [s.rename(name) for s, name in zip(cols, colnames, strict=True)]
    vals = None if values is None else _numeric(values, n)
    aggs = _aggfuncs(aggfunc)
    one_way_label = aggs[0] if aggs[0] is not None and len(aggs) == 1 else "count"
    return _check(
        TableRequest(
            method="crosstab",
            idx=idx,
            cols=cols,
            vals=vals,
            aggs=aggs,
            margins=margins,
            margins_name=margins_name,
            dropna=dropna,
            persons=persons,
            cfg=as_config(rules),
            protection=protection,
            ledger=ledger,
            population=population,
            filters=filters,
            one_way_label=str(getattr(values, "name", None) or one_way_label),
            list_aggfunc=isinstance(aggfunc, list | tuple),
        )
    )


def pivot_table(
    data: pd.DataFrame,
    values: Any = None,
    index: Any = None,
    columns: Any = None,
    aggfunc: Any = "mean",
    margins: bool = False,
    margins_name: str = "All",
    dropna: bool = True,
    *,
    persons: Any = None,
    rules: SDCConfig | Mapping[str, Any] | None = None,
    protection: str | rounding.RoundingPolicy = "suppress",
    ledger: DifferencingLedger | None = None,
    population: str = "default",
    filters: Mapping[str, Any] | None = None,
) -> CheckedTable:
    """A checked ``pandas.pivot_table`` of one ``values`` column (arguments as pandas').

    ``index``/``columns`` name columns of ``data`` (or give arrays); ``persons``
    may name a column. See :func:`crosstab` for the checking arguments.
    """
    if values is None:
        raise InvalidInput("sdc.values", "pivot_table needs values= (the column to summarise)")
    if isinstance(values, list | tuple):
        if len(values) != 1:
            raise InvalidInput("sdc.values", "pivot_table checks one values column at a time")
        values = values[0]
    if values not in data.columns:
        raise InvalidInput("sdc.values", f"no column {values!r} in the data")
    if index is None:
        raise InvalidInput("sdc.no-index", "pivot_table needs index=")
    n = len(data)
    idx = as_series_list(_columns_of(data, index), "row", n)
    cols = as_series_list(_columns_of(data, columns), "col", n)
    if isinstance(persons, str):
        persons = data[persons]
    vals = _numeric(data[values], n)
    aggs = _aggfuncs(aggfunc)
    return _check(
        TableRequest(
            method="pivot_table",
            idx=idx,
            cols=cols,
            vals=vals,
            aggs=aggs,
            margins=margins,
            margins_name=margins_name,
            dropna=dropna,
            persons=persons,
            cfg=as_config(rules),
            protection=protection,
            ledger=ledger,
            population=population,
            filters=filters,
            one_way_label=str(values),
            list_aggfunc=isinstance(aggfunc, list | tuple),
        )
    )


def _columns_of(data: pd.DataFrame, keys: Any) -> Any:
    if keys is None:
        return None
    items = keys if isinstance(keys, list | tuple) else [keys]
    return [data[k] if isinstance(k, str) else k for k in items]


def _numeric(values: Any, n: int) -> np.ndarray:
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if len(series) != n:
        raise InvalidInput("sdc.input-length", f"values has {len(series)} entries, expected {n}")
    try:
        return np.asarray(pd.to_numeric(series), dtype=float)
    except (TypeError, ValueError) as err:
        raise InvalidInput("sdc.values-numeric", "values must be numeric") from err


def _aggfuncs(aggfunc: Any) -> list[str | None]:
    items = list(aggfunc) if isinstance(aggfunc, list | tuple) else [aggfunc]
    if not items:
        raise InvalidInput("sdc.aggfunc", "aggfunc list is empty")
    return [statistics.normalise_aggfunc(a) for a in items]


def _labels(index: pd.Index, margins: bool, margins_name: str) -> pd.Index:
    if not margins:
        return index
    if isinstance(index, pd.MultiIndex):
        label: Any = (margins_name,) + ("",) * (index.nlevels - 1)
        return index.append(pd.MultiIndex.from_tuples([label], names=index.names))
    return index.astype(object).insert(len(index), margins_name)


def _flag_frames(
    masks: dict[str, np.ndarray], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Bit-encoded flags and the object array of rule-id tuples (built per distinct bit set)."""
    bits = np.zeros(shape, dtype=np.int64)
    for rule_id, mask in masks.items():
        bits |= np.where(mask, _RULE_BIT[rule_id], 0)
    uniq, inverse = np.unique(bits, return_inverse=True)
    lookup = np.empty(len(uniq), dtype=object)
    for i, u in enumerate(uniq):
        lookup[i] = tuple(rule.id for rule in RULES if u & _RULE_BIT[rule.id])
    return bits, lookup[inverse.reshape(shape)]


def _positions_mask(findings: Sequence[Finding | Cell], shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for f in findings:
        if f.position is not None:
            mask[f.position] = True
    return mask


def _status(masks: dict[str, np.ndarray]) -> Status:
    severities = {BY_ID[r].severity for r, m in masks.items() if m.any()}
    if "fail" in severities:
        return "fail"
    return "review" if "review" in severities else "pass"


@dataclass(frozen=True)
class TableRequest:
    """What ``crosstab``/``pivot_table`` were asked, normalised: one table to check."""

    method: str
    idx: list[pd.Series]
    cols: list[pd.Series]
    vals: np.ndarray | None
    aggs: list[str | None]
    margins: bool
    margins_name: str
    dropna: bool
    persons: Any
    cfg: SDCConfig
    protection: str | rounding.RoundingPolicy
    ledger: DifferencingLedger | None
    population: str
    filters: Mapping[str, Any] | None
    one_way_label: str
    list_aggfunc: bool

    @property
    def units(self) -> str:
        return "records" if self.persons is None else "persons"


@dataclass(frozen=True)
class _Tabulated:
    """The records grouped into cells, the cells' evidence and the table's labels."""

    grouping: Grouping
    ev: Evidence
    rows: pd.Index
    cols: pd.Index

    @property
    def shape(self) -> tuple[int, int]:
        return self.ev.n.shape

    def cells(self, req: TableRequest, hidden: np.ndarray) -> list[Cell]:
        return _cells(
            grouping=self.grouping,
            ev=self.ev,
            row_labels=self.rows,
            col_labels=self.cols,
            margins=req.margins,
            dropna=req.dropna,
            filters=req.filters,
            hidden=hidden,
        )


def _tabulate(req: TableRequest, grouping: Grouping) -> _Tabulated:
    n_records = len(req.idx[0])
    person_codes = None if req.persons is None else person_codes_of(req.persons, n_records)
    ev = cell_evidence(grouping, req.vals, person_codes, k=req.cfg.nk_n, margins=req.margins)
    rows = _labels(grouping.row_index, req.margins, req.margins_name)
    if grouping.has_columns:
        cols = _labels(grouping.col_index, req.margins, req.margins_name)
    else:
        cols = pd.Index([req.one_way_label])
    return _Tabulated(grouping, ev, rows, cols)


def _ledger_check(req: TableRequest, tab: _Tabulated) -> tuple[list[Finding], np.ndarray | None]:
    """Differencing findings against earlier releases, and the cells they already published."""
    if req.ledger is None:
        return [], None
    spec_cells = tab.cells(req, np.zeros(tab.shape, dtype=bool))
    findings = req.ledger.check(spec_cells, req.population, req.units, req.cfg.threshold)
    known = _positions_mask(req.ledger.known(spec_cells, req.population), tab.shape)
    return findings, known


def _union(per_agg: list[dict[str, np.ndarray]], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    union: dict[str, np.ndarray] = {}
    for masks in per_agg:
        for rule_id, mask in masks.items():
            union[rule_id] = union.get(rule_id, np.zeros(shape, dtype=bool)) | mask
    return union


def _failing(union: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    failing = np.zeros(shape, dtype=bool)
    for rule_id, mask in union.items():
        if BY_ID[rule_id].severity == "fail":
            failing |= mask
    return failing


def _audit_flags(
    per_agg: list[dict[str, np.ndarray]], audit: dict[str, Any] | None, shape: tuple[int, int]
) -> None:
    """Flag the hidden cells the audit could not protect (rule ``unprotected``)."""
    if not audit or not audit.get("unprotected"):
        return
    mask = np.zeros(shape, dtype=bool)
    for i, j in audit["unprotected"]:
        mask[i, j] = True
    for masks in per_agg:
        masks[AUDIT_RULE] = mask


def _check(req: TableRequest) -> CheckedTable:
    grouping = group(req.idx, req.cols, req.dropna)
    if grouping.shape[0] == 0 or (grouping.has_columns and grouping.shape[1] == 0):
        return _empty(req, grouping)
    tab = _tabulate(req, grouping)
    shape = tab.shape
    per_agg = [
        {r.id: r.check(tab.ev, req.cfg) for r in rules_for(agg) if r.check is not None}
        for agg in req.aggs
    ]
    findings, known = _ledger_check(req, tab)
    if req.ledger is not None:
        diff_mask = _positions_mask(findings, shape)
        for masks in per_agg:
            masks[LEDGER_RULE] = diff_mask
    stat_grids = [
        statistics.compute(a, tab.grouping, tab.ev, req.vals, req.margins) for a in req.aggs
    ]
    failing = _failing(_union(per_agg, shape), shape)
    protected = _protect(
        protection=req.protection,
        aggs=req.aggs,
        stat_grids=stat_grids,
        failing=failing,
        ev=tab.ev,
        grouping=tab.grouping,
        margins=req.margins,
        shape=shape,
        cfg=req.cfg,
        known=known,
    )
    method_name, hidden_grid, published, audit = protected
    _audit_flags(per_agg, audit, shape)
    union = _union(per_agg, shape)
    report = table_report(
        method=req.method,
        aggs=req.aggs,
        status=_status(union),
        per_agg=per_agg,
        block_width=shape[1],
        cfg=req.cfg,
        units=req.units,
        protection=method_name,
        failing=failing,
        hidden=hidden_grid,
        findings=[f.to_dict() for f in findings],
        audit=audit,
        dropped=tab.grouping.n_dropped,
        margins=req.margins,
        dims=_dims(req),
    )
    flag_grids = [_flag_frames(m, shape)[1] for m in per_agg]
    return _checked_table(req, tab, (stat_grids, flag_grids, published, hidden_grid), report)


def _dims(req: TableRequest) -> dict[str, list[str]]:
    return {"index": [str(s.name) for s in req.idx], "columns": [str(s.name) for s in req.cols]}


def _checked_table(
    req: TableRequest,
    tab: _Tabulated,
    grids: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray],
    report: dict[str, Any],
) -> CheckedTable:
    """Assemble the frames (one block per statistic when ``aggfunc`` was a list)."""
    stat_grids, flag_grids, published, hidden_grid = grids

    def assemble(blocks: list[np.ndarray]) -> pd.DataFrame:
        frames = [pd.DataFrame(g, index=tab.rows, columns=tab.cols) for g in blocks]
        if not req.list_aggfunc:
            return frames[0]
        keys = [a if a is not None else "count" for a in req.aggs]
        return pd.concat(dict(zip(keys, frames, strict=True)), axis=1)

    hidden = assemble([hidden_grid] * len(req.aggs)).astype(bool)
    release = partial(_release_spec, req, tab, hidden_grid)
    return CheckedTable(
        assemble(stat_grids),
        assemble(flag_grids),
        report["status"],
        assemble(published),
        report,
        hidden,
        release,
    )


def _release_spec(req: TableRequest, tab: _Tabulated, hidden: np.ndarray) -> ReleaseSpec:
    return ReleaseSpec(req.population, req.units, tab.cells(req, hidden))


def _empty(req: TableRequest, grouping: Grouping) -> CheckedTable:
    """A table with no cells: reported (rule ``empty``, status ``fail``), never approved."""
    shape = (0, 0)
    nothing = np.zeros(shape, dtype=bool)
    report = table_report(
        method=req.method,
        aggs=req.aggs,
        status="fail",
        per_agg=[{} for _ in req.aggs],
        block_width=shape[1],
        cfg=req.cfg,
        units=req.units,
        protection="none",
        failing=nothing,
        hidden=nothing,
        findings=[],
        dropped=grouping.n_dropped,
        margins=req.margins,
        dims=_dims(req),
    )
    rule = BY_ID[EMPTY_RULE]
    report["rules"][EMPTY_RULE] = {
        "status": rule.severity,
        "acro_check": rule.acro_check,
        "count": 0,
        "cells": [],
        "explanation": rule.explanation,
    }
    report["summary"] = f"fail; {EMPTY_RULE}: the table has no cells"
    rows = grouping.row_index[:0]
    cols = grouping.col_index[:0] if grouping.has_columns else pd.Index([])
    frame = pd.DataFrame(np.zeros((0, 0)), index=rows, columns=cols)
    release = partial(ReleaseSpec, req.population, req.units, [])
    return CheckedTable(
        frame, frame.astype(object), "fail", frame, report, frame.astype(bool), release
    )


def _protect(
    *,
    protection: str | rounding.RoundingPolicy,
    aggs: list[str | None],
    stat_grids: list[np.ndarray],
    failing: np.ndarray,
    ev: Evidence,
    grouping: Grouping,
    margins: bool,
    shape: tuple[int, int],
    cfg: SDCConfig,
    known: np.ndarray | None,
) -> tuple[str, np.ndarray, list[np.ndarray], dict[str, Any] | None]:
    """The protection method's name, the hidden cells, the published grids, the audit."""
    if protection == "none":
        return "none", np.zeros(shape, dtype=bool), [g.astype(float) for g in stat_grids], None
    if protection == "suppress":
        rows, cols = grouping.shape
        layout = Layout(rows, cols, grouping.has_columns, margins)
        hidden, audit = suppress(
            ev=ev, aggs=aggs, failing=failing, layout=layout, cfg=cfg, known=known
        )
        if margins:
            extremes = [g for a, g in zip(aggs, stat_grids, strict=True) if a in EXTREMES]
            hidden = hide_unattained_margins(hidden, extremes, grouping.has_columns)
        published = [np.where(hidden, np.nan, g.astype(float)) for g in stat_grids]
        return "suppression", hidden, published, audit
    policy = rounding.policy_named(protection) if isinstance(protection, str) else protection
    if any(a not in (None, "count") for a in aggs):
        raise InvalidInput(
            "sdc.rounding-counts-only",
            "rounding protects frequency tables; use protection='suppress' for other statistics",
        )
    published = [
        rounding.round_grid(g.astype(float), policy, margins, margins and grouping.has_columns)
        for g in stat_grids
    ]
    hidden = np.isnan(published[0]) & ~np.isnan(stat_grids[0].astype(float))
    return policy.name, hidden, published, None


#: Statistics whose margin is one of its line's cells' values (the line's extreme).
EXTREMES = frozenset({"min", "max"})


def hide_unattained_margins(
    hidden: np.ndarray, grids: Sequence[np.ndarray], has_row_totals: bool
) -> np.ndarray:
    """Hide each margin of a min/max table that no published cell of its line attains.

    A row's max is the max of its cells: when no published cell equals it, a
    hidden cell does, and the other margins often say which (a hidden cell
    whose column max is lower cannot hold it). Such a margin is hidden, then
    the grand total is checked against what is still published; repeat.

    >>> g = np.array([[9.0, 2.0, 9.0], [1.0, 3.0, 3.0], [9.0, 3.0, 9.0]])
    >>> h = np.zeros((3, 3), dtype=bool); h[0, 0] = h[0, 1] = True
    >>> hide_unattained_margins(h, [g], True).astype(int).tolist()
    [[1, 1, 1], [0, 0, 0], [1, 0, 1]]
    """
    if not grids:
        return hidden
    out = hidden.copy()
    last_row = out.shape[0] - 1
    cols = out.shape[1] - int(has_row_totals)
    lines = [((last_row, j), np.arange(last_row), np.full(last_row, j)) for j in range(cols)]
    if has_row_totals:
        lines += [((i, cols), np.full(cols, i), np.arange(cols)) for i in range(last_row)]
        rest = np.argwhere(np.ones(out.shape, dtype=bool))[:-1]  # all but the grand total
        lines.append(((last_row, cols), rest[:, 0], rest[:, 1]))
    changed = True
    while changed:
        changed = False
        for grid in grids:
            for cell, rows, columns in lines:
                if out[cell] or np.isnan(grid[cell]):
                    continue
                shown = ~out[rows, columns]
                if not (grid[rows, columns][shown] == grid[cell]).any():
                    out[cell] = True
                    changed = True
    return out


def _cells(
    *,
    grouping: Grouping,
    ev: Evidence,
    row_labels: pd.Index,
    col_labels: pd.Index,
    margins: bool,
    dropna: bool,
    filters: Mapping[str, Any] | None,
    hidden: np.ndarray,
) -> list[Cell]:
    """The grid's cells as the ledger describes them (built per row and column, then paired)."""
    base = {k: _constraint(v) for k, v in (filters or {}).items()}
    margin_constraint: Constraint | None = NotNull() if dropna else None

    def describe(index: pd.Index, count: int, names: list[str]) -> list[dict[str, Constraint]]:
        out: list[dict[str, Constraint]] = []
        for pos in range(len(index)):
            if pos >= count:  # the margin
                out.append({n: margin_constraint for n in names if margin_constraint})
                continue
            label = index[pos]
            parts = label if isinstance(index, pd.MultiIndex) else (label,)
            out.append({n: In([p]) for n, p in zip(names, parts, strict=True)})
        return out

    rows, cols = grouping.shape
    row_names = [str(n) for n in grouping.row_index.names]
    row_desc = describe(row_labels, rows, row_names)
    if grouping.has_columns:
        col_names = [str(n) for n in grouping.col_index.names]
        col_desc = describe(col_labels, cols, col_names)
    else:
        col_desc = [{}]
    counts = ev.n
    return [
        Cell(
            {**base, **row_desc[i], **col_desc[j]},
            int(counts[i, j]),
            not bool(hidden[i, j]),
            (i, j),
        )
        for i in range(len(row_desc))
        for j in range(len(col_desc))
    ]


def _constraint(value: Any) -> Constraint:
    if isinstance(value, In | Between | NotNull):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return Between(*value)
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return In([value])
    return In(value)
