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
from sde.sdc.rules import BY_ID, LEDGER_RULE, RULES, rules_for
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


def _check(
    *,
    method: str,
    idx: list[pd.Series],
    cols: list[pd.Series],
    vals: np.ndarray | None,
    aggs: list[str | None],
    margins: bool,
    margins_name: str,
    dropna: bool,
    persons: Any,
    cfg: SDCConfig,
    protection: str | rounding.RoundingPolicy,
    ledger: DifferencingLedger | None,
    population: str,
    filters: Mapping[str, Any] | None,
    one_way_label: str,
    list_aggfunc: bool,
) -> CheckedTable:
    grouping = group(idx, cols, dropna)
    n_records = len(idx[0])
    person_codes = None if persons is None else person_codes_of(persons, n_records)
    units_name = "records" if persons is None else "persons"
    ev = cell_evidence(grouping, vals, person_codes, k=cfg.nk_n, margins=margins)
    shape = ev.n.shape
    row_labels = _labels(grouping.row_index, margins, margins_name)
    if grouping.has_columns:
        col_labels = _labels(grouping.col_index, margins, margins_name)
    else:
        col_labels = pd.Index([one_way_label])

    per_agg = [
        {r.id: r.check(ev, cfg) for r in rules_for(agg) if r.check is not None} for agg in aggs
    ]

    def release() -> ReleaseSpec:
        return ReleaseSpec(
            population,
            units_name,
            _cells(
                grouping=grouping,
                ev=ev,
                row_labels=row_labels,
                col_labels=col_labels,
                margins=margins,
                dropna=dropna,
                filters=filters,
                hidden=hidden_grid,
            ),
        )

    findings: list[Finding] = []
    known: np.ndarray | None = None
    if ledger is not None:
        spec_cells = _cells(
            grouping=grouping,
            ev=ev,
            row_labels=row_labels,
            col_labels=col_labels,
            margins=margins,
            dropna=dropna,
            filters=filters,
            hidden=np.zeros(shape, dtype=bool),
        )
        findings = ledger.check(spec_cells, population, units_name, cfg.threshold)
        known = _positions_mask(ledger.known(spec_cells, population), shape)
        diff_mask = _positions_mask(findings, shape)
        for masks in per_agg:
            masks[LEDGER_RULE] = diff_mask

    union: dict[str, np.ndarray] = {}
    for masks in per_agg:
        for rule_id, mask in masks.items():
            union[rule_id] = union.get(rule_id, np.zeros(shape, dtype=bool)) | mask
    status = _status(union)

    # Statistics and frames.
    stat_grids = [statistics.compute(a, grouping, ev, vals, margins) for a in aggs]
    flag_grids = [_flag_frames(m, shape)[1] for m in per_agg]

    # Protection.
    failing = np.zeros(shape, dtype=bool)
    for rule_id, mask in union.items():
        if BY_ID[rule_id].severity == "fail":
            failing |= mask
    method_name, hidden_grid, published, audit = _protect(
        protection=protection,
        aggs=aggs,
        stat_grids=stat_grids,
        failing=failing,
        ev=ev,
        grouping=grouping,
        margins=margins,
        shape=shape,
        cfg=cfg,
        known=known,
    )

    def frame(grid: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(grid, index=row_labels, columns=col_labels)

    def assemble(grids: list[np.ndarray]) -> pd.DataFrame:
        frames = [frame(g) for g in grids]
        if not list_aggfunc:
            return frames[0]
        keys = [a if a is not None else "count" for a in aggs]
        return pd.concat(dict(zip(keys, frames, strict=True)), axis=1)

    table = assemble(stat_grids)
    flags = assemble(flag_grids)
    safe = assemble(published)
    hidden = assemble([hidden_grid] * len(aggs)).astype(bool)
    report = table_report(
        method=method,
        aggs=aggs,
        status=status,
        per_agg=per_agg,
        block_width=shape[1],
        cfg=cfg,
        units=units_name,
        protection=method_name,
        failing=failing,
        hidden=hidden_grid,
        findings=[f.to_dict() for f in findings],
        audit=audit,
        dropped=grouping.n_dropped,
        margins=margins,
        dims={
            "index": [str(s.name) for s in idx],
            "columns": [str(s.name) for s in cols],
        },
    )
    return CheckedTable(table, flags, status, safe, report, hidden, release)


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
