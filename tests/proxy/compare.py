"""Comparing result frames across engines: values, not dtypes or column names."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import numpy as np
import pandas as pd


def _value(v: Any) -> Any:  # noqa: PLR0911 - one return per value kind
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float | np.floating) and math.isnan(v):
        return None
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, pd.Timedelta | dt.timedelta | np.timedelta64):
        return round(pd.Timedelta(v).total_seconds() / 86400, 6)
    if isinstance(v, int | float | np.integer | np.floating | decimal.Decimal):
        return round(float(v), 6)
    if isinstance(v, pd.Timestamp | dt.datetime | dt.date | np.datetime64):
        ts = pd.Timestamp(v)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
    return str(v)


def rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The frame's rows as normalised tuples, sorted."""
    out = [tuple(_value(v) for v in row) for row in frame.itertuples(index=False, name=None)]
    return sorted(
        out, key=lambda r: tuple((x is None, str(type(x)), x if x is not None else 0) for x in r)
    )
