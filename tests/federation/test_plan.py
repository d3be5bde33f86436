"""plan_query: which queries split, how, and the refusals that name the part.

What merges correctly is in test_merge_equals_pooled.py; here: the kind of each plan, the
node part's shape (docs/federation.md), the refusals in aggregates and DP projects, the
per-node fallback of rows projects (with a ``node`` column), rows plans against the pooled
answer, and the DP engine's exact SQL planning as ``aggregate``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

import sde
from sde.connection import Connection
from sde.dp.engine import DPEngine
from sde.errors import InvalidInput, QueryFailed, ScopeViolation, SDEError
from sde.federation.locality import NotLocal
from sde.federation.locality import check as check_local
from sde.federation.merge import merge
from sde.federation.plan import FederatedPlan, plan_query
from sde.proxy.context import RuleContext
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.federation.queries import AGGREGATE_QUERIES, ROWS_SCOPE

NODES = ("lth", "elht", "umbh")
AGGREGATES = {**ROWS_SCOPE, "project": "plan-aggregates", "access": "aggregates"}
DP = {
    **ROWS_SCOPE,
    "tables": {**ROWS_SCOPE["tables"], "location": "*"},
    "project": "plan-dp",
    "access": "dp",
    "dp": {"epsilon": 100.0, "delta": 1e-6},
}


def ctx(scope: dict[str, Any], **options: Any) -> RuleContext:
    return RuleContext(Scope.load(scope), **options)


# -- the node part's shape ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "sql"), AGGREGATE_QUERIES, ids=[n for n, _ in AGGREGATE_QUERIES])
def test_every_aggregate_node_part_has_the_contract_shape(name: str, sql: str) -> None:
    plan = plan_query(sql, ctx(ROWS_SCOPE))
    assert plan.kind == "aggregate"
    node = sqlglot.parse_one(plan.node_sql, read="postgres")
    assert isinstance(node, exp.Select)
    names = node.named_selects
    keys = [f"f_k{i}" for i in range(plan.keys)]
    assert names == [*keys, *(f"f_a{i}" for i in range(len(plan.partials)))]
    assert tuple(names) == plan.part_columns
    for arg in ("having", "order", "limit", "offset", "distinct", "qualify"):
        assert node.args.get(arg) is None, arg
    assert all(w.find_ancestor(exp.Select) is not node for w in node.find_all(exp.Window))
    group = node.args.get("group")
    assert (len(group.expressions) if group else 0) == plan.keys
    prepare(plan.node_sql, ctx(ROWS_SCOPE))  # a node's own proxy accepts it


#: Shared queries one pooled node of an aggregates project refuses (MIN/MAX, windows...).
AGGREGATES_REFUSED = {
    "min-max",
    "min-max-dates",
    "round-avg",
    "percent-window",
    "rank-window",
    "case-over-key",
    "empty-global",
    "window-running",
    "all-null-values",
    "date-key-as-text",
    "sd-joined-two-keys",
}


@pytest.mark.parametrize(("name", "sql"), AGGREGATE_QUERIES, ids=[n for n, _ in AGGREGATE_QUERIES])
def test_in_an_aggregates_project_what_one_node_accepts_splits(name: str, sql: str) -> None:
    """The node part passes a node's own proxy in the project, and the plan expects the
    hidden person counts that proxy adds."""
    aggregates = ctx(AGGREGATES)
    if name in AGGREGATES_REFUSED:
        with pytest.raises(SDEError):
            prepare(sql, aggregates)
        return
    prepare(sql, aggregates)
    plan = plan_query(sql, aggregates)
    assert plan.kind == "aggregate"
    assert plan.persons >= 1
    assert plan.threshold == 10
    node = prepare(plan.node_sql, aggregates).expression
    # The person counts, as outputs or (when the threshold rule wraps the part) as the
    # counts of its grouped derived table.
    hidden = {
        a.alias for a in node.find_all(exp.Alias) if re.match(r"__sde_(persons_|n)\d+$", a.alias)
    }
    assert len(hidden) == plan.persons


def test_an_average_is_sent_as_a_sum_and_a_count() -> None:
    plan = plan_query("SELECT AVG(year_of_birth) AS a FROM person", ctx(ROWS_SCOPE))
    assert plan.partials == ("sum", "count")
    assert "AVG" not in plan.node_sql.upper()


def test_the_same_partial_is_sent_once() -> None:
    plan = plan_query(
        "SELECT AVG(year_of_birth) AS a, SUM(year_of_birth) AS s, COUNT(year_of_birth) AS c "
        "FROM person",
        ctx(ROWS_SCOPE),
    )
    assert plan.partials == ("sum", "count")


def test_describe_shows_the_node_part_the_merge_and_the_suppression() -> None:
    plan = plan_query(
        "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1", ctx(AGGREGATES)
    )
    described = plan.describe()
    assert described["kind"] == "aggregate"
    assert described["node"] == plan.node_sql
    assert described["merge"] == plan.merge_sql
    assert "__sde_parts" in described["merge"]
    assert "10 persons" in described["suppression"]
    assert plan.persons == 1


# -- refusals and the per-node fallback -------------------------------------------------------

NOT_DECOMPOSABLE = [
    ("SELECT MEDIAN(year_of_birth) AS m FROM person", "MEDIAN(...)"),
    (
        "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY year_of_birth) AS m FROM person",
        "PERCENTILE_CONT(...)",
    ),
    ("SELECT COUNT(DISTINCT year_of_birth) AS n FROM person", "COUNT(DISTINCT ...)"),
    (
        "SELECT COUNT(*) AS n FROM person WHERE year_of_birth > "
        "(SELECT AVG(year_of_birth) FROM person)",
        "the subquery in WHERE",
    ),
    (
        "WITH y AS (SELECT year_of_birth, COUNT(*) AS k FROM person GROUP BY year_of_birth) "
        "SELECT COUNT(*) AS n FROM person p JOIN y ON y.year_of_birth = p.year_of_birth "
        "WHERE y.k > 50",
        "the CTE y",
    ),
    (
        "SELECT COUNT(*) AS n FROM person a JOIN person b ON a.year_of_birth = b.year_of_birth",
        "not all joined on person_id",
    ),
    (
        "SELECT COUNT(*) AS n FROM condition_occurrence c JOIN visit_occurrence v "
        "ON v.visit_occurrence_id = c.condition_occurrence_id",
        "not all joined on person_id",
    ),
    (
        "SELECT gender_concept_id, COUNT(*) * 1.0 / (SELECT COUNT(*) FROM person) AS share "
        "FROM person GROUP BY 1",
        "the subquery in the outputs",
    ),
]


@pytest.mark.parametrize(("sql", "part"), NOT_DECOMPOSABLE)
def test_a_dp_exact_query_that_does_not_split_is_refused_naming_the_part(
    sql: str, part: str
) -> None:
    with pytest.raises(ScopeViolation) as err:
        plan_query(sql, ctx(DP, enforce_access=False))
    assert err.value.rule == "federation.not-decomposable"
    assert part in err.value.message


@pytest.mark.parametrize(
    ("sql", "part"),
    [
        ("SELECT MEDIAN(year_of_birth) AS m FROM person", "MEDIAN(...)"),
        (
            "SELECT gender_concept_id, COUNT(DISTINCT year_of_birth) AS n FROM person GROUP BY 1",
            "COUNT(DISTINCT ...)",
        ),
    ],
)
def test_an_aggregates_query_that_does_not_split_is_refused_naming_the_part(
    sql: str, part: str
) -> None:
    prepare(sql, ctx(AGGREGATES))  # one pooled node accepts it
    with pytest.raises(ScopeViolation) as err:
        plan_query(sql, ctx(AGGREGATES))
    assert err.value.rule == "federation.not-decomposable"
    assert part in err.value.message


@pytest.mark.parametrize(("sql", "part"), NOT_DECOMPOSABLE)
def test_a_rows_project_runs_what_does_not_split_per_node(sql: str, part: str) -> None:
    plan = plan_query(sql, ctx(ROWS_SCOPE))
    assert plan.kind == "per-node"
    assert part in plan.why
    assert plan.describe()["why"] == plan.why
    assert plan.columns[-1] == "node"


def test_refusals_of_one_pooled_node_come_first_and_bad_sql_is_never_a_crash() -> None:
    with pytest.raises(ScopeViolation) as err:
        plan_query("SELECT person_source_value FROM person", ctx(ROWS_SCOPE))
    assert err.value.rule == "columns.not-allowed"
    with pytest.raises(InvalidInput):
        plan_query("SELECT (", ctx(ROWS_SCOPE))
    with pytest.raises(ScopeViolation) as err:
        plan_query("SELECT COUNT(*) FROM concept", ctx(DP, enforce_access=False))
    assert err.value.rule == "federation.not-decomposable"
    assert "reference data" in err.value.message


# -- rows and per-node plans against the pooled answer ----------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('plan-registry') / 'registry.sqlite'}"


def _connect(path: Path, scope: dict[str, Any], registry: str) -> Connection:
    conn = sde.connect(path, scope=scope, registry=registry, user="tester")
    assert isinstance(conn, Connection)
    return conn


@pytest.fixture(scope="module")
def rows_conns(synth_dir: Path, registry: str) -> Iterator[dict[str, Connection]]:
    conns = {"pooled": _connect(synth_dir, ROWS_SCOPE, registry)}
    conns.update({n: _connect(synth_dir / f"{n}.duckdb", ROWS_SCOPE, registry) for n in NODES})
    yield conns
    for conn in conns.values():
        conn.close()


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame.attrs = {}
    return frame


def _run(plan: FederatedPlan, conns: dict[str, Connection]) -> pd.DataFrame:
    parts = {n: conns[n].sql(plan.node_sql) for n in NODES}
    return merge(plan, parts, threshold=None)


def test_rows_are_ordered_and_limited_across_nodes_with_a_node_column(
    rows_conns: dict[str, Connection],
) -> None:
    sql = (
        "SELECT person_id, year_of_birth FROM person WHERE year_of_birth < 1935 "
        "ORDER BY year_of_birth DESC, person_id LIMIT 7 OFFSET 3"
    )
    plan = plan_query(sql, ctx(ROWS_SCOPE))
    assert plan.kind == "rows"
    assert "OFFSET" not in plan.node_sql.upper()
    assert "LIMIT 10" in plan.node_sql.upper()
    got = _run(plan, rows_conns)
    want = rows_conns["pooled"].sql(sql)
    assert list(got.columns) == ["person_id", "year_of_birth", "node"]
    pd.testing.assert_frame_equal(_plain(got.drop(columns="node")), _plain(want))
    for node in NODES:
        mine = set(rows_conns[node].sql("SELECT person_id FROM person")["person_id"])
        assert set(got.loc[got["node"] == node, "person_id"]) <= mine


def test_rows_ordered_by_an_expression_that_is_not_an_output(
    rows_conns: dict[str, Connection],
) -> None:
    sql = (
        "SELECT person_id FROM person WHERE year_of_birth BETWEEN 1940 AND 1941 "
        "ORDER BY year_of_birth * 100 + month_of_birth, person_id LIMIT 12"
    )
    plan = plan_query(sql, ctx(ROWS_SCOPE))
    assert plan.kind == "rows"
    assert "__sde" not in plan.node_sql  # a node refuses internal names in rows
    got = _run(plan, rows_conns)
    want = rows_conns["pooled"].sql(sql)
    assert got["person_id"].tolist() == want["person_id"].tolist()
    assert list(got.columns) == ["person_id", "node"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT DISTINCT p.person_id, p.gender_concept_id FROM condition_occurrence co "
        "JOIN person p ON p.person_id = co.person_id WHERE co.condition_concept_id = 320128 "
        "ORDER BY 1",
        "SELECT person_id, condition_concept_id, ROW_NUMBER() OVER (PARTITION BY person_id "
        "ORDER BY condition_start_date, condition_occurrence_id) AS k FROM condition_occurrence "
        "WHERE condition_concept_id IN (201826, 255573) ORDER BY person_id, k",
    ],
)
def test_distinct_and_windows_per_person_stay_rows(
    sql: str, rows_conns: dict[str, Connection]
) -> None:
    plan = plan_query(sql, ctx(ROWS_SCOPE))
    assert plan.kind == "rows", plan.why
    got = _run(plan, rows_conns)
    want = rows_conns["pooled"].sql(sql)
    pd.testing.assert_frame_equal(_plain(got.drop(columns="node")), _plain(want))


@pytest.mark.parametrize(
    ("sql", "dialect", "part"),
    [
        ("SELECT DISTINCT year_of_birth FROM person", "postgres", "DISTINCT"),
        (
            "SELECT person_id FROM person QUALIFY RANK() OVER (ORDER BY year_of_birth) <= 5",
            "duckdb",
            "QUALIFY",
        ),
    ],
)
def test_distinct_across_persons_and_qualify_run_per_node(
    sql: str, dialect: str, part: str
) -> None:
    plan = plan_query(sql, ctx(ROWS_SCOPE, dialect=dialect))
    assert plan.kind == "per-node"
    assert part in plan.why


@pytest.mark.parametrize(
    ("sql", "ordered"),
    [
        ("SELECT person_id, DENSE_RANK() OVER (ORDER BY year_of_birth) AS r FROM person", False),
        (
            "SELECT person_id, NTILE(4) OVER (ORDER BY year_of_birth, person_id) AS q "
            "FROM person ORDER BY q DESC, person_id LIMIT 15 OFFSET 2",
            True,
        ),
        (
            "SELECT m.measurement_id, m.value_as_number / 2 AS half, RANK() OVER (PARTITION BY "
            "m.measurement_concept_id ORDER BY m.value_as_number DESC) AS r FROM measurement m "
            "WHERE m.measurement_concept_id = 3004410",
            False,
        ),
        ("SELECT COUNT(*) OVER () AS n FROM person WHERE year_of_birth < 1930", False),
        (
            "SELECT person_id, year_of_birth - AVG(year_of_birth) OVER () AS dev, "
            "COUNT(*) OVER (PARTITION BY gender_concept_id) / 7 AS sevenths FROM person",
            False,
        ),
    ],
)
def test_windows_across_persons_run_over_every_nodes_rows(
    sql: str, ordered: bool, rows_conns: dict[str, Connection]
) -> None:
    plan = plan_query(sql, ctx(ROWS_SCOPE))
    assert plan.kind == "rows"
    assert "OVER" not in plan.node_sql.upper()
    got = _run(plan, rows_conns).drop(columns="node")
    want = rows_conns["pooled"].sql(sql)
    if not ordered:
        got, want = got.sort_values(list(got.columns)), want.sort_values(list(want.columns))
    pd.testing.assert_frame_equal(_plain(got), _plain(want), check_exact=False, rtol=1e-9)


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        (
            "duckdb",
            "SELECT gender_concept_id, SUM(year_of_birth) // COUNT(*) AS m, "
            "COUNT(*) AS n FROM person GROUP BY ALL ORDER BY ALL",
        ),
        (
            "duckdb",
            "SELECT year_of_birth % 7 AS k, AVG(year_of_birth) / 3 AS a FROM person "
            "GROUP BY 1 ORDER BY k DESC NULLS LAST",
        ),
        (
            "spark",
            "SELECT gender_concept_id, SUM(year_of_birth) / COUNT(*) AS m FROM person "
            "GROUP BY gender_concept_id",
        ),
        (
            "spark",
            "SELECT measurement_concept_id, STDDEV(value_as_number) AS sd, "
            "COUNT(DISTINCT person_id) AS persons FROM measurement GROUP BY 1 ORDER BY 1",
        ),
    ],
)
def test_other_dialects_merge_as_pooled(
    dialect: str, sql: str, rows_conns: dict[str, Connection]
) -> None:
    plan = plan_query(sql, ctx(ROWS_SCOPE, dialect=dialect))
    assert plan.kind == "aggregate"
    assert plan.dialect == dialect
    parts = {n: rows_conns[n].sql(plan.node_sql, dialect=dialect) for n in NODES}
    got = merge(plan, parts, threshold=None)
    want = rows_conns["pooled"].sql(sql, dialect=dialect)
    pd.testing.assert_frame_equal(_plain(got), _plain(want), check_exact=False, rtol=1e-9)


def test_per_node_answers_are_stacked_with_the_node(rows_conns: dict[str, Connection]) -> None:
    sql = "SELECT gender_concept_id, MEDIAN(year_of_birth) AS m FROM person GROUP BY 1"
    plan = plan_query(sql, ctx(ROWS_SCOPE))
    assert plan.kind == "per-node"
    assert "MEDIAN" in plan.why
    got = _run(plan, rows_conns)
    assert list(got.columns) == ["gender_concept_id", "m", "node"]
    for node in NODES:
        alone = rows_conns[node].sql(sql)
        mine = got[got["node"] == node].drop(columns="node").reset_index(drop=True)
        pd.testing.assert_frame_equal(_plain(mine), _plain(alone))


def test_a_node_answering_the_wrong_columns_is_refused() -> None:
    plan = plan_query("SELECT COUNT(*) AS n FROM person", ctx(ROWS_SCOPE))
    with pytest.raises(QueryFailed) as err:
        merge(plan, {"lth": pd.DataFrame({"x": [1]})}, threshold=None)
    assert err.value.rule == "federation.node-shape"
    assert "lth" in err.value.message


def test_parts_that_do_not_stack_are_refused_not_a_crash() -> None:
    plan = plan_query(
        "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1", ctx(ROWS_SCOPE)
    )
    numbers = pd.DataFrame({"f_k0": pd.array([1], "Int64"), "f_a0": pd.array([3], "Int64")})
    words = pd.DataFrame({"f_k0": ["x"], "f_a0": pd.array([3], "Int64")})
    with pytest.raises(QueryFailed) as err:
        merge(plan, {"lth": numbers, "elht": words}, threshold=None)
    assert err.value.rule == "federation.node-shape"
    mixed = pd.DataFrame({"f_k0": [1, "x"], "f_a0": pd.array([3, 4], "Int64")})
    with pytest.raises(QueryFailed) as err:
        merge(plan, {"umbh": mixed}, threshold=None)
    assert "umbh" in err.value.message


def test_distinct_on_a_key_reads_the_merged_keys(rows_conns: dict[str, Connection]) -> None:
    sql = (
        "SELECT DISTINCT ON (gender_concept_id) gender_concept_id, year_of_birth, COUNT(*) AS n "
        "FROM person GROUP BY 1, 2 ORDER BY gender_concept_id, n DESC, year_of_birth"
    )
    plan = plan_query(sql, ctx(ROWS_SCOPE))
    assert plan.kind == "aggregate"
    got = _run(plan, rows_conns)
    pd.testing.assert_frame_equal(_plain(got), _plain(rows_conns["pooled"].sql(sql)))


# -- the DP engine's exact SQL -------------------------------------------------------------------

DP_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id", {}),
    ("SELECT COUNT(*) AS n FROM person", {}),
    ("SELECT SUM(year_of_birth) AS s FROM person", {"bounds": {"year_of_birth": (1900, 2024)}}),
    (
        "SELECT p.gender_concept_id, AVG(m.value_as_number) AS mean FROM person p "
        "JOIN measurement m ON m.person_id = p.person_id "
        "WHERE m.measurement_concept_id = 3004249 GROUP BY p.gender_concept_id",
        {"bounds": {"value_as_number": (50, 250)}},
    ),
    ("SELECT COUNT(DISTINCT person_id) AS n FROM condition_occurrence", {}),
    (
        "SELECT condition_concept_id, COUNT(DISTINCT person_id) AS n FROM condition_occurrence "
        "GROUP BY 1",
        {"keys": {"condition_concept_id": [320128, 201826]}},
    ),
    (
        "SELECT gender_concept_id, VARIANCE(year_of_birth) AS v, STDDEV(year_of_birth) AS sd "
        "FROM person GROUP BY 1",
        {"bounds": {"year_of_birth": (1900, 2024)}},
    ),
    (
        "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY year_of_birth) AS md FROM person",
        {"bounds": {"year_of_birth": (1900, 2024)}},
    ),
    (
        "SELECT gender_concept_id, year_of_birth / 10 AS d, COUNT(*) AS n FROM person "
        "GROUP BY 1, 2",
        {"keys": {"d": list(range(190, 203))}},
    ),
    (
        "SELECT COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 FROM condition_occurrence c "
        "WHERE c.person_id = p.person_id AND c.condition_concept_id = 320128)",
        {},
    ),
    (
        "WITH c AS (SELECT person_id, COUNT(*) AS k FROM condition_occurrence GROUP BY person_id) "
        "SELECT COUNT(*) AS n, AVG(k) AS mk FROM c",
        {"bounds": {"k": (0, 20)}},
    ),
    (
        "SELECT measurement_concept_id, COUNT(*) AS n, AVG(value_as_number) AS m "
        "FROM measurement GROUP BY 1",
        {"bounds": {"value_as_number": (0, 300)}, "max_rows_per_person": 3},
    ),
]


@pytest.fixture(scope="module")
def dp_conns(synth_dir: Path, registry: str) -> Iterator[dict[str, Connection]]:
    conns = {"pooled": _connect(synth_dir, DP, registry)}
    conns.update({n: _connect(synth_dir / f"{n}.duckdb", DP, registry) for n in NODES})
    yield conns
    for conn in conns.values():
        conn.close()


@pytest.mark.parametrize(("sql", "options"), DP_QUERIES)
def test_the_dp_engines_exact_sql_plans_as_aggregate_and_merges_exactly(
    sql: str, options: dict[str, Any], dp_conns: dict[str, Connection]
) -> None:
    pooled = dp_conns["pooled"]
    seen: list[tuple[str, str]] = []

    def run_exact(exact_sql: str, dialect: str) -> pd.DataFrame:
        seen.append((exact_sql, dialect))
        return pooled._run_exact(exact_sql, dialect)

    engine = DPEngine(
        run_exact, registry=pooled.registry, project=DP["project"], budget=(1e6, 1e-6)
    )
    engine.sql_dp(sql, epsilon=1.0, confirm=True, **options)
    assert seen
    for exact_sql, dialect in seen:
        plan = plan_query(exact_sql, ctx(DP, dialect=dialect, enforce_access=False))
        assert plan.kind == "aggregate", plan.describe()
        parts = {n: dp_conns[n]._run_exact(plan.node_sql, dialect) for n in NODES}
        got = merge(plan, parts, threshold=None)
        want = pooled._run_exact(exact_sql, dialect)
        columns = list(want.columns)
        pd.testing.assert_frame_equal(
            _plain(got.sort_values(columns)),
            _plain(want.sort_values(columns)),
            check_exact=False,
            rtol=1e-9,
        )


# -- node-locality, as a table ---------------------------------------------------------------

LOCALITY = [
    # (SQL, node-local?)
    (
        "SELECT COUNT(*) AS n FROM person p WHERE p.year_of_birth IN (SELECT q.year_of_birth "
        "FROM person q UNION ALL SELECT r.year_of_birth FROM person r)",
        False,
    ),
    (
        "SELECT COUNT(*) AS n FROM person p WHERE p.person_id IN (SELECT q.person_id "
        "FROM condition_occurrence q UNION SELECT r.person_id FROM measurement r)",
        True,
    ),
    (
        "SELECT COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 FROM condition_occurrence q "
        "WHERE q.person_id = p.person_id UNION ALL SELECT 1 FROM measurement r "
        "WHERE r.person_id = p.person_id)",
        True,
    ),
    (
        "SELECT COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 FROM condition_occurrence q "
        "WHERE q.person_id = p.person_id UNION ALL SELECT 1 FROM measurement r)",
        False,
    ),
    (
        "SELECT COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 FROM measurement m)",
        False,
    ),
    (
        "SELECT k, COUNT(*) AS n FROM (SELECT DISTINCT person_id, year_of_birth / 10 AS k "
        "FROM person) t GROUP BY k",
        True,
    ),
    (
        "SELECT k, COUNT(*) AS n FROM (SELECT DISTINCT year_of_birth / 10 AS k FROM person) t "
        "GROUP BY k",
        False,
    ),
    (
        "SELECT COUNT(*) AS n FROM (SELECT person_id FROM measurement ORDER BY value_as_number "
        "LIMIT 100) t",
        False,
    ),
    (
        "SELECT r, COUNT(*) AS n FROM (SELECT person_id, ROW_NUMBER() OVER (PARTITION BY "
        "person_id ORDER BY measurement_date) AS r FROM measurement) t GROUP BY r",
        True,
    ),
    (
        "SELECT r, COUNT(*) AS n FROM (SELECT person_id, RANK() OVER (ORDER BY value_as_number) "
        "AS r FROM measurement) t GROUP BY r",
        False,
    ),
    (
        "SELECT COUNT(*) AS n FROM person p JOIN observation o ON o.person_id = p.person_id "
        "LEFT JOIN measurement m ON m.person_id = o.person_id",
        True,
    ),
    (
        "SELECT COUNT(*) AS n FROM person p LEFT JOIN measurement m "
        "ON m.measurement_concept_id = p.gender_concept_id",
        False,
    ),
    (
        "SELECT l.county, COUNT(*) AS n FROM person p JOIN location l "
        "ON l.location_id = p.location_id GROUP BY 1",
        True,
    ),
]


@pytest.mark.parametrize(("sql", "local"), LOCALITY)
def test_what_runs_below_the_outermost_select_must_be_node_local(sql: str, local: bool) -> None:
    exact = ctx(DP, enforce_access=False)
    if local:
        assert plan_query(sql, exact).kind == "aggregate"
        return
    with pytest.raises(ScopeViolation) as err:
        plan_query(sql, exact)
    assert err.value.rule == "federation.not-decomposable"
    assert "node" in err.value.message


def test_person_data_that_names_no_person_is_never_node_local() -> None:
    """No scope may list such a table today; the check stands behind that rule."""
    with pytest.raises(NotLocal) as err:
        check_local(sqlglot.parse_one("SELECT COUNT(*) FROM person p CROSS JOIN note_nlp n"))
    assert "note_nlp" in err.value.reason
