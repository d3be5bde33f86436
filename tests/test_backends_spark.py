"""The Spark backend in the run's local session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from sde.backends import open_backend
from sde.backends.base import Backend, frame_batches
from sde.backends.duckdb import DuckDBBackend
from sde.backends.spark import SparkBackend
from sde.errors import ConfigurationError, InvalidInput, QueryFailed
from sde.omop.ddl import all_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def node(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> SparkBackend:
    backend = SparkBackend(tmp_path_factory.mktemp("wh"), "unit", session=spark, create=True)
    backend.create_table("person")
    backend.load_frame(
        "person",
        pd.DataFrame(
            {
                "person_id": [1, 2, 3],
                "gender_concept_id": [8507, 8532, 8532],
                "year_of_birth": [1950, 1980, 2001],
                "race_concept_id": [0, 0, 0],
                "ethnicity_concept_id": [0, 0, 0],
                "birth_datetime": pd.to_datetime(pd.Series(["1950-03-01 08:15", None, None])),
                "person_source_value": ["9990000018", "", None],
            }
        ),
    )
    return backend


def test_results_have_the_common_dtypes(node: SparkBackend) -> None:
    frame = node.query(
        "SELECT 1 AS i, CAST(1.5 AS DOUBLE) AS f, DATE '2020-02-29' AS d, "
        "birth_datetime AS t, person_source_value AS s, true AS b, "
        "SUM(year_of_birth) OVER () AS total, CAST(2.25 AS DECIMAL(5, 2)) AS dec "
        "FROM person ORDER BY person_id"
    )
    assert [str(t) for t in frame.dtypes] == [
        "Int64",
        "float64",
        "datetime64[ns]",
        "datetime64[ns]",
        "object",
        "boolean",
        "Int64",
        "float64",
    ]
    assert frame.loc[0, "t"] == pd.Timestamp("1950-03-01 08:15")  # stored value, no shift
    assert frame["s"].tolist() == ["9990000018", "", None]


def test_a_failing_query_is_generic(node: SparkBackend) -> None:
    with pytest.raises(QueryFailed) as caught:
        node.query("SELECT CAST(person_source_value AS INT) AS n FROM person")
    err = caught.value
    assert err.rule == "engine.error"
    assert "9990000018" not in str(err)
    assert "9990000018" in err.engine_message  # type: ignore[attr-defined]


def test_unknown_tables_and_bad_syntax_are_query_failures(node: SparkBackend) -> None:
    for sql in ("SELECT * FROM no_such_table", "SELEC 1", "SELECT 1; SELECT 2"):
        with pytest.raises(QueryFailed):
            node.query(sql)


def test_statement_timeout_cancels_and_the_session_recovers(
    spark: SparkSession, tmp_path: Path
) -> None:
    backend = SparkBackend(tmp_path, "slow", session=spark, create=True, statement_timeout=0.5)
    with pytest.raises(QueryFailed) as caught:
        backend.query(
            "SELECT SUM(a.id + b.id) AS s FROM range(100000) a CROSS JOIN range(100000) b"
        )
    assert caught.value.rule == "engine.timeout"
    backend.statement_timeout = None  # a late cancel must not hit the next query
    assert backend.query("SELECT 1 AS ok")["ok"].tolist() == [1]


def test_nodes_in_one_session_do_not_collide(
    node: SparkBackend, spark: SparkSession, tmp_path: Path
) -> None:
    other = SparkBackend(tmp_path, "unit", session=spark, create=True)
    other.create_table("person")
    assert other.query("SELECT COUNT(*) AS n FROM person")["n"].tolist() == [0]
    assert node.query("SELECT COUNT(*) AS n FROM person")["n"].tolist() == [3]


def test_a_missing_node_store_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no node store"):
        open_backend("spark", warehouse=tmp_path, node="lth")


@pytest.mark.postgres
def test_load_round_trip(engines: dict[str, Backend]) -> None:
    """The node the ``engines`` fixture loaded holds the same rows as its DuckDB file."""
    source = engines["duckdb"]
    target = engines["spark"]
    assert isinstance(source, DuckDBBackend)
    assert set(all_tables()) <= target.table_names()
    filled = [t for t in all_tables() if t in source.table_names() and source.row_count(t)]
    union = " UNION ALL ".join(f"SELECT '{t}' AS t, COUNT(*) AS n FROM {t}" for t in filled)
    counts: dict[str, int] = dict(target.query(union).itertuples(index=False))
    assert counts == {t: source.row_count(t) for t in filled}
    query = "SELECT * FROM measurement ORDER BY measurement_id LIMIT 500"
    pd.testing.assert_frame_equal(target.query(query), source.query(query))


def test_a_refused_load_leaves_the_table_as_it_was(node: SparkBackend) -> None:
    before = node.query("SELECT COUNT(*) AS n FROM person")["n"].tolist()
    good = pd.DataFrame(
        {
            "person_id": [9],
            "gender_concept_id": [8507],
            "year_of_birth": [1990],
            "race_concept_id": [0],
            "ethnicity_concept_id": [0],
        }
    )
    bad = pd.DataFrame({"person_id": [10], "nhs_number": ["9990000018"]})
    with pytest.raises(InvalidInput):
        node.load_arrow("person", [*frame_batches(good), *frame_batches(bad)])
    assert node.query("SELECT COUNT(*) AS n FROM person")["n"].tolist() == before
