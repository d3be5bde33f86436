"""The statistic in each cell, as pandas would compute it, from the same cell codes.

Counts, sums and means come straight from the evidence (``bincount``); the
other statistics use one pandas ``groupby`` over the cell codes. Margins are
computed over all the records of a row, a column or the table (a margin mean
is the mean of the records, not of the cell means), as pandas does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sde.errors import InvalidInput
from sde.sdc.evidence import Evidence, Grouping

#: The statistics a checked table can hold (aggfunc names, as pandas spells them).
SUPPORTED: tuple[str, ...] = ("count", "sum", "mean", "median", "min", "max", "mode", "std", "var")


def normalise_aggfunc(aggfunc: object) -> str | None:
    """An aggfunc as one of :data:`SUPPORTED` (numpy functions accepted by name)."""
    if aggfunc is None:
        return None
    name = aggfunc if isinstance(aggfunc, str) else getattr(aggfunc, "__name__", None)
    aliases = {"nansum": "sum", "nanmean": "mean", "nanmedian": "median", "amin": "min"}
    name = aliases.get(str(name), name)
    if name not in SUPPORTED:
        raise InvalidInput(
            "sdc.aggfunc",
            f"aggfunc {aggfunc!r} is not supported; use one of {', '.join(SUPPORTED)}",
        )
    return str(name)


def _grouped(codes: np.ndarray, values: np.ndarray, m: int, how: str) -> np.ndarray:
    ok = ~np.isnan(values)
    codes, values = codes[ok], values[ok]
    if how == "mode":
        counts = pd.DataFrame({"c": codes, "v": values}).value_counts().reset_index()
        counts = counts.sort_values(["c", "count", "v"], ascending=[True, False, True])
        first = counts.drop_duplicates("c")
        out = np.full(m, np.nan)
        out[first["c"].to_numpy()] = first["v"].to_numpy()
        return out
    series = pd.Series(values).groupby(codes).agg(how)
    out = np.full(m, np.nan)
    out[series.index.to_numpy()] = series.to_numpy()
    return out


def compute(
    aggfunc: str | None,
    grouping: Grouping,
    evidence: Evidence,
    values: np.ndarray | None,
    margins: bool,
) -> np.ndarray:
    """The grid of statistics (with margins when ``margins``), float or int."""
    if aggfunc is None:
        return np.asarray(evidence.units, dtype=np.int64)
    if aggfunc == "count":
        return np.asarray(evidence.n, dtype=float)
    empty = evidence.records_n == 0
    if aggfunc == "sum":
        return np.where(empty, np.nan, evidence.records_sum)
    if aggfunc == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(empty, np.nan, evidence.records_sum / evidence.records_n)
    if values is None:
        raise InvalidInput("sdc.values", f"aggfunc {aggfunc!r} needs values")
    rows, cols = grouping.shape
    kept = grouping.kept
    vals = np.asarray(values, dtype=float)[kept]
    grid = _grouped(grouping.cell_codes[kept], vals, rows * cols, aggfunc).reshape(rows, cols)
    if not margins:
        return grid
    by_col = _grouped(grouping.col_codes[kept], vals, cols, aggfunc)
    grid = np.concatenate([grid, by_col[None, :]], axis=0)
    if grouping.has_columns:
        by_row = _grouped(grouping.row_codes[kept], vals, rows, aggfunc)
        overall = _grouped(np.zeros(len(vals), dtype=np.int64), vals, 1, aggfunc)
        grid = np.concatenate([grid, np.concatenate([by_row, overall])[:, None]], axis=1)
    return grid
