"""Result DataFrames with the same dtypes on every engine.

Integers become nullable ``Int64``, floating and decimal numbers ``float64``,
dates and timestamps ``datetime64[ns]``, booleans ``boolean``, text ``object``:
the convention of :mod:`sde.backends.base`, so that answers compare equal.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pandas as pd
from pandas.api import types as ptypes


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with normalised dtypes."""
    out = {}
    for name in frame.columns:
        out[name] = _column(frame[name])
    result = pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
    result.columns = list(frame.columns)
    return result


def _column(col: pd.Series) -> pd.Series:  # noqa: PLR0911 - one return per dtype family
    dtype = col.dtype
    if ptypes.is_bool_dtype(dtype):
        return col.astype("boolean")
    if ptypes.is_integer_dtype(dtype):
        return col.astype("Int64")
    if ptypes.is_float_dtype(dtype):
        return col.astype("float64")
    if ptypes.is_datetime64_any_dtype(dtype):
        if getattr(dtype, "tz", None) is not None:
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        return col.astype("datetime64[ns]")
    values = col.dropna()
    if values.empty:
        return col.astype("object")
    sample = values.iloc[0]
    if isinstance(sample, bool):
        return col.astype("boolean")
    if isinstance(sample, int) and all(isinstance(v, int) for v in values):
        return col.astype("Int64")
    if isinstance(sample, float | decimal.Decimal):
        return pd.to_numeric(col, errors="coerce").astype("float64")
    if isinstance(sample, dt.date):
        return pd.to_datetime(col).astype("datetime64[ns]")
    return col.astype("object")
