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


# -- node, action and probe_keys ---------------------------------------------------------------


def test_node_action_and_probe_keys_round_trip_and_are_left_out_when_unset() -> None:
    body = json.dumps(
        _request(node="lth", action="query", probe_keys=[[1, "2020-01-02", None], [2.5, "a", True]])
    ).encode()
    request = NodeRequest.from_bytes(body)
    assert (request.node, request.action) == ("lth", "query")
    assert request.probe_keys == [[1, "2020-01-02", None], [2.5, "a", True]]
    assert NodeRequest.from_bytes(request.to_bytes()) == request
    plain = NodeRequest.from_bytes(json.dumps(_request()).encode())
    assert plain.node is None
    assert plain.probe_keys is None
    assert b"probe_keys" not in plain.to_bytes()


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"node": "LTH"}, "node must be a node name"),
        ({"action": "rows"}, "action must be one of query, explain"),
        ({"probe_keys": []}, "probe_keys must be a non-empty list"),
        ({"probe_keys": [1, 2]}, "probe_keys must be a list of keys"),
        ({"probe_keys": [[1], [1, 2]]}, "probe_keys must be keys of one width"),
        ({"probe_keys": [[[1]]]}, "probe_keys must hold only null"),
        ({"probe_keys": [["x" * 5000]]}, "probe_keys must hold only null"),
        ({"probe_keys": [[1]] * 3, "max_rows": 2}, "more than a part of max_rows 2"),
        ({"probe_keys": [[1]], "kind": "rows"}, "probe_keys go with kind aggregate only"),
        ({"probe_keys": [[1]], "action": "explain"}, "probe_keys go with action query only"),
    ],
)
def test_bad_node_action_and_probe_keys_are_named(changes: dict[str, Any], says: str) -> None:
    err = _refusal(json.dumps(_request(**changes)).encode())
    assert says in err.message, err.message


def test_a_nan_probe_value_is_refused() -> None:
    body = json.dumps(_request(probe_keys=[[float("nan")]])).encode()
    assert "probe_keys must hold only null" in _refusal(body).message


def test_key_values_read_the_same_on_every_engine() -> None:
    import datetime as dt
    import decimal

    import numpy as np

    from sde.federation.wire import key_of

    same = [
        (np.int64(3), 3.0, decimal.Decimal("3"), 3),
        (
            pd.Timestamp("2020-01-02"),
            dt.date(2020, 1, 2),
            np.datetime64("2020-01-02"),
            "2020-01-02",
        ),
        (None, float("nan"), pd.NaT, pd.NA, np.datetime64("NaT")),
        (pd.Timestamp("2020-01-02 01:00", tz="Europe/London"), "2020-01-02T01:00:00"),
    ]
    for values in same[:3]:
        assert len({key_of([v]) for v in values}) == 1, values
    assert key_of([same[3][0]]) == ("2020-01-02T01:00:00",)  # GMT in January: UTC
    assert key_of([float("inf"), 2.5, True]) == ("Infinity", 2.5, True)


def test_probes_are_cut_into_batches_a_node_takes() -> None:
    from sde.federation.wire import PROBE_BATCH, probe_batches

    keys = [(i, f"v{i}") for i in range(2 * PROBE_BATCH + 5)]
    batches = probe_batches(keys, max_keys=10**9)
    assert [len(b) for b in batches] == [PROBE_BATCH, PROBE_BATCH, 5]
    assert [tuple(k) for b in batches for k in b] == keys
    assert [len(b) for b in probe_batches(keys[:7], max_keys=3)] == [3, 3, 1]
    wide = [("x" * 4000,)] * 300
    batches = probe_batches(wide, max_keys=10**9)
    assert all(len(json.dumps(b)) < 500_000 for b in batches)
    assert sum(len(b) for b in batches) == 300
    assert probe_batches([], max_keys=5) == []
