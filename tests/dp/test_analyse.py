"""What a DP query may be: a table of refusals (each with the rule it trips) and acceptances."""

from __future__ import annotations

import pytest

from sde.dp.analyse import analyse
from sde.errors import DPRefusal

SBP = "m.measurement_concept_id = 3004249"

REFUSED = [
    # missing bounds: never guessed from the data
    ("SELECT AVG(value_as_number) FROM measurement", "dp.bounds-missing"),
    ("SELECT SUM(m.value_as_number * 2) FROM measurement m WHERE " + SBP, "dp.bounds-missing"),
    (
        "SELECT AVG(value_as_number) FROM measurement WHERE measurement_concept_id = 1",
        "dp.bounds-missing",
    ),
    # non-aggregate output / row-level access
    ("SELECT * FROM person", "dp.non-aggregate"),
    ("SELECT person_id, year_of_birth FROM person", "dp.non-aggregate"),
    ("SELECT year_of_birth, COUNT(*) FROM person", "dp.non-aggregate"),
    ("SELECT DISTINCT gender_concept_id FROM person", "dp.distinct"),
    ("SELECT person_id, COUNT(*) FROM measurement GROUP BY person_id", "dp.row-level"),
    ("SELECT visit_occurrence_id, COUNT(*) FROM visit_occurrence GROUP BY 1", "dp.row-level"),
    # unsupported aggregates and shapes
    ("SELECT MAX(value_as_number) FROM measurement", "dp.unsupported-aggregate"),
    ("SELECT MIN(year_of_birth) FROM person", "dp.unsupported-aggregate"),
    ("SELECT COUNT(DISTINCT gender_concept_id) FROM person", "dp.unsupported-aggregate"),
    ("SELECT STRING_AGG(CAST(person_id AS TEXT), ',') FROM person", "dp.unsupported-aggregate"),
    ("SELECT SUM(DISTINCT year_of_birth) FROM person", "dp.unsupported-aggregate"),
    ("SELECT COUNT(*) * 2 FROM person", "dp.unsupported-aggregate"),
    ("SELECT COUNT(*) FILTER (WHERE year_of_birth > 1950) FROM person", "dp.unsupported-aggregate"),
    (
        "SELECT PERCENTILE_CONT(1.0) WITHIN GROUP (ORDER BY year_of_birth) FROM person",
        "dp.unsupported-aggregate",
    ),
    ("SELECT gender_concept_id, COUNT(*) FROM person GROUP BY 1 HAVING COUNT(*) > 5", "dp.having"),
    ("SELECT COUNT(*), ROW_NUMBER() OVER () FROM person", "dp.window"),
    ("SELECT COUNT(*) FROM person UNION ALL SELECT COUNT(*) FROM death", "dp.set-operation"),
    ("SELECT COUNT(*) FROM concept", "dp.no-person"),
    ("SELEC COUNT(*) FROM person", "dp.parse"),
    ("SELECT COUNT(*) FROM person; SELECT 1", "dp.parse"),
    ("SELECT COUNT(*) FROM secret_table", "dp.unknown-table"),
    # joins and subqueries that would let one person move other persons' rows
    (
        "SELECT COUNT(*) FROM person p RIGHT JOIN measurement m ON m.person_id = p.person_id",
        "dp.join-type",
    ),
    (
        "SELECT COUNT(*) FROM person p JOIN measurement m ON m.measurement_id = p.person_id",
        "dp.join-not-on-person",
    ),
    ("SELECT COUNT(*) FROM person p, measurement m", "dp.join-not-on-person"),
    (
        "SELECT COUNT(*) FROM measurement m WHERE m.value_as_number > "
        "(SELECT AVG(value_as_number) FROM measurement)",
        "dp.cross-person-aggregate",
    ),
    (
        "SELECT COUNT(*) FROM (SELECT person_id FROM measurement LIMIT 10) t",
        "dp.subquery-not-person-local",
    ),
    (
        "SELECT COUNT(*) FROM (SELECT measurement_concept_id, COUNT(*) AS n FROM measurement "
        "GROUP BY 1) t",
        "dp.cross-person-aggregate",
    ),
    ("SELECT COUNT(*) FROM (SELECT value_as_number FROM measurement) t", "dp.no-person-column"),
    (
        "SELECT COUNT(*) FROM (SELECT person_id, RANK() OVER (ORDER BY value_as_number) r "
        "FROM measurement) t",
        "dp.cross-person-window",
    ),
    (
        "SELECT COUNT(*) FROM person p WHERE p.year_of_birth IN (SELECT year_of_birth FROM person)",
        "dp.subquery-not-person-local",
    ),
    ("WITH RECURSIVE r AS (SELECT 1 AS x) SELECT COUNT(*) FROM person", "dp.recursive"),
]


@pytest.mark.parametrize(("sql", "rule"), REFUSED, ids=[r for _, r in REFUSED])
def test_refused_with_its_rule(sql: str, rule: str) -> None:
    with pytest.raises(DPRefusal) as err:
        analyse(sql)
    assert err.value.rule == rule
    assert len(err.value.message) > 30  # a sentence, not a code


def test_missing_bounds_message_says_how_to_state_them() -> None:
    with pytest.raises(DPRefusal, match=r"LEAST\(GREATEST") as err:
        analyse("SELECT AVG(value_as_number) AS v FROM measurement")
    assert "never taken from the data" in err.value.message


ACCEPTED = [
    # SmartNoise refuses all of these: joins, subqueries, CTEs, quantiles
    "SELECT o.value_as_number AS imd, AVG(m.value_as_number) AS sbp FROM measurement m "
    "JOIN observation o ON o.person_id = m.person_id WHERE "
    + SBP
    + " AND o.observation_concept_id = 2000000001 GROUP BY 1",
    "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY m.value_as_number) FROM measurement m "
    "WHERE " + SBP,
    "SELECT MEDIAN(LEAST(GREATEST(year_of_birth, 1900), 2030)) FROM person",
    "SELECT COUNT(*) FROM person p WHERE p.person_id IN (SELECT person_id FROM "
    "condition_occurrence WHERE condition_concept_id IN (SELECT descendant_concept_id FROM "
    "concept_ancestor WHERE ancestor_concept_id = 320128))",
    "SELECT COUNT(*) FROM person p WHERE EXISTS (SELECT 1 FROM condition_occurrence c "
    "WHERE c.person_id = p.person_id AND c.condition_concept_id = 201826)",
    "WITH per_person AS (SELECT person_id, COUNT(*) AS visits FROM visit_occurrence "
    "GROUP BY person_id) SELECT AVG(LEAST(GREATEST(visits, 0), 50)) FROM per_person",
    "SELECT c.concept_name, COUNT(DISTINCT co.person_id) FROM condition_occurrence co "
    "JOIN concept c ON c.concept_id = co.condition_concept_id GROUP BY c.concept_name",
    "SELECT EXTRACT(YEAR FROM visit_start_date) AS y, COUNT(*) FROM visit_occurrence GROUP BY 1 "
    "ORDER BY 1 LIMIT 3",
    "SELECT p.gender_concept_id, VARIANCE(m.value_as_number), STDDEV_POP(m.value_as_number) "
    "FROM person p LEFT JOIN measurement m ON m.person_id = p.person_id WHERE "
    + SBP
    + " GROUP BY 1",
    "SELECT SUM(CASE WHEN year_of_birth < 1950 THEN 1 ELSE 0 END) FROM person",
    "SELECT COUNT(*) FROM (SELECT person_id FROM measurement UNION ALL SELECT person_id "
    "FROM observation) t",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_accepted(sql: str) -> None:
    a = analyse(sql)
    assert a.aggregates


def test_bounds_precedence_query_then_argument_then_metadata() -> None:
    q = "SELECT AVG(LEAST(GREATEST(m.value_as_number, 0), 300)) AS v FROM measurement m WHERE "
    assert analyse(q + SBP, bounds={"v": (1, 2)}).aggregates[0].bounds.source == "query"
    q2 = "SELECT AVG(m.value_as_number) AS v FROM measurement m WHERE " + SBP
    b = analyse(q2, bounds={"v": (70, 200)}).aggregates[0].bounds
    assert (b.lower, b.upper, b.source) == (70, 200, "argument")
    b = analyse(q2).aggregates[0].bounds
    assert (b.lower, b.upper, b.source) == (60, 250, "metadata")


def test_public_keys_from_metadata_and_argument() -> None:
    a = analyse(
        "SELECT o.value_as_number AS imd, COUNT(*) FROM observation o "
        "WHERE o.observation_concept_id = 2000000001 GROUP BY 1"
    )
    assert a.keys[0].keys == tuple(range(1, 11))
    a = analyse("SELECT visit_source_value AS v, COUNT(*) FROM visit_occurrence GROUP BY 1")
    assert a.keys[0].keys is None
    a = analyse(
        "SELECT visit_source_value AS v, COUNT(*) FROM visit_occurrence GROUP BY 1",
        keys={"v": ["GP", "OP"]},
    )
    assert a.keys[0].keys == ("GP", "OP")
