"""Aggregate queries over the OMOP tables whose federated answer must equal the pooled one.

Shared by the merge-equals-pooled test (node parts run through each node's own proxy)
and the three-engine test (node agents on DuckDB, PostgreSQL and Spark). Each is
PostgreSQL SQL for :data:`ROWS_SCOPE`; every ORDER BY with a LIMIT orders totally, so
the pooled answer is one table, not a choice among ties.
"""

from __future__ import annotations

from typing import Any

#: A rows project over the six OMOP tables the queries read (all three nodes).
ROWS_SCOPE: dict[str, Any] = {
    "project": "federation-rows",
    "access": "rows",
    "tables": {
        "person": "*",
        "condition_occurrence": "*",
        "measurement": "*",
        "drug_exposure": "*",
        "visit_occurrence": "*",
        "observation": "*",
        "concept": "*",
    },
    "expires": "2099-12-31",
}

SBP, BMI, DBP, HBA1C = 3004249, 3038553, 3012888, 3004410
HYPERTENSION, T2DM = 320128, 201826

#: (name, SQL): counts, sums, means, variances, min/max, persons, one and two keys,
#: HAVING, ORDER BY + LIMIT, windows over aggregates, CTEs, derived tables and joins.
AGGREGATE_QUERIES: list[tuple[str, str]] = [
    ("count-all", "SELECT COUNT(*) AS n FROM person"),
    ("count-by-gender", "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1"),
    (
        "count-two-keys",
        "SELECT gender_concept_id, year_of_birth / 10 * 10 AS decade, COUNT(*) AS n "
        "FROM person GROUP BY 1, 2",
    ),
    ("count-key-not-output", "SELECT COUNT(*) AS n FROM person GROUP BY gender_concept_id"),
    ("sum-year", "SELECT SUM(year_of_birth) AS s FROM person"),
    (
        "sum-by-gender",
        "SELECT gender_concept_id, SUM(year_of_birth) AS s, COUNT(year_of_birth) AS c "
        "FROM person GROUP BY gender_concept_id",
    ),
    ("avg-year", "SELECT AVG(year_of_birth) AS mean_year FROM person"),
    (
        "avg-sbp-by-gender",
        "SELECT p.gender_concept_id, AVG(m.value_as_number) AS mean_sbp FROM person p "
        f"JOIN measurement m ON m.person_id = p.person_id WHERE m.measurement_concept_id = {SBP} "
        "GROUP BY p.gender_concept_id",
    ),
    (
        "mean-by-measurement",
        "SELECT measurement_concept_id, AVG(value_as_number) AS mean, COUNT(*) AS n, "
        "SUM(value_as_number) AS total FROM measurement GROUP BY measurement_concept_id",
    ),
    (
        "min-max",
        "SELECT measurement_concept_id, MIN(value_as_number) AS lo, MAX(value_as_number) AS hi "
        "FROM measurement GROUP BY 1",
    ),
    (
        "min-max-dates",
        "SELECT visit_concept_id, MIN(visit_start_date) AS first_visit, "
        "MAX(visit_start_date) AS last_visit FROM visit_occurrence GROUP BY 1",
    ),
    (
        "variances",
        "SELECT measurement_concept_id, VARIANCE(value_as_number) AS v, "
        "VAR_POP(value_as_number) AS vp, STDDEV(value_as_number) AS sd, "
        "STDDEV_POP(value_as_number) AS sdp, STDDEV_SAMP(value_as_number) AS sds, "
        "VAR_SAMP(value_as_number) AS vs FROM measurement GROUP BY 1",
    ),
    (
        "variance-year",
        "SELECT STDDEV(year_of_birth) AS sd, VAR_POP(year_of_birth) AS vp FROM person",
    ),
    (
        "variance-small-groups",
        "SELECT year_of_birth, STDDEV(month_of_birth) AS sd, VARIANCE(month_of_birth) AS v "
        "FROM person GROUP BY year_of_birth",
    ),
    (
        "persons-with-condition",
        "SELECT condition_concept_id, COUNT(DISTINCT person_id) AS persons, COUNT(*) AS records "
        "FROM condition_occurrence GROUP BY condition_concept_id",
    ),
    (
        "persons-joined",
        "SELECT p.gender_concept_id, COUNT(DISTINCT co.person_id) AS persons FROM person p "
        "JOIN condition_occurrence co ON co.person_id = p.person_id GROUP BY 1",
    ),
    (
        "count-filter",
        f"SELECT COUNT(*) FILTER (WHERE value_as_number > 140) AS high, COUNT(*) AS n, "
        f"AVG(value_as_number) FILTER (WHERE value_as_number > 140) AS mean_high "
        f"FROM measurement WHERE measurement_concept_id = {SBP}",
    ),
    (
        "count-column-nulls",
        "SELECT COUNT(value_as_number) AS with_value, COUNT(*) AS n, COUNT(unit_concept_id) AS u "
        "FROM measurement",
    ),
    (
        "ratio-integer-division",
        "SELECT gender_concept_id, SUM(year_of_birth) / COUNT(*) AS mean_int FROM person "
        "GROUP BY 1",
    ),
    (
        "ratio-float",
        "SELECT gender_concept_id, SUM(year_of_birth) * 1.0 / COUNT(*) AS mean_float "
        "FROM person GROUP BY 1",
    ),
    (
        "round-avg",
        "SELECT measurement_concept_id, ROUND(AVG(value_as_number)::numeric, 3) AS mean3 "
        "FROM measurement GROUP BY 1",
    ),
    (
        "percent-window",
        "SELECT gender_concept_id, 100.0 * COUNT(*) / SUM(COUNT(*)) OVER () AS pct "
        "FROM person GROUP BY 1",
    ),
    (
        "rank-window",
        "SELECT drug_concept_id, COUNT(*) AS n, RANK() OVER (ORDER BY COUNT(*) DESC) AS r "
        "FROM drug_exposure GROUP BY 1",
    ),
    (
        "case-over-key",
        "SELECT CASE WHEN gender_concept_id = 8507 THEN 'male' ELSE 'female' END AS sex, "
        "COUNT(*) AS n FROM person GROUP BY gender_concept_id",
    ),
    (
        "having-count",
        "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY year_of_birth "
        "HAVING COUNT(*) > 60",
    ),
    (
        "having-avg",
        "SELECT drug_concept_id, AVG(days_supply) AS mean_days FROM drug_exposure "
        "GROUP BY 1 HAVING AVG(days_supply) > 0 AND COUNT(*) >= 10",
    ),
    (
        "order-limit",
        "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY n DESC, "
        "year_of_birth LIMIT 5",
    ),
    (
        "order-position-offset",
        "SELECT condition_concept_id, COUNT(*) AS n FROM condition_occurrence GROUP BY 1 "
        "ORDER BY 2 DESC, 1 LIMIT 4 OFFSET 2",
    ),
    (
        "order-by-aggregate",
        "SELECT visit_concept_id FROM visit_occurrence GROUP BY visit_concept_id "
        "ORDER BY COUNT(*) DESC, visit_concept_id",
    ),
    (
        "distinct-outputs",
        "SELECT DISTINCT COUNT(*) > 100 AS big FROM condition_occurrence "
        "GROUP BY condition_concept_id",
    ),
    (
        "cte-per-person",
        "WITH c AS (SELECT person_id, COUNT(*) AS k FROM condition_occurrence GROUP BY person_id) "
        "SELECT k, COUNT(*) AS persons FROM c GROUP BY k",
    ),
    (
        "derived-per-person",
        "SELECT visits, COUNT(*) AS persons FROM (SELECT person_id, COUNT(*) AS visits "
        "FROM visit_occurrence GROUP BY person_id) v WHERE visits > 5 GROUP BY visits",
    ),
    (
        "cte-join",
        f"WITH htn AS (SELECT DISTINCT person_id FROM condition_occurrence "
        f"WHERE condition_concept_id = {HYPERTENSION}) "
        "SELECT p.gender_concept_id, COUNT(*) AS n, AVG(p.year_of_birth) AS mean_year "
        "FROM person p JOIN htn ON htn.person_id = p.person_id GROUP BY 1",
    ),
    (
        "in-person-set",
        f"SELECT gender_concept_id, COUNT(*) AS n FROM person WHERE person_id IN "
        f"(SELECT person_id FROM condition_occurrence WHERE condition_concept_id = {T2DM}) "
        "GROUP BY 1",
    ),
    (
        "exists-correlated",
        f"SELECT COUNT(*) AS n FROM person p WHERE EXISTS (SELECT 1 FROM measurement m "
        f"WHERE m.person_id = p.person_id AND m.measurement_concept_id = {HBA1C} "
        "AND m.value_as_number > 6.5)",
    ),
    (
        "three-way-join",
        f"SELECT p.gender_concept_id, o.value_as_number AS decile, COUNT(DISTINCT p.person_id) "
        f"AS persons, AVG(m.value_as_number) AS mean_bmi FROM person p "
        f"JOIN observation o ON o.person_id = p.person_id "
        f"JOIN measurement m ON m.person_id = p.person_id AND m.measurement_concept_id = {BMI} "
        "GROUP BY 1, 2",
    ),
    (
        "left-join-count",
        f"SELECT p.gender_concept_id, COUNT(co.condition_occurrence_id) AS conditions, "
        f"COUNT(*) AS rows_ FROM person p LEFT JOIN condition_occurrence co "
        f"ON co.person_id = p.person_id AND co.condition_concept_id = {HYPERTENSION} GROUP BY 1",
    ),
    (
        "drug-sums",
        "SELECT drug_concept_id, SUM(quantity) AS q, SUM(days_supply) AS d, AVG(refills) AS r "
        "FROM drug_exposure GROUP BY 1",
    ),
    (
        "year-of-visit",
        "SELECT EXTRACT(YEAR FROM visit_start_date) AS y, COUNT(*) AS n FROM visit_occurrence "
        "GROUP BY 1",
    ),
    (
        "empty-global",
        "SELECT COUNT(*) AS n, SUM(year_of_birth) AS s, AVG(year_of_birth) AS a, "
        "MIN(year_of_birth) AS lo, VARIANCE(year_of_birth) AS v FROM person "
        "WHERE year_of_birth > 3000",
    ),
    (
        "empty-grouped",
        "SELECT gender_concept_id, COUNT(*) AS n FROM person WHERE year_of_birth > 3000 GROUP BY 1",
    ),
    (
        "count-if",
        "SELECT COUNT(*) FILTER (WHERE year_of_birth < 1950) AS old, COUNT(*) AS n FROM person",
    ),
    (
        "observation-deciles",
        "SELECT value_as_number AS decile, COUNT(DISTINCT person_id) AS persons "
        "FROM observation GROUP BY 1 ORDER BY 1",
    ),
    (
        "window-running",
        "SELECT year_of_birth, COUNT(*) AS n, SUM(COUNT(*)) OVER (ORDER BY year_of_birth) "
        "AS cumulative FROM person GROUP BY 1 ORDER BY 1",
    ),
    (
        "null-key-order",
        "SELECT CASE WHEN year_of_birth > 1980 THEN NULL ELSE gender_concept_id END AS g, "
        "COUNT(*) AS n FROM person GROUP BY 1 ORDER BY 1 DESC",
    ),
    ("keys-only", "SELECT race_concept_id FROM person GROUP BY race_concept_id ORDER BY 1"),
    (
        "all-null-values",
        "SELECT COUNT(refills) AS n, SUM(refills) AS s, AVG(refills) AS a, "
        "STDDEV(refills) AS sd, MAX(condition_end_date) AS last_end FROM drug_exposure d "
        "JOIN condition_occurrence c ON c.person_id = d.person_id",
    ),
    (
        "vocabulary-join",
        "SELECT c.concept_name, COUNT(*) AS n, COUNT(DISTINCT co.person_id) AS persons "
        "FROM condition_occurrence co JOIN concept c ON c.concept_id = co.condition_concept_id "
        "GROUP BY c.concept_name",
    ),
    (
        "in-per-person-having",
        "SELECT year_of_birth / 10 AS decade, COUNT(*) AS n FROM person WHERE person_id IN "
        "(SELECT person_id FROM visit_occurrence GROUP BY person_id HAVING COUNT(*) > 20) "
        "GROUP BY 1 HAVING COUNT(*) > 5 ORDER BY decade",
    ),
    (
        "date-key-as-text",
        "SELECT CAST(visit_start_date AS TEXT) AS day, COUNT(*) AS n, "
        "MIN(visit_end_date) AS first_end FROM visit_occurrence "
        "WHERE visit_start_date < DATE '2015-03-01' GROUP BY visit_start_date",
    ),
    (
        "conditions-at-visits",
        "SELECT v.visit_concept_id, COUNT(*) AS n, COUNT(DISTINCT c.person_id) AS persons "
        "FROM condition_occurrence c JOIN visit_occurrence v "
        "ON v.visit_occurrence_id = c.visit_occurrence_id GROUP BY 1",
    ),
    (
        "preceding-visits",
        "SELECT p.visit_concept_id, COUNT(*) AS n FROM visit_occurrence v "
        "JOIN visit_occurrence p ON p.visit_occurrence_id = v.preceding_visit_occurrence_id "
        "GROUP BY 1",
    ),
    (
        "correlation",
        f"SELECT p.gender_concept_id, CORR(s.value_as_number, d.value_as_number) AS r, "
        f"COVAR_POP(s.value_as_number, d.value_as_number) AS cp, "
        f"COVAR_SAMP(s.value_as_number, p.year_of_birth) AS cs FROM person p "
        f"JOIN measurement s ON s.person_id = p.person_id AND s.measurement_concept_id = {SBP} "
        f"JOIN measurement d ON d.person_id = p.person_id AND d.measurement_concept_id = {DBP} "
        "AND d.measurement_date = s.measurement_date GROUP BY 1",
    ),
    (
        "correlation-filtered",
        f"SELECT CORR(value_as_number, year_of_birth) FILTER (WHERE year_of_birth > 1960) AS r "
        f"FROM measurement m JOIN person p ON p.person_id = m.person_id "
        f"WHERE m.measurement_concept_id = {BMI}",
    ),
    (
        "sd-joined-two-keys",
        f"SELECT p.gender_concept_id, p.year_of_birth / 20 AS band, "
        f"STDDEV(m.value_as_number) AS sd, MAX(m.value_as_number) - MIN(m.value_as_number) "
        f"AS range_ FROM person p JOIN measurement m ON m.person_id = p.person_id "
        f"WHERE m.measurement_concept_id = {DBP} GROUP BY 1, 2",
    ),
]
