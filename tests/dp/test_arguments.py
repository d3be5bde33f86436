"""Bad ``sql_dp`` arguments are refused with a rule naming the argument, before anything runs;
an engine failure is charged, audited in the ledger and reported with one fixed message;
outer joins whose person side can be NULL are refused."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import duckdb
import pytest
from sqlalchemy import Engine

from sde.dp.analyse import analyse
from sde.dp.engine import ENGINE_ERROR, DPEngine
from sde.errors import DPRefusal, QueryFailed, SDEError
from tests.fixtures.dp import build_dp_node, run_on

SQL = "SELECT COUNT(*) AS n FROM person"
SUM = "SELECT SUM(value_as_number) AS s FROM measurement"

BAD: list[tuple[str, dict[str, Any], str]] = [
    (SUM, {"epsilon": 1.0, "bounds": {"s": (60, math.inf)}}, "dp.bounds"),
    (SUM, {"epsilon": 1.0, "bounds": {"s": (60, 250, 1e-300)}}, "dp.bounds"),
    (SUM, {"epsilon": 1.0, "bounds": {"s": (250, 60)}}, "dp.bounds"),
    (SUM, {"epsilon": 1.0, "bounds": {"s": ("60", 250)}}, "dp.bounds"),
    (SUM, {"epsilon": 1.0, "bounds": {"s": (True, 250)}}, "dp.bounds"),
    (SUM, {"epsilon": 1.0, "bounds": {"s": 250}}, "dp.bounds"),
    (SUM, {"epsilon": 1.0, "bounds": [60, 250]}, "dp.bounds"),
    (SQL, {"epsilon": [0.1]}, "dp.epsilon"),
    (SQL, {"epsilon": True}, "dp.epsilon"),
    (SQL, {"epsilon": math.inf}, "dp.epsilon"),
    (SQL, {"epsilon": math.nan}, "dp.epsilon"),
    (SQL, {"epsilon": -0.1}, "dp.epsilon"),
    (SQL, {"epsilon": "0.1"}, "dp.epsilon"),
    (SQL, {"epsilon": 0.1, "delta": True}, "dp.delta"),
    (SQL, {"epsilon": 0.1, "delta": -1e-6}, "dp.delta"),
    (SQL, {"epsilon": 0.1, "delta": math.nan}, "dp.delta"),
    (SQL, {"epsilon": 0.1, "delta": 1.0}, "dp.delta"),
    (SQL, {"epsilon": 0.1, "alpha": True}, "dp.alpha"),
    (SQL, {"epsilon": 0.1, "alpha": math.nan}, "dp.alpha"),
    (SQL, {"epsilon": 0.1, "alpha": [0.05]}, "dp.alpha"),
    (SQL, {"accuracy": True}, "dp.accuracy"),
    (SQL, {"accuracy": math.inf}, "dp.accuracy"),
    (SQL, {"accuracy": -3}, "dp.accuracy"),
    (SQL, {"accuracy": {"n": "5"}}, "dp.accuracy"),
    (SQL, {"epsilon": 0.1, "max_rows_per_person": True}, "dp.max-rows-per-person"),
    (SQL, {"epsilon": 0.1, "max_rows_per_person": 2.5}, "dp.max-rows-per-person"),
    (SQL, {"epsilon": 0.1, "max_rows_per_person": 0}, "dp.max-rows-per-person"),
    (SQL, {"epsilon": 0.1, "max_rows_per_person": 10**12}, "dp.max-rows-per-person"),
    (SQL, {"epsilon": 0.1, "max_groups_per_person": -1}, "dp.max-groups-per-person"),
    (SQL, {"epsilon": 0.1, "max_groups_per_person": False}, "dp.max-groups-per-person"),
    (SQL, {"epsilon": 0.1, "max_groups_per_person": "3"}, "dp.max-groups-per-person"),
    (SQL, {"epsilon": 0.1, "keys": {"n": "abc"}}, "dp.keys"),
    (SQL, {"epsilon": 0.1, "keys": {"n": [math.nan]}}, "dp.keys"),
    (SQL, {"epsilon": 0.1, "keys": [1, 2]}, "dp.keys"),
    (SQL, {"epsilon": 0.1, "noise": "uniform"}, "dp.noise"),
]


@pytest.mark.parametrize(
    ("sql", "kwargs", "rule"), BAD, ids=[f"{r}-{i}" for i, (_, _, r) in enumerate(BAD)]
)
def test_bad_arguments_are_refused_by_name_and_spend_nothing(
    dp_engine: Callable[..., DPEngine], sql: str, kwargs: dict[str, Any], rule: str
) -> None:
    engine = dp_engine()
    with pytest.raises(SDEError) as err:
        engine.sql_dp(sql, **kwargs)
    assert err.value.rule == rule
    assert engine.budget().epsilon_spent == 0


def test_a_sum_that_could_overflow_is_refused(dp_engine: Callable[..., DPEngine]) -> None:
    with pytest.raises(DPRefusal) as err:
        dp_engine().sql_dp(
            "SELECT SUM(value_as_number) AS s FROM measurement",
            epsilon=1.0,
            bounds={"s": (0, 1e12, 1)},
            max_rows_per_person=1000,
        )
    assert err.value.rule == "dp.bounds"


@pytest.fixture
def broken_node() -> duckdb.DuckDBPyConnection:
    """A real DuckDB node with no measurement table: the exact run fails in the engine."""
    con = duckdb.connect()
    build_dp_node(con, persons=20)
    con.execute("DROP TABLE measurement")
    return con


def test_an_engine_error_is_charged_recorded_and_reported_with_a_fixed_message(
    broken_node: duckdb.DuckDBPyConnection, dp_registry: Engine
) -> None:
    engine = DPEngine(run_on(broken_node), registry=dp_registry, project="p", budget=(1.0, 1e-6))
    sql = "SELECT COUNT(*) AS n FROM measurement WHERE value_as_number > 120"
    messages = set()
    for _ in range(2):  # charged each time: a failure is never answered from a record
        with pytest.raises(QueryFailed) as err:
            engine.sql_dp(sql, epsilon=0.25)
        assert err.value.rule == "dp.engine-error"
        messages.add(err.value.message)
    assert messages == {ENGINE_ERROR}
    status = engine.budget()
    assert status.epsilon_spent == pytest.approx(0.5)
    assert [r.result.get("failed") for r in status.history] == [True, True]
    assert all(len(r.query_hash) == 64 for r in status.history)
    # the exact SQL fails with a data-free message too when the budget is nearly gone
    with pytest.raises(QueryFailed):
        engine.sql_dp(sql.replace("120", "121"), epsilon=0.5)
    assert engine.budget().epsilon_spent == pytest.approx(1.0)


OUTER = [
    "SELECT COUNT(*) FROM concept c LEFT JOIN person p ON p.gender_concept_id = c.concept_id",
    "SELECT COUNT(*) FROM concept c LEFT JOIN condition_occurrence co "
    "ON co.condition_concept_id = c.concept_id",
    "WITH x AS (SELECT co.person_id FROM concept c LEFT JOIN condition_occurrence co "
    "ON co.condition_concept_id = c.concept_id) SELECT COUNT(*) FROM x",
]


@pytest.mark.parametrize("sql", OUTER)
def test_outer_joins_with_a_null_person_are_refused(sql: str) -> None:
    with pytest.raises(DPRefusal) as err:
        analyse(sql)
    assert err.value.rule == "dp.outer-join-person"


def test_left_joins_from_a_person_relation_stay_available(
    dp_engine: Callable[..., DPEngine],
) -> None:
    out = dp_engine().sql_dp(
        "SELECT COUNT(*) AS n FROM person p LEFT JOIN measurement m ON m.person_id = p.person_id",
        epsilon=1.0,
    )
    assert out["n"].iloc[0] > 0
