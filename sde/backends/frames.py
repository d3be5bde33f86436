"""Results as pandas DataFrames with the same dtypes on every engine.

Each engine reports its result columns in its own types; this module maps them
onto five *kinds* and each kind onto one pandas dtype, so that the same query
gives frames that compare equal on DuckDB, PostgreSQL and Spark:

============  ===================================  ==================
kind          engine types                         pandas dtype
============  ===================================  ==================
integer       int2/4/8, HUGEINT, decimal scale 0   ``Int64`` (``float64`` if a
                                                   value lies past int64)
float         float4/8, decimal scale > 0,         ``float64``
              PostgreSQL ``numeric`` (no scale)
date          DATE, TIMESTAMP (naive or with a     ``datetime64[ns]``
              time zone: converted to UTC)
text          text, varchar, char                  ``object`` (``str``, ``None``)
boolean       boolean                              ``boolean``
other         NULL-typed, intervals, arrays, ...   ``object``
============  ===================================  ==================

>>> import pyarrow as pa
>>> frame = arrow_to_frame(pa.table({"n": pa.array([1, None], pa.int32()),
...                                  "s": pa.array(["a", None])}))
>>> [str(t) for t in frame.dtypes]
['Int64', 'object']
>>> frame["s"].tolist()
['a', None]

Every engine result goes through :func:`arrow_to_frame` (DuckDB, Spark) or
:func:`rows_to_frame` (PostgreSQL) inside its backend, so the proxy receives frames
already in this convention; :func:`normalise` brings any other DataFrame to it
through the same mapping (and returns a conforming frame as it is).

>>> import pandas as pd
>>> [str(t) for t in normalise(pd.DataFrame({"n": [1, 2], "f": [0.5, 1.0]})).dtypes]
['Int64', 'float64']
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

Kind = Literal["integer", "float", "date", "text", "boolean", "other"]

_TIMESTAMP_NS = pa.timestamp("ns")


_ARROW_KINDS: tuple[tuple[Callable[[pa.DataType], bool], Kind], ...] = (
    (pa.types.is_integer, "integer"),
    (lambda t: pa.types.is_decimal(t) and t.scale == 0, "integer"),
    (pa.types.is_decimal, "float"),
    (pa.types.is_floating, "float"),
    (pa.types.is_date, "date"),
    (pa.types.is_timestamp, "date"),
    (pa.types.is_string, "text"),
    (pa.types.is_large_string, "text"),
    (pa.types.is_string_view, "text"),
    (pa.types.is_boolean, "boolean"),
)


def arrow_kind(arrow_type: pa.DataType) -> Kind:
    """The kind of an Arrow column type (DuckDB and Spark results arrive as Arrow)."""
    for matches, kind in _ARROW_KINDS:
        if matches(arrow_type):
            return kind
    return "other"


def _as_timestamp_ns(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        # Wall-clock time in UTC (sessions run in UTC, so this is the stored value).
        column = pc.cast(column, pa.timestamp(column.type.unit, tz="UTC"))
        column = pc.cast(column, pa.timestamp(column.type.unit))
    return pc.cast(column, _TIMESTAMP_NS)


def _arrow_series(column: pa.ChunkedArray) -> pd.Series:
    kind = arrow_kind(column.type)
    if kind == "integer":
        try:
            integers = pc.cast(column, pa.int64())
        except pa.ArrowInvalid:  # a HUGEINT or DECIMAL(38, 0) past int64: as a double
            kind = "float"
        else:
            return pd.Series(integers.to_pandas(types_mapper=_int64_mapper))
    if kind == "float":
        return pd.Series(pc.cast(column, pa.float64()).to_numpy(), dtype="float64")
    if kind == "date":
        return pd.Series(_as_timestamp_ns(column).to_pandas(), dtype="datetime64[ns]")
    if kind == "boolean":
        return pd.Series(column.to_pandas(types_mapper=_bool_mapper), dtype="boolean")
    # text and other: plain Python objects, missing values as None.
    return pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)


def _int64_mapper(arrow_type: pa.DataType) -> Any:
    return pd.Int64Dtype() if arrow_type == pa.int64() else None


def _bool_mapper(arrow_type: pa.DataType) -> Any:
    return pd.BooleanDtype() if arrow_type == pa.bool_() else None


def _assemble(names: Sequence[str], series: list[pd.Series]) -> pd.DataFrame:
    # Positional assembly keeps duplicate column names (SELECT a.x, b.x) intact.
    frame = pd.concat([s.reset_index(drop=True) for s in series], axis=1) if series else None
    if frame is None:
        return pd.DataFrame(columns=list(names))
    frame.columns = list(names)
    return frame


def arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    """A normalised DataFrame from an Arrow table (DuckDB, Spark)."""
    return _assemble(table.column_names, [_arrow_series(c) for c in table.columns])


# -- PostgreSQL: rows of Python values plus the kind of each column -----------------

_ARROW_OF_KIND: dict[Kind, pa.DataType] = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "text": pa.string(),
    "boolean": pa.bool_(),
}


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, decimal.Decimal) else value


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, decimal.Decimal) else value


def _timestamp(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return value


_CONVERT: dict[Kind, Callable[[Any], Any]] = {"integer": _int, "float": _float, "date": _timestamp}


def _python_series(values: list[Any], kind: Kind) -> pd.Series:
    convert = _CONVERT.get(kind)
    if convert is not None:
        values = [None if v is None else convert(v) for v in values]
    if kind == "date":
        array = pa.chunked_array([pa.array(values, pa.timestamp("us"))])
        return _arrow_series(array)
    arrow_type = _ARROW_OF_KIND.get(kind)
    if arrow_type is None:
        return pd.Series(values, dtype=object)
    try:
        array = pa.array(values, arrow_type)
    except (OverflowError, pa.ArrowInvalid):  # integers past int64 (numeric): as doubles
        array = pa.array([None if v is None else float(v) for v in values], pa.float64())
    return _arrow_series(pa.chunked_array([array]))


#: The pandas dtype of each kind; a frame whose columns all have one of them conforms.
_CONFORMING = frozenset({"Int64", "float64", "datetime64[ns]", "object", "boolean"})


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in the common convention: a conforming frame is returned unchanged, other
    columns are mapped through Arrow exactly as an engine's result would be."""
    if all(str(dtype) in _CONFORMING for dtype in frame.dtypes):
        return frame
    series = [
        col if str(col.dtype) in _CONFORMING else _arrow_series(_to_arrow(col))
        for _, col in frame.items()
    ]
    return _assemble(list(frame.columns), series)


def _to_arrow(col: pd.Series) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(col, from_pandas=True)])


def rows_to_frame(
    names: Sequence[str], kinds: Sequence[Kind], rows: list[tuple[Any, ...]]
) -> pd.DataFrame:
    """A normalised DataFrame from rows of Python values and each column's kind."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return _assemble(
        names, [_python_series(list(col), kind) for col, kind in zip(columns, kinds, strict=True)]
    )
