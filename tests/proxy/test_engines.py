"""The barrier on PostgreSQL and Spark: cast-error leak, generic errors, second guards.

On each engine, a scope filter written as a subquery of the raw node lets the
optimiser evaluate a researcher's failing cast on out-of-scope rows, and the
error names a planted sentinel. Through the proxy the predicate runs on the
materialised extract: no out-of-scope row exists to fail on.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sde.audit import AuditLog
from sde.errors import QueryFailed, ScopeViolation
from tests.proxy.corpus import load, outcome
from tests.proxy.sentinel_data import sentinel_hits

pytestmark = pytest.mark.slow

NAIVE = (
    "SELECT COUNT(*) FROM (SELECT * FROM {t} c WHERE c.person_id IN "
    "(SELECT person_id FROM {co} WHERE condition_concept_id = 320128) "
    "AND c.condition_start_date >= DATE '2015-01-01') s "
    "WHERE CAST(s.condition_source_value AS INTEGER) > 0"
)
PROXIED = (
    "SELECT COUNT(*) AS n FROM condition_occurrence "
    "WHERE CAST(condition_source_value AS INTEGER) > 0"
)
FAILING = "SELECT CAST(CAST(year_of_birth AS VARCHAR) || 'x' AS INTEGER) AS y FROM person"


def test_postgres_cast_leak(pg_scoped: Any, pg_sentinel_dsn: str) -> None:
    with psycopg.connect(pg_sentinel_dsn) as raw, pytest.raises(psycopg.Error) as info:
        raw.execute(NAIVE.format(t="lth.condition_occurrence", co="lth.condition_occurrence"))
    assert sentinel_hits(str(info.value))  # the hazard is real on the raw node
    total = pg_scoped.sql("SELECT COUNT(*) AS n FROM condition_occurrence")
    assert pg_scoped.sql(PROXIED).n[0] == total.n[0]


def test_spark_cast_leak(spark_scoped: Any, spark: Any, spark_sentinel_warehouse: Any) -> None:
    from sde.backends.tables import spark_schema

    raw = spark.newSession()
    folder = spark_sentinel_warehouse / "lth" / "condition_occurrence"
    raw.read.schema(spark_schema("condition_occurrence")).parquet(
        str(folder)
    ).createOrReplaceTempView("co")
    with pytest.raises(Exception) as info:  # noqa: PT011 - any Spark error type
        raw.sql(NAIVE.format(t="co", co="co")).collect()
    assert sentinel_hits(str(info.value))
    total = spark_scoped.sql("SELECT COUNT(*) AS n FROM condition_occurrence")
    assert spark_scoped.sql(PROXIED).n[0] == total.n[0]


@pytest.mark.parametrize("fixture", ["pg_scoped", "spark_scoped"])
def test_engine_errors_are_generic(fixture: str, request: pytest.FixtureRequest) -> None:
    conn = request.getfixturevalue(fixture)
    with pytest.raises(QueryFailed) as info:
        conn.sql(FAILING)
    assert info.value.rule == "engine.error"
    assert not any(ch.isdigit() for ch in info.value.message)
    last = AuditLog(conn.registry).entries()[-1]
    assert last.outcome == "error"
    assert last.detail
    assert last.sql == FAILING


def test_postgres_role_is_read_only_and_confined(pg_scoped: Any) -> None:
    con = pg_scoped._extract.backend._con  # the connection logged in as the project role
    for attempt in (
        "SELECT * FROM lth.person",
        "SELECT * FROM lth.sde_opt_out",
        "CREATE TABLE x (a int)",
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT set_config('role', 'sde', false)",
        "SET ROLE sde",
    ):
        with pytest.raises(psycopg.Error):
            con.execute(attempt)
        con.rollback()
    row = con.execute(
        "SELECT current_user, current_setting('default_transaction_read_only')"
    ).fetchone()
    con.rollback()
    assert row is not None
    assert row[0] == pg_scoped._extract.role
    assert row[1] == "on"


def test_postgres_timeout(pg_sentinel_dsn: str, sentinel_nodes: Any) -> None:
    import sde
    from tests.proxy.sentinel_data import SCOPE

    with sde.connect(
        pg_sentinel_dsn, scope=SCOPE, schema="lth", registry=sentinel_nodes.registry, timeout_s=0.05
    ) as conn:
        with pytest.raises(QueryFailed) as info:
            conn.sql(
                "SELECT COUNT(*) FROM measurement a CROSS JOIN measurement b "
                "CROSS JOIN condition_occurrence c "
                "WHERE a.value_as_number * b.value_as_number > c.person_id"
            )
        assert info.value.rule == "limits.timeout"


def test_spark_session_holds_only_project_views(spark_scoped: Any) -> None:
    session = spark_scoped._extract.backend.spark
    views = {t.name for t in session.catalog.listTables() if t.isTemporary}
    from tests.proxy.sentinel_data import SCOPE

    assert views == set(SCOPE["tables"])
    assert session.conf.get("spark.sql.runSQLOnFiles") == "false"


BARRIER = [c for c in load() if c.rules == ("barrier",) and c.scope == "rows"]


@pytest.mark.parametrize("fixture", ["pg_scoped", "spark_scoped"])
def test_barrier_corpus_on_engine(fixture: str, request: pytest.FixtureRequest) -> None:
    conn = request.getfixturevalue(fixture)
    for case in BARRIER:
        if case.dialect != "postgres" and any(
            c.sql == case.sql and c.dialect == "postgres" for c in BARRIER
        ):
            continue
        frame, error = outcome(lambda case=case: conn.sql(case.sql, dialect=case.dialect))
        if error is not None:
            assert not sentinel_hits(error.message), (case.id, error.message)
            continue
        assert not sentinel_hits(frame), case.id


def test_postgres_aggregates_mode(pg_sentinel_dsn: str, sentinel_nodes: Any) -> None:
    import sde
    from tests.fixtures.proxy import scope_with

    scope = scope_with(project="htn-agg-pg", access="aggregates")
    with sde.connect(
        pg_sentinel_dsn, scope=scope, schema="lth", registry=sentinel_nodes.registry
    ) as conn:
        frame = conn.sql("SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1")
        # the report no longer says how many groups were cut (issue 8): check the cut
        assert "suppressed_groups" not in frame.attrs["sdc"]
        assert frame.empty or (frame.n >= 10).all()
        assert list(frame.columns) == ["year_of_birth", "n"]
        total = conn.sql("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1")
        assert int(total.n.sum()) == 108
        with pytest.raises(ScopeViolation):
            conn.sql("SELECT person_id FROM person")
    loose = scope_with(project="htn-agg-pg", access="aggregates", sdc={"threshold": 1})
    with sde.connect(
        pg_sentinel_dsn, scope=loose, schema="lth", registry=sentinel_nodes.registry
    ) as conn:
        every = conn.sql("SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1")
        assert (every.n < 10).any()  # small groups exist, and the threshold removed them
        assert set(frame.year_of_birth) == set(every.year_of_birth[every.n >= 10])


def test_registry_on_postgres(pg_server: Any) -> None:
    from sqlalchemy.engine import make_url

    from sde.audit import AuditRecord
    from sde.registry import open_registry
    from sde.registry.keys import KeyStore

    dsn = psycopg.conninfo.conninfo_to_dict(pg_server.create_database("proxy_registry"))
    url = make_url(
        f"postgresql+psycopg://{dsn['user']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}"
    )
    engine = open_registry(url.render_as_string(hide_password=False))
    keys = KeyStore(engine)
    key = keys.project_key("demo")
    assert keys.project_key("demo") == key
    assert len(key) == 32
    log = AuditLog(engine)
    for i in range(3):
        log.append(
            AuditRecord(
                user="ana", project="demo", scope_version="v", action="sql",
                sql=f"SELECT {i}", outcome="ok", rows=i, duration_ms=0.25 * i,
            )
        )  # fmt: skip
    assert log.verify().ok
    engine.dispose()
