"""Red-team round 3: attacks on the new SQL allowances that were tried and held.

``COLUMNS('regex')``, ``GROUP BY ALL``/``ORDER BY ALL``, ``DISTINCT ON``, constant calendar
CTEs, PIVOT, CTEs named like tables, set operations and the outer-join person links, in
aggregates mode. The holes found in the same round are in
``test_redteam_round3_open.py`` until fixed.
"""

from __future__ import annotations

from typing import Any

import pytest

import sde
from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext
from sde.proxy.pipeline import prepare
from sde.scope import Scope
from tests.fixtures.proxy import scope_with
from tests.proxy.sentinel_data import SCOPE, sentinel_hits

AGGREGATES = scope_with(project="rt3-held", access="aggregates")
#: person_id is not allowlisted anywhere (an aggregates extract still holds it).
NO_PID = scope_with(
    project="rt3-nopid",
    access="aggregates",
    tables={
        **SCOPE["tables"],
        "person": ["gender_concept_id", "year_of_birth"],
        "measurement": ["measurement_concept_id", "value_as_number"],
    },
)


def _prepare(sql: str, scope: dict[str, Any] = AGGREGATES, dialect: str = "postgres") -> Any:
    return prepare(sql, RuleContext(Scope.from_dict(scope), dialect=dialect))


@pytest.fixture(scope="module")
def aggregates(sentinel_nodes: Any) -> Any:
    conn = sde.connect(sentinel_nodes.folder, scope=AGGREGATES, user="tester")
    yield conn
    conn.close()


REFUSED = {
    # PIVOT groups by every other column of the extract, person_id included
    "pivot": (
        "SELECT COUNT(*) AS n FROM (SELECT * FROM person PIVOT (COUNT(*) FOR "
        "race_concept_id IN (8527))) t",
        "postgres",
        "syntax.unsupported",
    ),
    "pivot-duckdb": (
        "SELECT * FROM (PIVOT person ON gender_concept_id USING COUNT(*) GROUP BY year_of_birth)",
        "duckdb",
        "syntax.unsupported",
    ),
    "pivot-statement": (
        "PIVOT person ON gender_concept_id USING COUNT(*)",
        "duckdb",
        "statement.read-only",
    ),
    # COLUMNS anywhere but as a plain output is left to the function allowlist
    "columns-in-aggregate": (
        "SELECT COUNT(*), SUM(COLUMNS('value')) FROM measurement",
        "duckdb",
        "functions.not-allowed",
    ),
    "columns-aliased": (
        "SELECT COLUMNS('year') AS y, COUNT(*) FROM person GROUP BY ALL",
        "duckdb",
        "functions.not-allowed",
    ),
    "columns-star-exclude": (
        "SELECT COLUMNS(* EXCLUDE (year_of_birth)), COUNT(*) FROM person GROUP BY ALL",
        "duckdb",
        "functions.not-allowed",
    ),
    # GROUP BY ALL does not turn a window or a star into a key
    "group-all-window": (
        "SELECT gender_concept_id, COUNT(*) OVER () AS w FROM person GROUP BY ALL",
        "duckdb",
        "aggregates.shape",
    ),
    "group-all-star": (
        "SELECT *, COUNT(*) FROM person GROUP BY ALL",
        "duckdb",
        "syntax.unsupported",
    ),
    # set operations: outermost, or as a CTE whose persons cannot be traced
    "union-outer": (
        "SELECT gender_concept_id, COUNT(*) FROM person GROUP BY 1 UNION ALL "
        "SELECT gender_concept_id, COUNT(*) FROM person GROUP BY 1",
        "postgres",
        "aggregates.shape",
    ),
    "union-cte": (
        "WITH u AS (SELECT person_id, year_of_birth FROM person UNION ALL SELECT person_id, "
        "year_of_birth FROM person) SELECT u.year_of_birth, COUNT(*) FROM u GROUP BY 1",
        "postgres",
        "aggregates.no-person",
    ),
    # the ROW_NUMBER spelling of a cross-person DISTINCT ON
    "row-number-by-year": (
        "WITH t AS (SELECT m.person_id, m.value_as_number AS v, ROW_NUMBER() OVER (PARTITION "
        "BY p.year_of_birth ORDER BY m.value_as_number DESC) AS rn FROM measurement m JOIN "
        "person p ON p.person_id = m.person_id) SELECT COUNT(*), AVG(t.v) FROM t WHERE t.rn = 1",
        "postgres",
        "aggregates.cross-person",
    ),
    # an outer join's ON ties the joined relation to one person, never two others together
    "outer-join-link": (
        "SELECT t.v, COUNT(*) FROM (SELECT p.person_id, o.value_as_number AS v FROM person p "
        "CROSS JOIN measurement m LEFT JOIN measurement o ON m.person_id = p.person_id AND "
        "o.person_id = m.person_id) t GROUP BY 1",
        "postgres",
        "aggregates.cross-person",
    ),
    # renaming another column to person_id (positional aliases, CTE column lists)
    "renamed-person-derived": (
        "SELECT t.y, COUNT(*) FROM (SELECT m.measurement_id, p.year_of_birth FROM measurement m "
        "JOIN person p ON p.person_id = m.person_id) AS t(person_id, y) GROUP BY 1",
        "postgres",
        "aggregates.no-person",
    ),
    "renamed-person-cte": (
        "WITH t(person_id, y) AS (SELECT m.measurement_id, p.year_of_birth FROM measurement m "
        "JOIN person p ON p.person_id = m.person_id) SELECT t.y, COUNT(*) FROM t GROUP BY 1",
        "postgres",
        "aggregates.no-person",
    ),
    "grouping-sets-cte": (
        "WITH t AS (SELECT m.person_id, m.value_as_number AS v FROM measurement m GROUP BY "
        "GROUPING SETS ((m.person_id, m.value_as_number), ())) SELECT COUNT(*), AVG(t.v) FROM t",
        "postgres",
        "syntax.unsupported",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_new_allowance_attacks_are_refused(name: str) -> None:
    sql, dialect, rule = REFUSED[name]
    with pytest.raises(ScopeViolation) as info:
        _prepare(sql, dialect=dialect)
    assert info.value.rule == rule, info.value.message


@pytest.mark.parametrize("regex", ["person|id", ".*", "_id$"])
def test_columns_regex_never_reaches_a_column_outside_the_allowlist(regex: str) -> None:
    """The aggregates extract holds person_id even when the scope does not list it; a
    regex is matched against the allowlist only."""
    tree = _prepare(
        f"SELECT COLUMNS('{regex}'), COUNT(*) FROM measurement GROUP BY ALL",
        scope=NO_PID,
        dialect="duckdb",
    )
    outputs = [s.alias_or_name for s in tree.expression.expressions]
    assert not any(name in ("person_id", "measurement_id") for name in outputs), outputs


@pytest.mark.parametrize("regex", ["(?i)PERSON_ID", "^person_id$"])
def test_columns_regex_for_a_withheld_column_matches_nothing(regex: str) -> None:
    with pytest.raises(ScopeViolation) as info:
        _prepare(
            f"SELECT COLUMNS('{regex}'), COUNT(*) FROM measurement GROUP BY ALL",
            scope=NO_PID,
            dialect="duckdb",
        )
    assert info.value.rule == "columns.not-allowed"


SMALL_GROUPS = {
    # COLUMNS picks person_id; GROUP BY ALL makes it a key: one person per group
    "columns-person-key": "SELECT COLUMNS('person_id|year'), COUNT(*) AS n FROM person "
    "GROUP BY ALL",
    # a CTE named like a public table still counts its persons
    "cte-named-concept": "WITH concept AS (SELECT p.person_id, p.year_of_birth AS concept_id "
    "FROM person p) SELECT c.concept_id, COUNT(*) AS n FROM concept c GROUP BY ALL",
    # two outputs named person_id: the engine counts the first, the traced one
    "duplicate-person-name": "SELECT t.y, COUNT(*) AS n FROM (SELECT m.person_id, "
    "m.measurement_id AS person_id, p.year_of_birth AS y FROM measurement m JOIN person p ON "
    "p.person_id = m.person_id) t GROUP BY ALL",
    # a constant calendar joined to persons multiplies rows, not persons
    "calendar-join": "WITH d AS (SELECT 1 AS x UNION ALL SELECT 2), c AS (SELECT a.x FROM d a, "
    "d b) SELECT p.year_of_birth, COUNT(*) AS n FROM person p CROSS JOIN c GROUP BY ALL",
}


@pytest.mark.parametrize("name", sorted(SMALL_GROUPS))
def test_no_group_under_the_threshold_comes_back(
    name: str, aggregates: Any, reference: Any
) -> None:
    """Each query groups by something with groups of fewer than 10 persons in the data;
    none of them is returned."""
    small = reference.execute(
        "SELECT COUNT(*) FROM (SELECT year_of_birth FROM person GROUP BY 1 HAVING COUNT(*) < 10)"
    ).fetchone()[0]
    assert small > 0  # the data has small groups to find
    got = aggregates.sql(SMALL_GROUPS[name], dialect="duckdb")
    assert not sentinel_hits(got)
    if "y" in got.columns or "year_of_birth" in got.columns or "concept_id" in got.columns:
        key = next(c for c in ("y", "year_of_birth", "concept_id") if c in got.columns)
        sizes = dict(
            reference.execute("SELECT year_of_birth, COUNT(*) FROM person GROUP BY 1").fetchall()
        )
        assert all(sizes.get(k, 0) >= 10 for k in got[key]), got
    else:
        assert len(got) == 0, got


def test_distinct_on_outermost_runs_on_surviving_groups_only(
    aggregates: Any, reference: Any
) -> None:
    sql = (
        "SELECT DISTINCT ON (p.gender_concept_id) p.gender_concept_id, p.year_of_birth, "
        "COUNT(*) AS n FROM person p GROUP BY ALL ORDER BY p.gender_concept_id, COUNT(*)"
    )
    got = aggregates.sql(sql, dialect="duckdb")
    expected = reference.execute(
        "SELECT DISTINCT ON (gender_concept_id) gender_concept_id, year_of_birth, COUNT(*) AS n "
        "FROM person GROUP BY ALL HAVING COUNT(*) >= 10 ORDER BY gender_concept_id, COUNT(*)"
    ).fetchall()
    assert sorted(got["n"].tolist()) == sorted(r[2] for r in expected)
    assert (got["n"] >= 10).all()
