"""Differencing against the tables the project released before."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from airlock.checks.base import MAX_DIFFERENCING_PAIRS, MAX_LISTED, Flag
from airlock.checks.identifiers import snake
from airlock.checks.tables import Table
from sde.sdc.config import SDCConfig
from sde.sdc.differencing import Cell, In, find_differences

_TOTAL_LABELS = frozenset({"total", "all", "overall", "any"})
_MEASURE = "__measure__"
_LONG_FIELDS = ("_count", "_row", "_col")


def _label_columns(table: Table) -> list[int]:
    return [j for j, c in enumerate(table.frame.columns) if table.roles[str(c)] == "label"]


def _cells(table: Table) -> list[Cell]:
    """Each count cell described by its row's labels and its column (the measure)."""
    labels = _label_columns(table)
    rows = table.frame.iloc[:, labels].astype(object).to_numpy() if labels else None
    names = [str(table.frame.columns[j]) for j in labels]
    cells = []
    for j, values in table.counts.items():
        measure = In({str(table.frame.columns[j])})
        for i in np.flatnonzero(np.isfinite(values)):
            constraints: dict[str, Any] = {_MEASURE: measure}
            if rows is not None:
                for name, label in zip(names, rows[i], strict=True):
                    if str(label).strip().casefold() not in _TOTAL_LABELS:
                        constraints[name] = In({"nan" if pd.isna(label) else label})
            cells.append(Cell(constraints, round(float(values[i])), position=(int(i), j)))
    return cells


#: Cells of released tables already built (kept with their table, so ids are not reused).
_CELLS: dict[int, tuple[Table, list[Cell]]] = {}


def _cells_of(released: Table) -> list[Cell]:
    """``_cells`` of a released table, built once (the tables themselves are cached)."""
    if id(released) not in _CELLS:
        if len(_CELLS) >= 64:
            _CELLS.pop(next(iter(_CELLS)))
        _CELLS[id(released)] = (released, _cells(released))
    return _CELLS[id(released)][1]


def _long(table: Table) -> pd.DataFrame:
    """Counts in long form keyed by normalised labels (the large-table comparison)."""
    labels = _label_columns(table)
    keys = {
        snake(table.frame.columns[j]): table.frame.iloc[:, j]
        .astype(str)
        .str.strip()
        .str.casefold()
        .str.replace(r"\.0$", "", regex=True)
        for j in labels
    }
    parts = []
    for j, values in table.counts.items():
        part = pd.DataFrame(keys)
        part[_MEASURE] = snake(table.frame.columns[j])
        part["_count"] = values
        part["_row"] = np.arange(len(values))
        part["_col"] = j
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def differencing(
    table: Table, earlier: Sequence[tuple[str, Table]], rules: SDCConfig
) -> tuple[list[Flag], list[dict[str, Any]], list[str]]:
    flags: list[Flag] = []
    findings: list[dict[str, Any]] = []
    notes: list[str] = []
    if not table.counts or not earlier:
        return flags, findings, notes
    new_size = sum(int(np.isfinite(v).sum()) for v in table.counts.values())
    for release, old in earlier:
        if not old.counts:
            continue
        old_size = sum(int(np.isfinite(v).sum()) for v in old.counts.values())
        pairs: list[tuple[int, int, int, tuple[int, int] | None]] = []
        if new_size * old_size <= MAX_DIFFERENCING_PAIRS:
            for f in find_differences(_cells(table), [(release, _cells_of(old))], rules.threshold):
                if f.position is not None:
                    pairs.append((*f.position, f.difference, f.earlier_position))
        else:
            notes.append(
                f"differencing against {release!r} compared identical categories only "
                f"({new_size} x {old_size} cells is too many for nested groups)"
            )
            a, b = _long(table), _long(old)
            keys = [c for c in a.columns if c not in _LONG_FIELDS]
            same = set(keys) == {c for c in b.columns if c not in _LONG_FIELDS}
            unique = same and not (a.duplicated(keys).any() or b.duplicated(keys).any())
            if not unique:
                notes.append(f"not compared with {release!r}: its categories differ or repeat")
            else:
                both = a.merge(b, on=keys, suffixes=("", "_old"))
                diff = (both["_count"] - both["_count_old"]).abs()
                risky = both[(diff > 0) & (diff < rules.threshold)]
                for row in risky.to_dict("records"):
                    pairs.append(
                        (
                            int(row["_row"]),
                            int(row["_col"]),
                            int(abs(row["_count"] - row["_count_old"])),
                            (int(row["_row_old"]), int(row["_col_old"])),
                        )
                    )
        for i, j, difference, then in pairs[:MAX_LISTED]:
            column = table.frame.columns[j]
            flags.append(
                Flag(
                    "differencing",
                    f"{table.uid}: row {i}, column {column!s}: differs by "
                    f"{difference} from a count of the earlier release {release!r}",
                    row=i,
                    column=column,
                    col_index=j,
                )
            )
            findings.append(
                {
                    "cell": [i, j],
                    "release": release,
                    "earlier_cell": list(then) if then else None,
                    "difference": difference,
                }
            )
    return flags, findings, notes
