"""Rounding policies for frequency tables, with totals that add up.

Each policy maps true counts to published ones. Totals are recomputed from
the published cells (so a reader's sums match, and the totals reveal nothing
the cells do not), except for :class:`RedactThenRound`, whose totals go through
the same policy as the cells (OpenSAFELY's practice: a total of redacted cells
cannot be a sum). Derived statistics (shares) come from the published counts.

>>> BaseRounding(5).apply(np.array([0, 2, 3, 12, 13])).tolist()
[0.0, 0.0, 5.0, 10.0, 15.0]
>>> Midpoint6().apply(np.array([0, 1, 6, 7, 12, 13])).tolist()
[0.0, 3.0, 3.0, 9.0, 9.0, 15.0]
>>> RedactThenRound().apply(np.array([0, 7, 8, 12, 13])).tolist()
[nan, nan, 10.0, 10.0, 15.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from sde.errors import ConfigurationError


class RoundingPolicy(Protocol):
    """A rule that turns true counts into published counts (NaN: redacted)."""

    @property
    def name(self) -> str: ...

    #: Whether published totals are sums of the published cells.
    @property
    def additive_totals(self) -> bool: ...

    def apply(self, counts: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class BaseRounding:
    """Round to the nearest multiple of ``base`` (halves up)."""

    base: int = 5
    additive_totals: bool = True

    @property
    def name(self) -> str:
        return f"base-{self.base}"

    def apply(self, counts: np.ndarray) -> np.ndarray:
        c = np.asarray(counts, dtype=float)
        return np.floor(c / self.base + 0.5) * self.base


@dataclass(frozen=True)
class Midpoint6:
    """Midpoint-6: 0 stays 0; otherwise the midpoint of the 6-wide band holding the count.

    1-6 become 3, 7-12 become 9, and so on (``ceil(x / 6) * 6 - 3``).
    """

    additive_totals: bool = True

    @property
    def name(self) -> str:
        return "midpoint-6"

    def apply(self, counts: np.ndarray) -> np.ndarray:
        c = np.asarray(counts, dtype=float)
        return np.where(c == 0, 0.0, np.ceil(c / 6) * 6 - 3)


@dataclass(frozen=True)
class RedactThenRound:
    """Redact counts at or below ``redact_at_or_below`` (7), round the rest to ``base`` (5)."""

    redact_at_or_below: int = 7
    base: int = 5
    additive_totals: bool = False

    @property
    def name(self) -> str:
        return f"redact-{self.redact_at_or_below}-round-{self.base}"

    def apply(self, counts: np.ndarray) -> np.ndarray:
        c = np.asarray(counts, dtype=float)
        rounded = np.floor(c / self.base + 0.5) * self.base
        return np.where(c <= self.redact_at_or_below, np.nan, rounded)


#: Named policies (what ``protection=`` accepts by name).
POLICIES: dict[str, RoundingPolicy] = {
    "base-5": BaseRounding(5),
    "base-10": BaseRounding(10),
    "midpoint-6": Midpoint6(),
    "redact-7-round-5": RedactThenRound(),
}


def policy_named(name: str) -> RoundingPolicy:
    """A policy by name (``base-N`` for any N > 0)."""
    if name in POLICIES:
        return POLICIES[name]
    if name.startswith("base-") and name[5:].isdigit() and int(name[5:]) > 0:
        return BaseRounding(int(name[5:]))
    raise ConfigurationError(
        "sdc.protection",
        f"unknown protection {name!r}; use suppress, none, or one of {', '.join(POLICIES)}",
    )


def round_grid(
    counts: np.ndarray, policy: RoundingPolicy, has_col_totals: bool, has_row_totals: bool
) -> np.ndarray:
    """Published counts for a grid whose last row/column (when present) are totals."""
    rows = counts.shape[0] - int(has_col_totals)
    cols = counts.shape[1] - int(has_row_totals)
    out = policy.apply(counts)
    if not policy.additive_totals:
        return out
    inner = out[:rows, :cols]
    if has_col_totals:
        out[rows, :cols] = inner.sum(axis=0)
    if has_row_totals:
        out[:rows, cols] = inner.sum(axis=1)
    if has_col_totals and has_row_totals:
        out[rows, cols] = inner.sum()
    return out


def shares(published: pd.DataFrame, axis: str = "all") -> pd.DataFrame:
    """Percentages computed from published (rounded) counts; redacted cells stay NaN.

    ``axis`` is ``"index"`` (each row sums to 100), ``"columns"`` or ``"all"``.

    >>> t = pd.DataFrame({"x": [10.0, 30.0], "y": [10.0, np.nan]})
    >>> shares(t, "index")["x"].tolist()
    [50.0, 100.0]
    """
    if axis == "index":
        return published.div(published.sum(axis=1), axis=0) * 100
    if axis == "columns":
        return published.div(published.sum(axis=0), axis=1) * 100
    if axis == "all":
        return published / float(np.nansum(published.to_numpy(dtype=float))) * 100
    raise ConfigurationError("sdc.shares-axis", "axis must be 'index', 'columns' or 'all'")
