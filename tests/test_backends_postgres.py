"""The PostgreSQL backend against the run's throwaway server."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sde.backends import open_backend
from sde.backends.duckdb import DuckDBBackend
from sde.backends.load import load_node
from sde.backends.pg_local import LocalPostgres, free_port
from sde.backends.postgresql import PostgresBackend
from sde.errors import BackendUnavailable, ConfigurationError, QueryFailed
from sde.omop.ddl import all_tables

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url(pg_server: LocalPostgres) -> str:
    return pg_server.create_database("backend_tests")


@pytest.fixture
def pg(pg_url: str) -> PostgresBackend:
    backend = PostgresBackend(pg_url, schema="unit")
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
                "person_source_value": ["9990000018", "", None],
            }
        ),
    )
    return backend


def test_server_is_throwaway_on_loopback(pg_server: LocalPostgres) -> None:
    backend = PostgresBackend(pg_server.admin_dsn)
    settings = backend.query(
        "SELECT host(inet_server_addr()) AS addr, current_setting('fsync') AS fsync"
    )
    assert settings.iloc[0].tolist() == ["127.0.0.1", "off"]
    assert pg_server.port > 1024
    backend.close()


def test_results_have_the_common_dtypes(pg: PostgresBackend) -> None:
    frame = pg.query(
        "SELECT 1 AS i, 1.5::float8 AS f, DATE '2020-02-29' AS d, "
        "TIMESTAMPTZ '2020-02-29 10:30:00+01' AS t, 'x'::text AS s, true AS b"
    )
    assert [str(t) for t in frame.dtypes] == [
        "Int64",
        "float64",
        "datetime64[ns]",
        "datetime64[ns]",
        "object",
        "boolean",
    ]
    assert frame.loc[0, "t"] == pd.Timestamp("2020-02-29 09:30")  # UTC wall clock


@pytest.mark.parametrize(
    ("expression", "dtype"),
    [
        ("SUM(person_id)", "Int64"),  # bigint
        ("SUM(person_id::bigint)", "Int64"),  # numeric, every value of scale 0
        ("AVG(person_id)", "float64"),  # numeric with a fractional scale
        ("100.0 * COUNT(*) / 3", "float64"),
        ("CAST(SUM(person_id) AS NUMERIC(10, 0))", "Int64"),
        ("CAST(SUM(person_id) AS NUMERIC(10, 2))", "float64"),
    ],
)
def test_numeric_results(pg: PostgresBackend, expression: str, dtype: str) -> None:
    assert str(pg.query(f"SELECT {expression} AS x FROM person")["x"].dtype) == dtype


def test_text_keeps_empty_strings_and_nulls_apart(pg: PostgresBackend) -> None:
    values = pg.query("SELECT person_source_value AS v FROM person ORDER BY person_id")["v"]
    assert values.tolist() == ["9990000018", "", None]


def test_a_failing_query_is_generic(pg: PostgresBackend) -> None:
    with pytest.raises(QueryFailed) as caught:
        pg.query("SELECT CAST(person_source_value AS INTEGER) AS n FROM person")
    err = caught.value
    assert err.rule == "engine.error"
    assert "9990000018" not in str(err)
    assert "9990000018" in err.engine_message  # type: ignore[attr-defined]
    assert pg.query("SELECT COUNT(*) AS n FROM person")["n"].tolist() == [3]  # still usable


def test_query_runs_exactly_one_statement(pg: PostgresBackend) -> None:
    with pytest.raises(QueryFailed) as caught:
        pg.query("SELECT 1; DROP TABLE person")
    assert caught.value.rule == "engine.one-statement"
    assert "person" in pg.table_names()


def test_statement_timeout_cancels(pg_url: str) -> None:
    backend = open_backend("postgresql", url=pg_url, statement_timeout=0.2)
    with pytest.raises(QueryFailed) as caught:
        backend.query("SELECT pg_sleep(5) AS slept")
    assert caught.value.rule == "engine.timeout"
    backend.close()


def test_read_only_connection_refuses_writes(pg: PostgresBackend, pg_url: str) -> None:
    reader = PostgresBackend(pg_url, schema="unit", read_only=True)
    assert reader.query("SELECT COUNT(*) AS n FROM person")["n"].tolist() == [3]
    with pytest.raises(QueryFailed):
        reader.execute("DELETE FROM person")
    with pytest.raises(QueryFailed):
        reader.query("CREATE TABLE leak AS SELECT * FROM person")
    reader.close()


def test_a_restricted_role_sees_only_what_it_is_granted(pg: PostgresBackend) -> None:
    pg.execute("DROP ROLE IF EXISTS project_demo")
    pg.execute("CREATE ROLE project_demo LOGIN")
    pg.execute("CREATE TABLE IF NOT EXISTS unit.extract AS SELECT person_id FROM unit.person")
    pg.execute("GRANT USAGE ON SCHEMA unit TO project_demo")
    pg.execute("GRANT SELECT ON unit.extract TO project_demo")
    project = pg.as_role("project_demo", statement_timeout=5)
    assert project.query("SELECT COUNT(*) AS n FROM extract")["n"].tolist() == [3]
    with pytest.raises(QueryFailed):
        project.query("SELECT person_source_value FROM person")
    project.close()


def test_schemas_keep_nodes_apart(pg: PostgresBackend, pg_url: str) -> None:
    other = PostgresBackend(pg_url, schema="other_node")
    other.create_table("person")
    assert other.query("SELECT COUNT(*) AS n FROM person")["n"].tolist() == [0]
    assert pg.query("SELECT COUNT(*) AS n FROM person")["n"].tolist() == [3]
    other.close()


def test_unreachable_server_says_what_to_do() -> None:
    url = f"postgresql://sde:hunter2@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(BackendUnavailable) as caught:
        PostgresBackend(url, connect_timeout=2)
    assert "apt-get install postgresql" in caught.value.message
    assert "hunter2" not in caught.value.message


def test_bad_schema_name_is_refused(pg_url: str) -> None:
    with pytest.raises(ConfigurationError):
        PostgresBackend(pg_url, schema="lth; DROP TABLE person")


def test_load_round_trip(synth_node: Path, pg_server: LocalPostgres) -> None:
    target = PostgresBackend(pg_server.create_database("round_trip"), schema="lth")
    result = load_node(synth_node, target, progress=False)
    source = DuckDBBackend(synth_node, read_only=True)
    present = source.table_names()
    for table in all_tables():
        expected = source.row_count(table) if table in present else 0
        assert result.rows[table] == expected, table
        got = target.query(f"SELECT COUNT(*) AS n FROM {table}")["n"].tolist()
        assert got == [expected], table
    # A full table survives value for value (dates, text, nulls).
    query = "SELECT * FROM person ORDER BY person_id"
    pd.testing.assert_frame_equal(target.query(query), source.query(query))
    source.close()
    target.close()
