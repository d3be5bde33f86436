"""``ORDER BY ALL`` in every dialect researchers write, on every engine.

DuckDB and Spark parse ``ALL`` as a keyword; PostgreSQL (the default dialect of
researchers' SQL), where ``ALL`` is reserved and ``ORDER BY ALL`` is no SQL of its
own, reads it as an unquoted column named ``all``, which the column rule refused as
"column all is not available". The ``shorthands`` rule now spells it out in every
dialect: every output of the query (a SELECT or a set operation), left to right, in the
direction written. A quoted ``"all"`` is still a column; ``ALL`` beside other sort
keys, or inside a window or an aggregate, is refused naming ``ORDER BY ALL``.
"""

from __future__ import annotations

from typing import Any

import pytest

from sde.errors import ScopeViolation
from sde.proxy.context import Limits, RuleContext
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.fixtures.proxy import EngineCase, scope_with
from tests.proxy.sentinel_data import SCOPE, sentinel_hits

DIALECTS = ("postgres", "duckdb", "spark")
AGGREGATES = scope_with(project="order-all-aggregates", access="aggregates")

#: A query with ORDER BY ALL and the same query with its outputs listed by position.
SAME = {
    "select": (
        "SELECT gender_concept_id, year_of_birth FROM person ORDER BY ALL",
        "SELECT gender_concept_id, year_of_birth FROM person ORDER BY 1, 2",
    ),
    "desc": (
        "SELECT gender_concept_id, year_of_birth FROM person ORDER BY ALL DESC",
        "SELECT gender_concept_id, year_of_birth FROM person ORDER BY 1 DESC, 2 DESC",
    ),
    "nulls": (
        "SELECT gender_concept_id, year_of_birth FROM person ORDER BY ALL DESC NULLS LAST",
        "SELECT gender_concept_id, year_of_birth FROM person "
        "ORDER BY 1 DESC NULLS LAST, 2 DESC NULLS LAST",
    ),
    "upper-case": (
        "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY ALL ORDER BY All",
        "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY 1, 2",
    ),
    "subquery": (
        "SELECT t.y FROM (SELECT year_of_birth AS y, gender_concept_id AS g FROM person "
        "ORDER BY ALL LIMIT 5) t",
        "SELECT t.y FROM (SELECT year_of_birth AS y, gender_concept_id AS g FROM person "
        "ORDER BY 1, 2 LIMIT 5) t",
    ),
    "union": (
        "SELECT year_of_birth AS v FROM person UNION SELECT gender_concept_id FROM person "
        "ORDER BY ALL DESC",
        "SELECT year_of_birth AS v FROM person UNION SELECT gender_concept_id FROM person "
        "ORDER BY 1 DESC",
    ),
}


def _prepared(sql: str, dialect: str, scope: dict[str, Any] = SCOPE) -> Any:
    return prepare(sql, RuleContext(Scope.load(scope), dialect, Limits()))


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(SAME))
def test_order_by_all_means_every_output_in_order(name: str, dialect: str) -> None:
    shorthand, spelled = SAME[name]
    got = _prepared(shorthand, dialect)
    want = _prepared(spelled, dialect)
    for engine in DIALECTS:
        assert got.sql(engine) == want.sql(engine), (engine, got.sql(engine))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_order_by_all_in_aggregates_mode(dialect: str) -> None:
    sql = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY ALL ORDER BY ALL"
    spelled = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY 1, 2"
    got = _prepared(sql, dialect, AGGREGATES)
    assert got.threshold is not None
    assert got.sql("postgres") == _prepared(spelled, dialect, AGGREGATES).sql("postgres")


def test_a_quoted_all_is_a_column_not_the_shorthand() -> None:
    tree = _prepared('SELECT year_of_birth AS "all" FROM person ORDER BY "all"', "postgres")
    assert 'ORDER BY "all"' in tree.sql("postgres")
    with pytest.raises(ScopeViolation) as info:
        _prepared('SELECT year_of_birth FROM person ORDER BY "all"', "postgres")
    assert info.value.rule == "columns.not-allowed"


REFUSED = {
    "beside-other-keys": "SELECT gender_concept_id, year_of_birth FROM person ORDER BY ALL, 1",
    "window": "SELECT ROW_NUMBER() OVER (ORDER BY ALL) AS r FROM person",
    "star": "SELECT * FROM person ORDER BY ALL",
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_order_by_all_where_it_cannot_be_spelled_out_is_refused_by_name(
    name: str, dialect: str
) -> None:
    with pytest.raises(ScopeViolation) as info:
        _prepared(REFUSED[name], dialect)
    assert info.value.rule == "syntax.unsupported", info.value.message
    assert "ORDER BY ALL" in info.value.message


def test_group_by_all_with_keys_is_the_standard_quantifier() -> None:
    """PostgreSQL's ``GROUP BY ALL a`` is ``GROUP BY a`` (ALL is the default set
    quantifier), not DuckDB's "every output without an aggregate"."""
    outputs = "SELECT gender_concept_id, year_of_birth, COUNT(*) AS n FROM person"
    got = _prepared(f"{outputs} GROUP BY ALL gender_concept_id", "postgres")
    spelled = _prepared(f"{outputs} GROUP BY gender_concept_id", "postgres")
    assert got.sql("postgres") == spelled.sql("postgres")


ON_ENGINES = {
    "group-order": (
        "SELECT gender_concept_id, year_of_birth, COUNT(*) AS n FROM person "
        "GROUP BY ALL ORDER BY ALL DESC",
        "SELECT gender_concept_id, year_of_birth, COUNT(*) AS n FROM person "
        "GROUP BY 1, 2 ORDER BY 1 DESC, 2 DESC, 3 DESC",
    ),
    "union": (
        "SELECT year_of_birth AS v FROM person UNION SELECT gender_concept_id FROM person "
        "ORDER BY ALL",
        "SELECT year_of_birth AS v FROM person UNION SELECT gender_concept_id FROM person "
        "ORDER BY 1",
    ),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(ON_ENGINES))
def test_order_by_all_runs_in_order_on_every_engine(
    name: str, dialect: str, engine_case: EngineCase
) -> None:
    sql, reference_sql = ON_ENGINES[name]
    got = engine_case.conn.sql(sql, dialect=dialect)
    expected = engine_case.reference.execute(reference_sql).fetchall()
    assert len(got) > 1
    assert not sentinel_hits(got)
    assert [tuple(int(v) for v in row) for row in got.itertuples(index=False)] == [
        tuple(int(v) for v in row) for row in expected
    ]
