"""What travels between a coordinator and a node agent: the request body and Arrow frames.

The body of ``POST /v1/query`` (and ``/v1/explain``) is the JSON of a :class:`NodeRequest`;
an answer is an Arrow IPC stream. Bad input is refused with one
:class:`~sde.errors.InvalidInput` (``federation.bad-request`` or ``federation.bad-arrow``)
naming every bad field, never a parser's or pyarrow's own exception.

Being signed, the body binds what it says: ``node`` (the agent it is for) and ``action``
(``query`` or ``explain``, the route) are checked by the agent, so a captured request is
good at one agent and one route only. ``probe_keys`` (round 2 of an aggregates project's
disclosure control, docs/federation.md) lists group keys, each as :func:`key_of` writes it.

>>> req = NodeRequest("demo", {"project": "demo"}, "0" * 64, "sealed", "SELECT 1", "postgres",
...                   "aggregate", 30.0, 1000)
>>> NodeRequest.from_bytes(req.to_bytes()) == req
True
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
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
#: What a request asks of its agent: the route it is meant for.
ACTIONS: tuple[str, ...] = ("query", "explain")
#: Longest text value of a probed key.
MAX_KEY_TEXT = 4096
#: Most group keys (f_k..) a probed key may have.
MAX_KEY_PARTS = 256

#: A group key's value as it travels in ``probe_keys``.
KeyValue = None | bool | int | float | str

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
    #: The node agent this request is for (it refuses a request for another node).
    node: str | None = None
    #: ``query`` or ``explain``: the route this request is for (any other route refuses it).
    action: str | None = None
    #: Round 2 (``aggregate`` in an aggregates project): "which of these group keys are
    #: small at you?"; each key a list of its values in f_k order (:func:`key_of`).
    probe_keys: list[list[KeyValue]] | None = None

    def to_bytes(self) -> bytes:
        data = {k: v for k, v in asdict(self).items() if k in _FIELDS or v is not None}
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, body: bytes) -> NodeRequest:
        """The request in ``body``; :class:`~sde.errors.InvalidInput` naming every bad field."""
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _bad("the request body is not JSON (UTF-8)") from None
        if not isinstance(data, dict):
            raise _bad("the request body is not a JSON object")
        known = set(_FIELDS) | set(_OPTIONAL)
        problems = [f"unknown field {name!r}" for name in sorted(set(data) - known)]
        problems += [f"missing field {name!r}" for name in _FIELDS if name not in data]
        for name, check in [*_FIELDS.items(), *_OPTIONAL.items()]:
            if name in data and (name in _FIELDS or data[name] is not None):
                problem = check(data[name])
                if problem:
                    problems.append(f"{name} {problem}")
        problems += _cross_checks(data)
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
            node=data.get("node"),
            action=data.get("action"),
            probe_keys=data.get("probe_keys"),
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


def _probe_keys(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of keys"
    width = len(value[0]) if isinstance(value[0], list) else -1
    if not 0 <= width <= MAX_KEY_PARTS:
        return f"must be a list of keys, each a list of at most {MAX_KEY_PARTS} values"
    for key in value:
        if not isinstance(key, list) or len(key) != width:
            return "must be keys of one width, each a list of values"
        if not all(_key_value(v) for v in key):
            return (
                "must hold only null, true, false, finite numbers and strings of at most "
                f"{MAX_KEY_TEXT:,} characters"
            )
    return None


def _key_value(value: Any) -> bool:
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_KEY_TEXT


_OPTIONAL = {
    "node": _text(63, _SLUG, "a node name (lowercase letters, digits, -)"),
    "action": _choice(ACTIONS),
    "probe_keys": _probe_keys,
}


def _cross_checks(data: dict[str, Any]) -> list[str]:
    """What one field says about another: a probe is an aggregate part's, and lists at
    most as many keys as the part's answer could hold (``max_rows``)."""
    probe = data.get("probe_keys")
    if not isinstance(probe, list):
        return []
    problems = []
    if data.get("kind") != "aggregate":
        problems.append("probe_keys go with kind aggregate only")
    if data.get("action") == "explain":
        problems.append("probe_keys go with action query only")
    rows = data.get("max_rows")
    if isinstance(rows, int) and not isinstance(rows, bool) and len(probe) > rows:
        problems.append(
            f"probe_keys lists {len(probe):,} keys, more than a part of max_rows {rows:,} "
            "groups could hold"
        )
    return problems


# -- group keys, as probes carry them --------------------------------------------------


def key_value(value: Any) -> KeyValue:
    """One group key value as JSON, the same for the same value on every engine: NULL
    (None, NaN, NaT) as null; a whole number (integer or float) as an integer; a date or
    a timestamp at midnight as ``YYYY-MM-DD``, another timestamp in ISO form (UTC, no
    zone); text as itself; anything else as its text. Values that engines type apart
    but a merge puts in one group read the same (over-matching only withholds more).

    >>> [key_value(v) for v in (None, float("nan"), 3, 3.0, 2.5, True, "a")]
    [None, None, 3, 3, 2.5, True, 'a']
    >>> key_value(pd.Timestamp("2020-01-02")), key_value(pd.Timestamp("2020-01-02 03:04"))
    ('2020-01-02', '2020-01-02T03:04:00')
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating | np.datetime64) and pd.isna(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer | float | np.floating | decimal.Decimal):
        return _number(value)
    if isinstance(value, dt.date | np.datetime64):
        return _moment(value)
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> KeyValue:
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return int(number) if number.is_integer() and abs(number) < 2**63 else number


def _moment(value: Any) -> str:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    if stamp == stamp.normalize():
        return str(stamp.date().isoformat())
    return str(stamp.isoformat())


def key_of(values: Any) -> tuple[KeyValue, ...]:
    """A group's key (its f_k values in order) as a tuple of :func:`key_value`."""
    return tuple(key_value(v) for v in values)


def frame_keys(frame: pd.DataFrame, keys: int) -> list[tuple[KeyValue, ...]]:
    """The key of every row of a node part with ``keys`` group keys (``f_k0..``)."""
    columns = [f"f_k{i}" for i in range(keys)]
    if not columns:
        return [() for _ in range(len(frame))]
    values = frame[columns].astype(object).itertuples(index=False, name=None)
    return [key_of(row) for row in values]


#: Keys one probe request carries at most (more go in further requests).
PROBE_BATCH = 10_000
#: JSON bytes of the keys one probe request carries at most (the agent's body limit is
#: 1,000,000 bytes for the whole body).
PROBE_BYTES = 400_000


def probe_batches(
    keys: list[tuple[KeyValue, ...]], *, max_keys: int, max_bytes: int = PROBE_BYTES
) -> list[list[list[KeyValue]]]:
    """``keys`` cut into ``probe_keys`` lists of at most ``max_keys`` keys (at most
    :data:`PROBE_BATCH`; a node refuses more than its ``max_rows``) and about ``max_bytes``
    of JSON each, in order; every batch holds at least one key.

    >>> probe_batches([(1,), (2,), (3,)], max_keys=2)
    [[[1], [2]], [[3]]]
    """
    limit = max(1, min(max_keys, PROBE_BATCH))
    batches: list[list[list[KeyValue]]] = []
    batch: list[list[KeyValue]] = []
    size = 0
    for key in keys:
        entry = list(key)
        cost = len(json.dumps(entry, separators=(",", ":"))) + 1
        if batch and (len(batch) >= limit or size + cost > max_bytes):
            batches.append(batch)
            batch, size = [], 0
        batch.append(entry)
        size += cost
    if batch:
        batches.append(batch)
    return batches


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
    "ACTIONS",
    "ARROW_STREAM",
    "KINDS",
    "KeyValue",
    "NodeRequest",
    "arrow_to_frame",
    "arrow_to_table",
    "decode_frame",
    "encode_frame",
    "frame_keys",
    "frame_to_arrow",
    "key_of",
    "key_value",
    "probe_batches",
]
