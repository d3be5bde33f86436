"""Per-cell evidence for the rules, computed in one vectorised pass.

A table is a grid of cells; each record falls in one cell (its row code times
the number of columns plus its column code). Everything the rules need is a
``bincount`` or ``maximum.at`` over those codes: no Python loop touches a cell
or a record.

*Units* are what a cell describes: records (ACRO's default) or, with
``persons=``, distinct persons. For tables of values, a unit *contributes*
when it has at least one non-missing value in the cell, and its contribution
is the sum of its values there (dominance is about units, not rows).

>>> g = group([pd.Series(["a", "a", "b"], name="r")], [pd.Series([1, 2, 1], name="c")])
>>> ev = cell_evidence(g, values=np.array([5.0, 1.0, np.nan]))
>>> ev.units.tolist(), ev.n.tolist(), ev.n_missing.tolist()
([[1, 1], [1, 0]], [[1, 1], [0, 0]], [[0, 0], [1, 0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_list_like

from sde.errors import InvalidInput


@dataclass(frozen=True)
class Grouping:
    """Where each record falls: row and column codes (-1 when left out) and the labels."""

    row_codes: np.ndarray
    col_codes: np.ndarray
    row_index: pd.Index
    col_index: pd.Index
    #: Records left out because a label was missing (``dropna=True``, as pandas does).
    n_dropped: int
    #: False for one-way tables (no column variables): a single column, no row totals.
    has_columns: bool = True

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.row_index), len(self.col_index)

    @property
    def kept(self) -> np.ndarray | slice:
        """Selects the records kept (a plain slice when none was left out)."""
        if self.n_dropped == 0:
            return slice(None)
        return (self.row_codes >= 0) & (self.col_codes >= 0)

    @property
    def cell_codes(self) -> np.ndarray:
        """Cell id per record (row-major), -1 for records left out."""
        codes = self.row_codes * len(self.col_index) + self.col_codes
        if self.n_dropped == 0:
            return codes
        return np.where((self.row_codes >= 0) & (self.col_codes >= 0), codes, -1)


def _factorize(keys: Sequence[pd.Series], dropna: bool) -> tuple[np.ndarray, pd.Index]:
    """Codes per record and the sorted labels of the observed combinations of ``keys``."""
    codes_list: list[np.ndarray] = []
    uniques_list: list[pd.Index] = []
    for key in keys:
        codes, uniques = pd.factorize(key, sort=True, use_na_sentinel=dropna)
        codes_list.append(np.asarray(codes, dtype=np.int64))
        uniques_list.append(pd.Index(uniques, name=key.name))
    if len(keys) == 1:
        return codes_list[0], uniques_list[0]
    sizes = [max(len(u), 1) for u in uniques_list]
    combined = np.zeros(len(codes_list[0]), dtype=np.int64)
    missing = np.zeros(len(codes_list[0]), dtype=bool)
    for codes, size in zip(codes_list, sizes, strict=True):
        combined = combined * size + codes
        missing |= codes < 0
    out = np.full(len(combined), -1, dtype=np.int64)
    inner, uniq = pd.factorize(combined[~missing], sort=True)
    out[~missing] = inner
    uniq_arr = np.asarray(uniq, dtype=np.int64)
    levels: list[np.ndarray] = []
    for size in reversed(sizes):
        levels.append(uniq_arr % size)
        uniq_arr = uniq_arr // size
    levels.reverse()
    arrays = [u.take(c) for u, c in zip(uniques_list, levels, strict=True)]
    return out, pd.MultiIndex.from_arrays(arrays, names=[k.name for k in keys])


def as_series_list(keys: Any, prefix: str, length: int | None = None) -> list[pd.Series]:
    """Normalise what pandas accepts as ``index``/``columns`` into a list of named Series."""
    if keys is None:
        return []
    if isinstance(keys, pd.DataFrame):
        items: list[Any] = [keys[c] for c in keys.columns]
    elif isinstance(keys, list | tuple) and all(is_list_like(k) for k in keys):
        items = list(keys)  # a list of arrays (pandas: a nested list-like)
    else:
        items = [keys]
    out: list[pd.Series] = []
    for i, item in enumerate(items):
        series = item if isinstance(item, pd.Series) else pd.Series(np.asarray(item))
        series = series.reset_index(drop=True)
        if series.name is None:
            series = series.rename(f"{prefix}_{i}")
        if length is not None and len(series) != length:
            raise InvalidInput(
                "sdc.input-length",
                f"{series.name} has {len(series)} values but the table has {length} records",
            )
        out.append(series)
    return out


def group(
    index: Sequence[pd.Series], columns: Sequence[pd.Series], dropna: bool = True
) -> Grouping:
    """Assign each record to a cell, with pandas' labelling (sorted, observed, NaN dropped)."""
    if not index:
        raise InvalidInput("sdc.no-index", "a table needs at least one row variable")
    n_records = len(index[0])
    for key in (*index, *columns):
        if len(key) != n_records:
            raise InvalidInput(
                "sdc.input-length", f"{key.name} has {len(key)} values, expected {n_records}"
            )
    row_codes, row_index = _factorize(index, dropna)
    if columns:
        col_codes, col_index = _factorize(columns, dropna)
    else:
        col_codes, col_index = np.zeros(n_records, dtype=np.int64), pd.Index([""])
    dropped = int(np.count_nonzero((row_codes < 0) | (col_codes < 0)))
    if dropped and dropna:
        # Labels seen only on dropped records must not appear (pandas drops them too).
        row_codes, row_index = _compact(row_codes, col_codes, row_index)
        col_codes, col_index = _compact(col_codes, row_codes, col_index)
    return Grouping(row_codes, col_codes, row_index, col_index, dropped, bool(columns))


def _compact(codes: np.ndarray, other: np.ndarray, labels: pd.Index) -> tuple[np.ndarray, pd.Index]:
    keep = (codes >= 0) & (other >= 0)
    used = np.bincount(codes[keep], minlength=len(labels)) > 0
    if used.all():
        return codes, labels
    remap = np.cumsum(used) - 1
    new = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    new = np.where(keep | (codes < 0), new, -1)
    return new.astype(np.int64), labels[used]


@dataclass(frozen=True)
class Evidence:
    """Arrays of the grid's shape; the grid includes margins when ``has_margins``."""

    #: Units in the cell (records or distinct persons), whatever their values.
    units: np.ndarray
    #: Units contributing to the statistic (with a non-missing value; ``units`` for counts).
    n: np.ndarray
    #: Sum of the contributions.
    total: np.ndarray
    #: The largest contributions, descending, shape ``grid + (k,)``; NaN where absent.
    top: np.ndarray
    #: Records with a negative value; records with a missing value.
    n_negative: np.ndarray
    n_missing: np.ndarray
    #: Records with a non-missing value (the denominator of a mean).
    records_n: np.ndarray
    #: Sum of the records' values (equals ``total``).
    records_sum: np.ndarray
    has_values: bool


def top_k(codes: np.ndarray, values: np.ndarray, m: int, k: int) -> np.ndarray:
    """The ``k`` largest values per cell, ties kept (``nlargest(k, keep='all')[:k]``).

    >>> top_k(np.array([0, 0, 0, 1]), np.array([3.0, 5.0, 5.0, 2.0]), 2, 3).tolist()
    [[5.0, 5.0, 3.0], [2.0, nan, nan]]
    """
    out = np.full((m, k), np.nan)
    filled = np.zeros(m, dtype=np.int64)
    cc, vv = codes, values
    for step in range(k):
        if cc.size == 0:
            break
        mx = np.full(m, -np.inf)
        np.maximum.at(mx, cc, vv)
        is_max = vv == mx[cc]
        count = np.bincount(cc[is_max], minlength=m)
        for j in range(k):
            sel = (filled <= j) & (j < filled + count)
            out[sel, j] = mx[sel]
        filled += count
        if step < k - 1:
            cc, vv = cc[~is_max], vv[~is_max]
    return out


def _interior(
    codes: np.ndarray,
    m: int,
    values: np.ndarray | None,
    person_codes: np.ndarray | None,
    k: int,
) -> dict[str, np.ndarray]:
    """Evidence for cells ``0..m-1`` from per-record cell ``codes`` (all >= 0)."""
    records = np.bincount(codes, minlength=m)
    if values is None:
        units = records if person_codes is None else _distinct(codes, person_codes, m)[0]
        zeros = np.zeros(m)
        return {
            "units": units,
            "n": units,
            "total": units.astype(float),
            "top": np.full((m, k), np.nan),
            "n_negative": zeros.astype(np.int64),
            "n_missing": zeros.astype(np.int64),
            "records_n": records,
            "records_sum": zeros,
        }
    missing = np.isnan(values)
    any_missing = bool(missing.any())
    if any_missing:
        ok = ~missing
        v0 = np.where(ok, values, 0.0)
        records_n = np.bincount(codes[ok], minlength=m)
    else:
        ok, v0, records_n = slice(None), values, records
    records_sum = np.bincount(codes, weights=v0, minlength=m)
    negative = values < 0
    n_negative = (
        np.bincount(codes[negative], minlength=m) if negative.any() else np.zeros(m, np.int64)
    )
    n_missing = records - records_n
    if person_codes is None:
        units, n = records, records_n
        top = top_k(codes[ok], values[ok], m, k)
    else:
        units, pair_cell, pair_of_record = _distinct(codes, person_codes, m)
        n_pairs = len(pair_cell)
        pair_ok = np.bincount(pair_of_record[ok], minlength=n_pairs) > 0
        contrib = np.bincount(pair_of_record, weights=v0, minlength=n_pairs)
        n = np.bincount(pair_cell[pair_ok], minlength=m)
        top = top_k(pair_cell[pair_ok], contrib[pair_ok], m, k)
    return {
        "units": units,
        "n": n,
        "total": records_sum,
        "top": top,
        "n_negative": n_negative,
        "n_missing": n_missing,
        "records_n": records_n,
        "records_sum": records_sum,
    }


def _distinct(
    codes: np.ndarray, person_codes: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct persons per cell, the cell of each (cell, person) pair, each record's pair."""
    n_persons = int(person_codes.max()) + 1 if person_codes.size else 1
    pair = codes * n_persons + person_codes
    pair_of_record, uniq = pd.factorize(pair)
    pair_cell = np.asarray(uniq, dtype=np.int64) // n_persons
    return np.bincount(pair_cell, minlength=m), pair_cell, np.asarray(pair_of_record)


def person_codes_of(persons: Any, n_records: int) -> np.ndarray:
    """Integer codes for the ``persons=`` argument (missing person ids are refused)."""
    series = persons if isinstance(persons, pd.Series) else pd.Series(np.asarray(persons))
    if len(series) != n_records:
        raise InvalidInput(
            "sdc.input-length", f"persons has {len(series)} values, expected {n_records}"
        )
    codes, _ = pd.factorize(series)
    codes = np.asarray(codes, dtype=np.int64)
    if (codes < 0).any():
        raise InvalidInput("sdc.persons-missing", "persons= has missing person ids")
    return codes


def cell_evidence(
    grouping: Grouping,
    values: np.ndarray | None = None,
    person_codes: np.ndarray | None = None,
    k: int = 2,
    margins: bool = False,
) -> Evidence:
    """Evidence for the table's cells, and for its margins when ``margins`` is set.

    With margins the grid gains a last row (column totals) and, when the table
    has column variables, a last column (row totals).
    """
    rows, cols = grouping.shape
    kept = grouping.kept
    codes = grouping.cell_codes[kept]
    vals = None if values is None else np.asarray(values, dtype=float)[kept]
    persons = None if person_codes is None else person_codes[kept]
    k = max(k, 2)
    inner = {
        name: arr.reshape((rows, cols, *arr.shape[1:]))
        for name, arr in _interior(codes, rows * cols, vals, persons, k).items()
    }
    if not margins:
        return Evidence(**inner, has_values=values is not None)
    with_row_totals = grouping.has_columns
    if persons is None:
        grid = _merge_margins(inner, with_row_totals, k)
    else:
        rc = grouping.row_codes[kept]
        cc = grouping.col_codes[kept]
        by_row = _interior(rc, rows, vals, persons, k)
        by_col = _interior(cc, cols, vals, persons, k)
        overall = _interior(np.zeros(len(codes), dtype=np.int64), 1, vals, persons, k)
        grid = {}
        for name, arr in inner.items():
            col_margin = by_col[name][None, ...]
            block = np.concatenate([arr, col_margin], axis=0)
            if with_row_totals:
                right = np.concatenate([by_row[name], overall[name]], axis=0)[:, None, ...]
                block = np.concatenate([block, right], axis=1)
            grid[name] = block
    return Evidence(**grid, has_values=values is not None)


def _merge_margins(inner: dict[str, np.ndarray], with_row_totals: bool, k: int) -> dict[str, Any]:
    """Margins from cells when units are records: sums add up, top-k merge."""
    grid: dict[str, Any] = {}
    for name, arr in inner.items():
        if name == "top":
            continue
        block = np.concatenate([arr, arr.sum(axis=0, keepdims=True)], axis=0)
        if with_row_totals:
            block = np.concatenate([block, block.sum(axis=1, keepdims=True)], axis=1)
        grid[name] = block
    top = inner["top"]
    rows, cols = top.shape[:2]

    def merged(stack: np.ndarray) -> np.ndarray:
        # stack: (..., many) candidate values with NaN for absent; keep the k largest.
        filled = np.where(np.isnan(stack), -np.inf, stack)
        best = -np.sort(-filled, axis=-1)[..., :k]
        return np.where(np.isinf(best) & (best < 0), np.nan, best)

    col_margin = merged(top.transpose(1, 0, 2).reshape(cols, rows * k))[None, ...]
    block = np.concatenate([top, col_margin], axis=0)
    if with_row_totals:
        row_margin = merged(top.reshape(rows, cols * k))
        overall = merged(top.reshape(1, rows * cols * k))
        right = np.concatenate([row_margin, overall], axis=0)[:, None, :]
        block = np.concatenate([block, right], axis=1)
    grid["top"] = block
    return grid
