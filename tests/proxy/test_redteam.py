"""Red-team regressions: each test pins a hole that was found open, and its fix.

Engine-independent refusals are corpus entries (``corpus/redteam.yaml``); what
needs data, several projects or a particular engine is here:

- row order: extract tables used to keep the node's storage order (raw ids
  ascending), so a row's position gave its raw id's rank and two projects listed
  the same persons in the same order, linking their pseudonyms;
- aggregates mode: person-level data reaching the outer query through CTE chains,
  broadcast subqueries or cross-person windows, with no person count behind it;
- comments and hints: nothing of the researcher's text reaches an engine.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

import sde
from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext
from sde.proxy.pipeline import prepare
from sde.pseudonym import pseudonymise
from sde.scope import Scope
from tests.fixtures.proxy import scope_with
from tests.proxy.compare import rows
from tests.proxy.sentinel_data import SCOPE, sentinel_hits

OTHER = scope_with(project="other-study")
AGGREGATES = scope_with(project="htn-aggregates", access="aggregates")


def _raw(folder: Path, node: str, sql: str) -> list[int]:
    with duckdb.connect(str(folder / f"{node}.duckdb"), read_only=True) as con:
        return [r[0] for r in con.execute(sql).fetchall()]


def _decoder(
    nodes: Any, project: str, namespace: str, sql: str, node_names: tuple[str, ...]
) -> dict[int, tuple[int, int]]:
    """pseudonym -> (node index, raw id) for the project's key."""
    key = nodes.key(project)
    out: dict[int, tuple[int, int]] = {}
    for index, node in enumerate(node_names):
        raw = _raw(nodes.folder, node, sql)
        for pseud, rid in zip(pseudonymise(key, node, namespace, raw), raw, strict=True):
            assert pseud is not None
            out[pseud] = (index, rid)
    return out


def _rank_correlation(values: list[int]) -> float:
    positions = np.arange(len(values))
    ranks = pd.Series(values).rank().to_numpy()
    return float(np.corrcoef(positions, ranks)[0, 1])


def _order(conn: Any, table: str, column: str) -> list[int]:
    return [int(v) for v in conn.sql(f"SELECT {column} FROM {table}")[column]]


ORDER_CASES = [
    ("person", "person_id", "person", "SELECT person_id FROM person"),
    ("measurement", "measurement_id", "measurement", "SELECT measurement_id FROM measurement"),
]


@pytest.mark.parametrize(("table", "column", "namespace", "raw_sql"), ORDER_CASES)
def test_extract_order_reveals_no_raw_id_order(
    table: str, column: str, namespace: str, raw_sql: str, engine_case: Any, sentinel_nodes: Any
) -> None:
    """Rows come back in keyed-pseudonym order: their positions say nothing of raw ids."""
    nodes = ("elht", "lth") if engine_case.engine == "duckdb" else ("lth",)
    decode = _decoder(sentinel_nodes, SCOPE["project"], namespace, raw_sql, nodes)
    got = _order(engine_case.conn, table, column)
    assert got == sorted(got)  # the order is the pseudonym's, a keyed permutation
    raw = [decode[p][1] for p in got]
    assert raw != sorted(raw)
    assert abs(_rank_correlation(raw)) < 0.5
    if engine_case.engine == "duckdb":  # pooled: the nodes are interleaved, not stacked
        node_of = [decode[p][0] for p in got]
        switches = sum(a != b for a, b in itertools.pairwise(node_of))
        assert switches > len(got) // 4


def _project_orders(make: Any, sentinel_nodes: Any, nodes: tuple[str, ...]) -> list[list[int]]:
    orders = []
    for scope in (SCOPE, OTHER):
        with make(scope) as conn:
            decode = _decoder(
                sentinel_nodes, scope["project"], "person", "SELECT person_id FROM person", nodes
            )
            orders.append([decode[p][1] for p in _order(conn, "person", "person_id")])
    return orders


@pytest.mark.parametrize("engine", ["duckdb", "postgres", "spark"])
def test_two_projects_do_not_list_persons_in_the_same_order(
    engine: str, sentinel_nodes: Any, request: pytest.FixtureRequest
) -> None:
    """Same node, two projects: zipping their results row by row must not pair persons."""
    registry = sentinel_nodes.registry
    if engine == "duckdb":

        def make(scope: dict[str, Any]) -> Any:
            return sde.connect(sentinel_nodes.folder / "lth.duckdb", scope=scope)

    elif engine == "postgres":
        dsn = request.getfixturevalue("pg_sentinel_dsn")

        def make(scope: dict[str, Any]) -> Any:
            return sde.connect(dsn, scope=scope, schema="lth", registry=registry)

    else:
        spark = request.getfixturevalue("spark")
        warehouse = request.getfixturevalue("spark_sentinel_warehouse")

        def make(scope: dict[str, Any]) -> Any:
            return sde.connect(warehouse, scope=scope, spark=spark, node="lth", registry=registry)

    first, second = _project_orders(make, sentinel_nodes, ("lth",))
    assert sorted(first) == sorted(second)  # the same persons...
    same_place = sum(a == b for a, b in zip(first, second, strict=True))
    assert same_place < len(first) // 4  # ...in unrelated orders


# -- aggregates mode ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def aggregates(sentinel_nodes: Any) -> Any:
    conn = sde.connect(sentinel_nodes.folder, scope=AGGREGATES, user="tester")
    yield conn
    conn.close()


SMALL_GROUP_ATTACKS = [
    # a CTE chain hid the persons from the count: groups of 2 came back
    "WITH w AS (SELECT year_of_birth AS y FROM person WHERE year_of_birth < 1932), "
    "v AS (SELECT y FROM w) SELECT v.y, COUNT(*) AS n FROM v GROUP BY 1",
    # one person's value broadcast to every row of a counted source
    "SELECT t.y, COUNT(*) AS n FROM (SELECT person_id, (SELECT MAX(q.year_of_birth) "
    "FROM person q WHERE q.year_of_birth < 1935) AS y FROM person) t GROUP BY t.y",
    "SELECT t.v, COUNT(*) AS n FROM (SELECT m.person_id, MAX(m.value_as_number) OVER () AS v "
    "FROM measurement m) t GROUP BY 1",
    # a group of non-person rows filtered by one person's data: no count at all
    "SELECT c.concept_name, COUNT(*) AS n FROM concept c WHERE c.concept_id IN "
    "(SELECT condition_concept_id FROM condition_occurrence WHERE person_id IN "
    "(SELECT person_id FROM person WHERE year_of_birth = 1930)) GROUP BY 1",
    # MAX under another name
    "SELECT gender_concept_id, PERCENTILE_DISC(1.0) WITHIN GROUP (ORDER BY year_of_birth) "
    "AS mx FROM person GROUP BY 1",
]


@pytest.mark.parametrize("sql", SMALL_GROUP_ATTACKS)
def test_aggregates_attacks_are_refused(sql: str, aggregates: Any) -> None:
    with pytest.raises(ScopeViolation) as info:
        aggregates.sql(sql)
    assert info.value.rule.startswith("aggregates.")
    assert not sentinel_hits(info.value.message)


LEGITIMATE = {
    "cohort-in": "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p WHERE p.person_id IN "
    "(SELECT co.person_id FROM condition_occurrence co WHERE co.condition_concept_id IN "
    "(SELECT a.descendant_concept_id FROM concept_ancestor a WHERE a.ancestor_concept_id = "
    "320128)) GROUP BY 1",
    "exists": "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p WHERE NOT EXISTS "
    "(SELECT 1 FROM death d WHERE d.person_id = p.person_id) GROUP BY 1",
    "per-person-cte": "WITH w AS (SELECT m.person_id, AVG(m.value_as_number) AS v FROM "
    "measurement m GROUP BY m.person_id) SELECT p.gender_concept_id, COUNT(*) AS n, "
    "AVG(w.v) AS v FROM person p JOIN w ON w.person_id = p.person_id GROUP BY 1",
    "per-person-window": "SELECT p.gender_concept_id, COUNT(*) AS n FROM (SELECT m.person_id, "
    "ROW_NUMBER() OVER (PARTITION BY m.person_id ORDER BY m.measurement_date) AS k FROM "
    "measurement m) t JOIN person p ON p.person_id = t.person_id WHERE t.k = 1 GROUP BY 1",
    "lateral": "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p, LATERAL (SELECT "
    "m.person_id FROM measurement m WHERE m.person_id = p.person_id LIMIT 1) l GROUP BY 1",
    "median-filter": "SELECT gender_concept_id, COUNT(*) AS n, PERCENTILE_CONT(0.5) WITHIN "
    "GROUP (ORDER BY year_of_birth) AS md, AVG(year_of_birth) FILTER (WHERE year_of_birth > "
    "1950) AS a FROM person GROUP BY 1",
}


@pytest.mark.parametrize("name", sorted(LEGITIMATE))
def test_aggregates_research_shapes_still_run(name: str, aggregates: Any, reference: Any) -> None:
    """Per-person subqueries and CTEs pass, and agree with the hand-filtered reference."""
    sql = LEGITIMATE[name]
    got = aggregates.sql(sql)
    assert len(got) > 0
    assert not sentinel_hits(got)
    tree = prepare(sql, RuleContext(Scope.load(SCOPE)))  # rows mode: same query, no counts
    expected = reference.execute(tree.sql("duckdb")).fetch_df()
    # groups under the threshold are dropped; here every group is large
    assert (got["n"] >= Scope.load(AGGREGATES).threshold).all()
    assert rows(got) == rows(expected)


# -- comments and hints ------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "spark"])
def test_no_comment_reaches_an_engine(dialect: str) -> None:
    sql = (
        "/*+ REPARTITION(100000) */ SELECT year_of_birth -- a /* nested\n/* x */ FROM person /* */"
    )
    prepared = prepare(sql, RuleContext(Scope.load(SCOPE), dialect))
    for engine in ("postgres", "duckdb", "spark"):
        text = prepared.sql(engine)
        assert "/*" not in text
        assert "--" not in text


def test_sentinel_search_looks_inside_list_cells() -> None:
    frame = pd.DataFrame({"l": [np.array([1976, 1111]), None], "s": [["SENTINEL-OOC"], "ok"]})
    assert sentinel_hits(frame) == ["SENTINEL-OOC", "l=1111"]


# -- error oracles -----------------------------------------------------------------------

ORACLES = {
    # each fails on exactly the planted out-of-scope rows, and only there
    "out-of-cohort": "SELECT COUNT(*) AS n FROM person "
    "WHERE 1 / (year_of_birth - 1111) IS NOT NULL",
    "opted-out": "SELECT COUNT(*) AS n FROM person WHERE 1 / (year_of_birth - 1112) IS NOT NULL",
    "out-of-period": "SELECT COUNT(*) AS n FROM measurement "
    "WHERE 1 / (value_as_number - 16180.25) IS NOT NULL",
    "out-of-period-cast": "SELECT COUNT(*) AS n FROM condition_occurrence "
    "WHERE CAST(condition_source_value AS INTEGER) > 0",
}


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_error_oracles_say_nothing_about_out_of_scope_rows(name: str, engine_case: Any) -> None:
    """A query that would fail on an out-of-scope row succeeds: no such row exists for it."""
    sql = ORACLES[name]
    got = engine_case.conn.sql(sql)
    table = sql.split(" FROM ")[1].split()[0]
    expected = engine_case.reference.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    assert int(got.n[0]) == expected


# -- the audit log takes any text --------------------------------------------------------


def test_a_nul_in_the_query_is_refused_and_audited_on_a_postgres_registry(
    sentinel_nodes: Any, pg_server: Any
) -> None:
    """PostgreSQL text cannot hold NUL: the refusal used to crash the audit append with a
    driver error (not an SDEError) and go unrecorded."""
    from psycopg.conninfo import conninfo_to_dict

    from sde.audit import AuditLog

    info = conninfo_to_dict(pg_server.create_database("redteam_registry"))
    url = f"postgresql+psycopg://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    with sde.connect(sentinel_nodes.folder / "lth.duckdb", scope=SCOPE, registry=url) as conn:
        with pytest.raises(ScopeViolation) as err:
            conn.sql("SELECT year_of_birth FROM person\x00; DROP TABLE person")
        assert err.value.rule == "parse.control-character"
        last = AuditLog(conn.registry).entries()[-1]
        assert last.outcome == "refused"
        assert last.sql.startswith("SELECT year_of_birth FROM person")
        assert "\x00" not in last.sql
        assert AuditLog(conn.registry).verify().ok
