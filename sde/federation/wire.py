"""What travels between a coordinator and a node agent: the request body and Arrow frames.

The body of ``POST /v1/query`` (and ``/v1/explain``) is the JSON of a :class:`NodeRequest`;
an answer is an Arrow IPC stream. Bad input is refused with one
:class:`~sde.errors.InvalidInput` (``federation.bad-request`` or ``federation.bad-arrow``)
naming every bad field, never a parser's or pyarrow's own exception.

>>> req = NodeRequest("demo", {"project": "demo"}, "0" * 64, "sealed", "SELECT 1", "postgres",
...                   "aggregate", 30.0, 1000)
>>> NodeRequest.from_bytes(req.to_bytes()) == req
True
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from pyarrow import ipc

from sde.backends.frames import arrow_to_frame as _normalised
from sde.errors import InvalidInput
from sde.proxy.context import DIALECTS, Limits

#: What a node may be asked to run (docs/federation.md, "The wire").
KINDS: tuple[str, ...] = ("aggregate", "exact", "rows")
#: Content type of an answer.
ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: Longest timeout a request may ask for, in seconds.
MAX_TIMEOUT_S = 3600.0
#: Most rows (or groups) a request may ask for.
MAX_ROWS = 2**31 - 2
#: Longest sealed key accepted (a sealed 32-byte key is about 80 characters).
MAX_KEY_CHARS = 1024

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class NodeRequest:
    """One question for one node, as the coordinator sends it."""

    project: str
    #: The project's scope, as :meth:`sde.scope.Scope.to_dict` gives it.
    scope: dict[str, Any]
    #: :attr:`sde.scope.Scope.version` of that scope.
    scope_version: str
    #: The project key sealed for the nodes (:func:`sde.federation.sealing.seal`).
    key: str
    sql: str
    #: The dialect ``sql`` is written in (postgres, duckdb or spark).
    dialect: str
    #: ``aggregate``, ``exact`` or ``rows``.
    kind: str
    timeout_s: float
    max_rows: int

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, body: bytes) -> NodeRequest:
        """The request in ``body``; :class:`~sde.errors.InvalidInput` naming every bad field."""
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _bad("the request body is not JSON (UTF-8)") from None
        if not isinstance(data, dict):
            raise _bad("the request body is not a JSON object")
        problems = [f"unknown field {name!r}" for name in sorted(set(data) - set(_FIELDS))]
        problems += [f"missing field {name!r}" for name in _FIELDS if name not in data]
        for name, check in _FIELDS.items():
            if name in data:
                problem = check(data[name])
                if problem:
                    problems.append(f"{name} {problem}")
        if problems:
            raise _bad("bad request: " + "; ".join(problems[:10]))
        return cls(
            project=data["project"],
            scope=data["scope"],
            scope_version=data["scope_version"],
            key=data["key"],
            sql=data["sql"],
            dialect=data["dialect"],
            kind=data["kind"],
            timeout_s=float(data["timeout_s"]),
            max_rows=int(data["max_rows"]),
        )


def _bad(message: str) -> InvalidInput:
    return InvalidInput("federation.bad-request", message)


def _text(limit: int, pattern: re.Pattern[str] | None = None, what: str = "") -> Any:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return "must be a non-empty string"
        if len(value) > limit:
            return f"is longer than {limit:,} characters"
        if pattern is not None and not pattern.match(value):
            return f"must be {what}"
        return None

    return check


def _choice(options: tuple[str, ...]) -> Any:
    def check(value: Any) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}"

    return check


def _scope(value: Any) -> str | None:
    return None if isinstance(value, dict) and value else "must be a JSON object (Scope.to_dict())"


def _timeout(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number of seconds"
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
        return f"must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds"
    return None


def _rows(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number"
    if not 1 <= value <= MAX_ROWS:
        return f"must be between 1 and {MAX_ROWS}"
    return None


_FIELDS = {
    "project": _text(63, _SLUG, "a project slug (lowercase letters, digits, -)"),
    "scope": _scope,
    "scope_version": _text(64, _HEX64, "64 lowercase hex characters (Scope.version)"),
    "key": _text(MAX_KEY_CHARS),
    "sql": _text(Limits.max_sql_chars),
    "dialect": _choice(DIALECTS),
    "kind": _choice(KINDS),
    "timeout_s": _timeout,
    "max_rows": _rows,
}


# -- Arrow -----------------------------------------------------------------------------


def frame_to_arrow(frame: pd.DataFrame) -> bytes:
    """``frame`` as an Arrow IPC stream (column names and order kept, index dropped)."""
    try:
        arrays = [pa.array(col, from_pandas=True) for _, col in frame.items()]
        table = pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])
        sink = io.BytesIO()
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        raise InvalidInput(
            "federation.bad-arrow", "the result has a column Arrow cannot encode"
        ) from None
    return sink.getvalue()


def arrow_to_table(data: bytes) -> pa.Table:
    """The Arrow table in an IPC stream; :class:`~sde.errors.InvalidInput` for anything
    that is not one."""
    try:
        with ipc.open_stream(pa.BufferReader(data)) as reader:
            return reader.read_all()
    except Exception:  # pyarrow raises many kinds (ArrowInvalid, OSError, ...) on garbage
        raise InvalidInput(
            "federation.bad-arrow", f"{len(data):,} bytes that are not an Arrow IPC stream"
        ) from None


def arrow_to_frame(data: bytes) -> pd.DataFrame:
    """The frame in an IPC stream, with the workbench's dtypes (:mod:`sde.backends.frames`)."""
    table = arrow_to_table(data)
    try:
        return _normalised(table)
    except Exception:
        raise InvalidInput(
            "federation.bad-arrow", "the Arrow stream holds a column the workbench cannot read"
        ) from None


#: The names the coordinator's client uses.
encode_frame = frame_to_arrow
decode_frame = arrow_to_frame

__all__ = [
    "ARROW_STREAM",
    "KINDS",
    "NodeRequest",
    "arrow_to_frame",
    "arrow_to_table",
    "decode_frame",
    "encode_frame",
    "frame_to_arrow",
]
