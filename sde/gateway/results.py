"""A result as the gateway sends it: JSON ``{"columns", "data", "attrs"}`` or an Arrow IPC
stream (``Accept: application/vnd.apache.arrow.stream``) with the attrs as JSON in the
schema metadata key ``sde`` (:func:`sde.client.frame_from_arrow` reads it back)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from fastapi import Request
from fastapi.responses import JSONResponse, Response

ARROW = "application/vnd.apache.arrow.stream"
METADATA_KEY = b"sde"


def jsonable(value: Any) -> Any:
    """``value`` with numpy, pandas and date values made JSON values (NaN: null)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series):
        return [jsonable(v) for v in value]
    return _scalar(value.item() if isinstance(value, np.generic) else value)


def _scalar(value: Any) -> Any:
    missing = pd.api.types.is_scalar(value) and pd.isna(value)
    if missing or (isinstance(value, float) and not math.isfinite(value)):
        value = None
    elif isinstance(value, dt.date | dt.datetime | dt.time | pd.Timestamp):
        value = value.isoformat()
    elif isinstance(value, bytes):
        value = value.hex()
    elif not (value is None or isinstance(value, str | int | float | bool)):
        value = str(value)
    return value


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its object columns made JSON values (text for what has no JSON form)."""
    out = frame.copy()
    for name in out.select_dtypes(include="object").columns:
        out[name] = [_text(jsonable(v)) for v in out[name]]
    return out


def _text(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def wants_arrow(request: Request) -> bool:
    return ARROW in request.headers.get("accept", "")


def frame_response(request: Request, frame: pd.DataFrame) -> Response:
    attrs = jsonable(dict(frame.attrs))
    if wants_arrow(request):
        return Response(to_arrow(frame, attrs), media_type=ARROW)
    try:
        text = frame.to_json(orient="split", index=False, date_format="iso")
    except (ValueError, TypeError, OverflowError):  # a value pandas cannot write (an interval)
        text = plain(frame).to_json(orient="split", index=False, date_format="iso")
    data = json.loads(text)
    return JSONResponse({"columns": data["columns"], "data": data["data"], "attrs": attrs})


def to_arrow(frame: pd.DataFrame, attrs: dict[str, Any]) -> bytes:
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError):  # a value Arrow cannot type
        table = pa.Table.from_pandas(plain(frame), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(attrs).encode()
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
