"""The request body and Arrow frames: round trips, and bad input refused by name."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from sde.errors import InvalidInput
from sde.federation.wire import NodeRequest, arrow_to_frame, frame_to_arrow
from sde.scope import Scope

SCOPE = Scope.from_dict(
    {"project": "demo", "access": "aggregates", "tables": {"person": ["person_id"]}}
)


def _request(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "project": "demo",
        "scope": SCOPE.to_dict(),
        "scope_version": SCOPE.version,
        "key": "sealed-key",
        "sql": "SELECT 1",
        "dialect": "postgres",
        "kind": "aggregate",
        "timeout_s": 30,
        "max_rows": 1000,
    }
    fields.update(changes)
    return fields


def _refusal(body: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        NodeRequest.from_bytes(body)
    assert caught.value.rule == "federation.bad-request"
    return caught.value


def test_a_request_round_trips() -> None:
    request = NodeRequest.from_bytes(json.dumps(_request()).encode())
    assert request.scope == SCOPE.to_dict()
    assert request.timeout_s == 30.0
    assert isinstance(request.timeout_s, float)
    assert NodeRequest.from_bytes(request.to_bytes()) == request


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("project", "Not A Slug", "project must be a project slug"),
        ("project", 7, "project must be a non-empty string"),
        ("scope", [], "scope must be a JSON object"),
        ("scope", {}, "scope must be a JSON object"),
        ("scope_version", "abc", "scope_version must be 64 lowercase hex"),
        ("key", "", "key must be a non-empty string"),
        ("key", "k" * 2000, "key is longer than 1,024"),
        ("sql", None, "sql must be a non-empty string"),
        ("sql", "x" * 100_001, "sql is longer than 100,000"),
        ("dialect", "mysql", "dialect must be one of postgres, duckdb, spark"),
        ("kind", "everything", "kind must be one of aggregate, exact, rows"),
        ("timeout_s", "30", "timeout_s must be a number"),
        ("timeout_s", True, "timeout_s must be a number"),
        ("timeout_s", 0, "timeout_s must be more than 0"),
        ("timeout_s", -5, "timeout_s must be more than 0"),
        ("timeout_s", 1e9, "timeout_s must be more than 0 and at most 3600"),
        ("max_rows", 1.5, "max_rows must be a whole number"),
        ("max_rows", 0, "max_rows must be between 1"),
        ("max_rows", 2**40, "max_rows must be between 1"),
    ],
)
def test_each_bad_field_is_named(field: str, value: Any, says: str) -> None:
    err = _refusal(json.dumps(_request(**{field: value})).encode())
    assert says in err.message


def test_every_bad_field_is_named_at_once() -> None:
    body = _request(kind="x", max_rows=-1, extra=1)
    del body["sql"]
    message = _refusal(json.dumps(body).encode()).message
    for part in ["unknown field 'extra'", "missing field 'sql'", "kind must", "max_rows must"]:
        assert part in message


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"null", b"[" * 100_000, b"{" * 5],
)
def test_garbage_bodies_are_refused(body: bytes) -> None:
    assert _refusal(body).message


def test_nan_and_infinity_are_refused() -> None:
    body = json.dumps(_request()).replace('"timeout_s": 30', '"timeout_s": NaN').encode()
    assert "timeout_s" in _refusal(body).message
    body = json.dumps(_request()).replace('"timeout_s": 30', '"timeout_s": Infinity').encode()
    assert "timeout_s" in _refusal(body).message


# -- Arrow -----------------------------------------------------------------------------


def test_a_frame_round_trips_with_the_workbench_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "f_k0": pd.array([1, None, 3], dtype="Int64"),
            "f_a0": [0.5, None, 2.0],
            "name": pd.Series(["a", None, "c"], dtype=object),
            "__sde_small": pd.array([True, False, None], dtype="boolean"),
            "day": pd.to_datetime(["2020-01-01", None, "2021-06-30"]).astype("datetime64[ns]"),
        }
    )
    back = arrow_to_frame(frame_to_arrow(frame))
    assert list(back.columns) == list(frame.columns)
    assert [str(t) for t in back.dtypes] == [
        "Int64",
        "float64",
        "object",
        "boolean",
        "datetime64[ns]",
    ]
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_an_empty_frame_keeps_its_columns() -> None:
    frame = pd.DataFrame({"f_k0": pd.array([], dtype="Int64"), "f_a0": pd.array([], dtype="Int64")})
    back = arrow_to_frame(frame_to_arrow(frame))
    assert list(back.columns) == ["f_k0", "f_a0"]
    assert len(back) == 0


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\xff" * 64, b'{"error": "x"}'],
)
def test_garbage_is_not_an_arrow_stream(data: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        arrow_to_frame(data)
    assert caught.value.rule == "federation.bad-arrow"


def test_a_cut_stream_is_refused() -> None:
    data = frame_to_arrow(pd.DataFrame({"x": list(range(1000))}))
    with pytest.raises(InvalidInput):
        arrow_to_frame(data[: len(data) // 2])
