"""Backends without a server: open_backend, result normalisation, DuckDB, the dialect
fixes, and what the proxy asks of a backend (row limits, timeouts, engine sources)."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from sde.backends import open_backend
from sde.backends.duckdb import DuckDBBackend
from sde.backends.failures import EngineFailure
from sde.backends.frames import arrow_to_frame, normalise, rows_to_frame
from sde.backends.load import load_node
from sde.errors import BackendUnavailable, ConfigurationError, InvalidInput, QueryFailed
from sde.omop.ddl import all_tables, create_table_sql
from sde.proxy.barrier import BackendExtract
from sde.proxy.barrier.sources import SOURCES, is_postgres_address
from sde.proxy.context import RuleContext
from sde.proxy.pipeline import prepare
from sde.proxy.transpile import FIXES, transpile
from sde.scope import Scope

EXPECTED_DTYPES = {
    "i": "Int64",
    "f": "float64",
    "d": "datetime64[ns]",
    "t": "datetime64[ns]",
    "s": "object",
    "b": "boolean",
}


@pytest.fixture
def duck() -> DuckDBBackend:
    backend = DuckDBBackend()
    for table in ("person", "death", "sde_opt_out"):
        backend.create_table(table)
    backend.load_frame(
        "person",
        pd.DataFrame(
            {
                "person_id": [1, 2, 3],
                "gender_concept_id": [8507, 8532, 8532],
                "year_of_birth": [1950, 1980, 2001],
                "race_concept_id": [0, 0, 0],
                "ethnicity_concept_id": [0, 0, 0],
                "person_source_value": ["9990000018", "9990000026", None],
            }
        ),
    )
    return backend


# -- open_backend ----------------------------------------------------------------


def test_unknown_backend_names_the_kind_and_the_choices() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_backend("oracle")
    assert caught.value.rule == "backend.unknown"
    assert "'oracle'" in caught.value.message
    for choice in ("duckdb", "postgresql", "spark"):
        assert choice in caught.value.message


def test_unknown_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no option colour"):
        open_backend("duckdb", colour="blue")


def test_open_backend_gives_a_working_duckdb() -> None:
    backend = open_backend("duckdb")
    assert backend.name == "duckdb"
    assert backend.query("SELECT 41 + 1 AS answer")["answer"].tolist() == [42]
    backend.close()
    backend.close()  # safe twice


# -- normalisation ---------------------------------------------------------------


def test_duckdb_results_have_the_common_dtypes(duck: DuckDBBackend) -> None:
    frame = duck.query(
        "SELECT 1 AS i, 1.5::DOUBLE AS f, DATE '2020-02-29' AS d, "
        "TIMESTAMP '2020-02-29 10:30:00' AS t, 'x' AS s, true AS b"
    )
    assert {c: str(t) for c, t in frame.dtypes.items()} == EXPECTED_DTYPES
    assert frame.loc[0, "d"] == pd.Timestamp("2020-02-29")


def test_nulls_keep_the_column_type(duck: DuckDBBackend) -> None:
    frame = duck.query(
        "SELECT CAST(NULL AS INTEGER) AS i, CAST(NULL AS DOUBLE) AS f, CAST(NULL AS DATE) AS d, "
        "CAST(NULL AS VARCHAR) AS s"
    )
    assert [str(t) for t in frame.dtypes] == ["Int64", "float64", "datetime64[ns]", "object"]
    assert frame.loc[0, "s"] is None
    assert frame["i"].isna().all()


@pytest.mark.parametrize(
    ("arrow_type", "expected"),
    [
        (pa.int32(), "Int64"),
        (pa.int64(), "Int64"),
        (pa.decimal128(38, 0), "Int64"),  # DuckDB SUM of integers (HUGEINT)
        (pa.decimal128(12, 2), "float64"),
        (pa.float32(), "float64"),
        (pa.date32(), "datetime64[ns]"),
        (pa.timestamp("us", tz="UTC"), "datetime64[ns]"),  # Spark TIMESTAMP
        (pa.string(), "object"),
        (pa.large_string(), "object"),
        (pa.null(), "object"),
    ],
)
def test_arrow_types_map_onto_the_common_dtypes(arrow_type: pa.DataType, expected: str) -> None:
    frame = arrow_to_frame(pa.table({"c": pa.array([None], arrow_type)}))
    assert str(frame["c"].dtype) == expected


def test_timestamps_with_a_time_zone_become_utc_wall_clock() -> None:
    moment = dt.datetime(2024, 6, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    by_arrow = arrow_to_frame(pa.table({"t": pa.array([moment], pa.timestamp("us", tz="UTC"))}))
    by_rows = rows_to_frame(["t"], ["date"], [(moment,)])
    expected = pd.Timestamp("2024-06-01 11:00")
    assert by_arrow["t"].tolist() == by_rows["t"].tolist() == [expected]


def test_postgres_style_rows_normalise_like_arrow() -> None:
    rows = [(1, decimal.Decimal("2.50"), dt.date(2020, 1, 1), "a", True, [1])]
    frame = rows_to_frame(
        ["i", "f", "d", "s", "b", "o"],
        ["integer", "float", "date", "text", "boolean", "other"],
        rows,
    )
    assert [str(t) for t in frame.dtypes] == [
        "Int64",
        "float64",
        "datetime64[ns]",
        "object",
        "boolean",
        "object",
    ]
    assert frame.loc[0, "f"] == 2.5


def test_duplicate_column_names_survive(duck: DuckDBBackend) -> None:
    frame = duck.query("SELECT 1 AS x, 'two' AS x")
    assert list(frame.columns) == ["x", "x"]
    assert frame.iloc[0].tolist() == [1, "two"]


def test_empty_results_keep_their_columns_and_dtypes(duck: DuckDBBackend) -> None:
    frame = duck.query("SELECT person_id, person_source_value FROM person WHERE false")
    assert list(frame.columns) == ["person_id", "person_source_value"]
    assert [str(t) for t in frame.dtypes] == ["Int64", "object"]


# -- errors ----------------------------------------------------------------------


def test_a_failing_query_is_generic_and_keeps_the_engine_text_aside(duck: DuckDBBackend) -> None:
    with pytest.raises(QueryFailed) as caught:
        duck.query("SELECT CAST(person_source_value AS INTEGER) AS n FROM person")
    err = caught.value
    assert isinstance(err, EngineFailure)
    assert err.rule == "engine.error"
    assert "9990000018" not in str(err)
    assert "9990000018" not in repr(err.to_dict())
    assert "9990000018" in err.engine_message  # for the audit log only


def test_syntax_errors_are_query_failures(duck: DuckDBBackend) -> None:
    with pytest.raises(QueryFailed, match="could not be run on the duckdb engine"):
        duck.query("SELEC 1")


def test_query_runs_exactly_one_statement(duck: DuckDBBackend) -> None:
    with pytest.raises(QueryFailed) as caught:
        duck.query("SELECT 1; DROP TABLE person")
    assert caught.value.rule == "engine.one-statement"
    assert "person" in duck.table_names()


def test_statement_timeout_interrupts_a_long_query() -> None:
    backend = DuckDBBackend(statement_timeout=0.2)
    with pytest.raises(QueryFailed) as caught:
        backend.query("SELECT COUNT(*) AS n FROM range(100000000000) a")
    assert caught.value.rule == "engine.timeout"
    assert backend.query("SELECT 1 AS ok")["ok"].tolist() == [1]  # still usable


# -- DuckDB files ----------------------------------------------------------------


def test_read_only_node_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "node.duckdb"
    DuckDBBackend(path).close()
    backend = DuckDBBackend(path, read_only=True)
    with pytest.raises(QueryFailed):
        backend.execute(create_table_sql("death", "duckdb"))


def test_read_only_needs_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no DuckDB file"):
        DuckDBBackend(tmp_path / "missing.duckdb", read_only=True)


def test_hardened_connection_cannot_read_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    backend = DuckDBBackend(harden=True)
    with pytest.raises(QueryFailed):
        backend.query(f"SELECT * FROM read_csv_auto('{secret}')")
    with pytest.raises(QueryFailed):
        backend.execute("SET enable_external_access = true")


def test_python_variables_are_not_tables() -> None:
    backend = DuckDBBackend()
    person = pd.DataFrame({"x": [1]})  # noqa: F841 - a replacement scan would find this
    with pytest.raises(QueryFailed):
        backend.query("SELECT * FROM person")


def test_load_frame_rejects_columns_the_cdm_lacks(duck: DuckDBBackend) -> None:
    with pytest.raises(InvalidInput, match="no column"):
        duck.load_frame("sde_opt_out", pd.DataFrame({"person_id": [1], "nhs_number": ["x"]}))


def test_load_node_into_duckdb_round_trips(tmp_path: Path, duck: DuckDBBackend) -> None:
    source = tmp_path / "lth.duckdb"
    writer = DuckDBBackend(source)
    for table in all_tables():
        writer.create_table(table)
    writer.load_frame("sde_opt_out", pd.DataFrame({"person_id": [3, 5]}))
    writer.execute("CREATE TABLE scratch (a INTEGER)")
    writer.close()

    target = DuckDBBackend()
    result = load_node(source, target, progress=False)
    assert result.rows["sde_opt_out"] == 2
    assert result.skipped == ("scratch",)
    assert set(all_tables()) <= target.table_names()
    assert target.query("SELECT SUM(person_id) AS s FROM sde_opt_out")["s"].tolist() == [8]


def test_load_node_needs_a_node_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no node file"):
        load_node(tmp_path / "nope.duckdb", DuckDBBackend(), progress=False)


# -- dialect fixes (the proxy's transpiler) ---------------------------------------


def test_there_is_one_transpiler() -> None:
    import sde.backends.dialect

    assert sde.backends.dialect.transpile is transpile
    assert sde.backends.dialect.FIXES is FIXES


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY year_of_birth DESC) AS p "
         "FROM person", "postgres"),
        ("SELECT quantile_disc(year_of_birth, 0.9) AS p FROM person", "duckdb"),
    ],
)  # fmt: skip
def test_the_proxy_sends_spark_exact_percentiles(sql: str, dialect: str) -> None:
    scope = Scope.from_dict(
        {"project": "demo", "access": "rows", "tables": {"person": ["year_of_birth"]}}
    )
    spark_sql = prepare(sql, RuleContext(scope, dialect)).sql("spark")
    assert "APPROX" not in spark_sql.upper()
    assert "PERCENTILE_DISC(0.9) WITHIN GROUP (ORDER BY" in spark_sql


def test_spark_keeps_exact_percentiles() -> None:
    sql = "SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY v DESC) AS p FROM t"
    spark_sql = transpile(sql, "spark")
    assert "APPROX" not in spark_sql.upper()
    assert "PERCENTILE_DISC(0.9) WITHIN GROUP (ORDER BY v DESC" in spark_sql


def test_percentiles_run_on_duckdb(duck: DuckDBBackend) -> None:
    sql = "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY year_of_birth) AS m FROM person"
    assert duck.query(transpile(sql, "duckdb"))["m"].tolist() == [1980.0]


def test_transpile_refuses_an_unknown_dialect() -> None:
    with pytest.raises(ConfigurationError):
        transpile("SELECT 1", "oracle")


# -- missing engines -----------------------------------------------------------------


def test_missing_postgresql_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from sde.backends import pg_local

    monkeypatch.delenv("SDE_PG_BINDIR", raising=False)
    monkeypatch.setattr(pg_local.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(pg_local.shutil, "which", lambda name: None)
    with pytest.raises(BackendUnavailable, match="apt-get install postgresql"):
        pg_local.find_bindir()


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from sde.backends import spark

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(spark.shutil, "which", lambda name: None)
    with pytest.raises(BackendUnavailable, match="Java 17"):
        spark.local_session()


# -- what the proxy asks of a backend --------------------------------------------------


def test_query_stops_reading_at_max_rows(duck: DuckDBBackend) -> None:
    frame = duck.query("SELECT range AS n FROM range(10) ORDER BY n DESC", max_rows=3)
    assert frame["n"].tolist() == [9, 8, 7]


def test_query_timeout_overrides_the_backend_default() -> None:
    backend = DuckDBBackend()  # no statement_timeout of its own
    with pytest.raises(QueryFailed) as caught:
        backend.query("SELECT COUNT(*) AS n FROM range(100000000000) a", timeout_s=0.2)
    assert caught.value.rule == "engine.timeout"


def test_an_extract_hands_engine_failures_to_the_connection(duck: DuckDBBackend) -> None:
    extract = BackendExtract(duck, ("lth",))
    assert extract.dialect == "duckdb"
    with pytest.raises(EngineFailure) as caught:
        extract.run("SELECT COUNT(*) AS n FROM range(100000000000) a", timeout_s=0.2, max_rows=5)
    assert caught.value.rule == "engine.timeout"
    with pytest.raises(EngineFailure) as caught:
        extract.run("SELECT CAST('NHS 999' AS INTEGER) AS x", timeout_s=5, max_rows=5)
    assert caught.value.rule == "engine.error"
    assert "999" in caught.value.engine_message  # for the audit log only
    assert "999" not in str(caught.value)
    # nothing the connection is handed leads back to the engine's own exception or frames
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    frames = []
    tb = caught.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert not [f for f in frames if f.endswith("backends/duckdb.py")]


def test_normalise_keeps_conforming_frames_and_maps_the_rest() -> None:
    frame = arrow_to_frame(pa.table({"n": pa.array([1, None], pa.int64())}))
    assert normalise(frame) is frame
    raw = pd.DataFrame(
        {
            "i": [1, 2],
            "f": pd.array([1.5, 2.5], dtype="float32"),
            "t": pd.to_datetime(["2020-01-01", "2020-01-02"]).tz_localize("Europe/London"),
            "b": [True, False],
        }
    )
    out = normalise(raw)
    assert [str(t) for t in out.dtypes] == ["Int64", "float64", "datetime64[ns]", "boolean"]
    assert out["t"].iloc[0] == pd.Timestamp("2020-01-01 00:00")


def _scope() -> dict[str, object]:
    return {"project": "demo", "access": "rows", "tables": {"person": ["person_id"]}}


def test_connect_refuses_an_input_two_engines_could_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sde

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dbname=sde").mkdir()  # a folder, and a libpq DSN
    with pytest.raises(ConfigurationError) as caught:
        sde.connect("dbname=sde", scope=_scope())
    assert caught.value.rule == "connect.ambiguous"
    assert "duckdb or postgresql" in caught.value.message
    with pytest.raises(ConfigurationError) as caught:
        sde.connect("postgresql://sde@db/sde", scope=_scope(), spark=object(), node="lth")
    assert caught.value.rule == "connect.ambiguous"


def test_connect_names_what_it_can_open(tmp_path: Path) -> None:
    import sde

    with pytest.raises(ConfigurationError) as caught:
        sde.connect(tmp_path / "missing", scope=_scope())
    assert caught.value.rule == "connect.path"
    assert [s.engine for s in SOURCES] == ["duckdb", "postgresql", "spark"]
    assert is_postgres_address("host=db port=5432 dbname=sde user=ana")
    assert is_postgres_address("postgres://db/sde")
    assert not is_postgres_address(str(tmp_path / "run=1"))


def test_integers_past_int64_become_doubles_not_errors(duck: DuckDBBackend) -> None:
    # SUM of 63-bit pseudonyms can pass int64 (a HUGEINT): an answer, not an exception.
    big = "SELECT SUM(x) AS s FROM (VALUES (9223372036854775807), (10)) t(x)"
    frame = duck.query(big)
    assert str(frame.dtypes["s"]) == "float64"
    assert frame["s"].iloc[0] == pytest.approx(9.223372036854775817e18)
    rows = rows_to_frame(["s"], ["integer"], [(2**64,), (None,)])
    assert str(rows.dtypes["s"]) == "float64"
