"""The population tells a true story: gradients, undiagnosed hypertension, treatment, deaths."""

from __future__ import annotations

import itertools
from pathlib import Path

import duckdb
import numpy as np
import pytest

from sde.omop import vocabulary
from sde.omop.synth import synthesise
from tests.fixtures.synth import all_nodes

HTN = 320128
#: Persons with a hypertension record (the concept or any descendant).
HTN_PERSONS = f"""SELECT DISTINCT co.person_id FROM condition_occurrence co
    JOIN concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id
    WHERE ca.ancestor_concept_id = {HTN}"""


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """40,000 persons: enough for gradients to show through sampling noise."""
    out = tmp_path_factory.mktemp("synth-large")
    synthesise(40_000, 3, 11, out, progress=False)
    return all_nodes(out)


@pytest.fixture(scope="module")
def small(synth_dir: Path) -> duckdb.DuckDBPyConnection:
    return all_nodes(synth_dir)


def _prevalence_by(con: duckdb.DuckDBPyConnection, group_sql: str) -> list[tuple[int, float, int]]:
    return [
        (int(g), float(p), int(n))
        for g, p, n in con.execute(
            f"""WITH groups AS ({group_sql}), htn AS ({HTN_PERSONS})
                SELECT g.grp, AVG(CASE WHEN h.person_id IS NULL THEN 0 ELSE 1 END), COUNT(*)
                FROM groups g LEFT JOIN htn h USING (person_id) GROUP BY g.grp ORDER BY g.grp"""
        ).fetchall()
    ]


def test_hypertension_prevalence_rises_with_deprivation(large: duckdb.DuckDBPyConnection) -> None:
    rows = _prevalence_by(
        large,
        f"SELECT person_id, value_as_number::INT AS grp FROM observation "
        f"WHERE observation_concept_id = {vocabulary.IMD_DECILE_CONCEPT_ID}",
    )
    deciles = [d for d, _, _ in rows]
    prevalence = np.array([p for _, p, _ in rows])
    assert deciles == list(range(1, 11))
    # Most deprived clearly above least deprived (by more than 4 standard errors).
    (_, p1, n1), (_, p10, n10) = rows[0], rows[-1]
    se = np.sqrt(p1 * (1 - p1) / n1 + p10 * (1 - p10) / n10)
    assert p1 - p10 > 4 * se
    # A monotone-ish trend: strongly negative rank correlation, few local reversals.
    ranks = np.argsort(np.argsort(prevalence))
    rho = np.corrcoef(ranks, np.arange(10))[0, 1]
    assert rho < -0.8
    assert int(np.sum(np.diff(prevalence) > 0)) <= 3


def test_hypertension_prevalence_rises_with_age(large: duckdb.DuckDBPyConnection) -> None:
    rows = _prevalence_by(
        large,
        "SELECT person_id, LEAST((2025 - year_of_birth) // 10, 9) AS grp FROM person "
        "WHERE year_of_birth >= 1925",
    )
    prevalence = [p for _, p, _ in rows]
    # Rises through adult life: every band from 20-29 up to 70-79 above the one before.
    adult = prevalence[2:8]
    assert all(b > a for a, b in itertools.pairwise(adult)), prevalence
    assert prevalence[0] < 0.01
    assert prevalence[7] > 0.25


def test_overall_prevalences_are_uk_like(large: duckdb.DuckDBPyConnection) -> None:
    (persons,) = large.execute("SELECT COUNT(*) FROM person").fetchone() or (1,)
    (htn,) = large.execute(f"SELECT COUNT(*) FROM ({HTN_PERSONS})").fetchone() or (0,)
    assert 0.11 < htn / persons < 0.2


def test_undiagnosed_raised_blood_pressure_exists(small: duckdb.DuckDBPyConnection) -> None:
    (count,) = small.execute(
        f"""WITH readings AS (
              SELECT s.person_id, s.measurement_date
              FROM measurement s JOIN measurement d
                ON d.visit_occurrence_id = s.visit_occurrence_id
               AND d.measurement_concept_id = 3012888
              WHERE s.measurement_concept_id = 3004249
                AND (s.value_as_number >= 140 OR d.value_as_number >= 90)),
            repeated AS (SELECT person_id FROM readings GROUP BY person_id
                         HAVING COUNT(DISTINCT measurement_date) >= 2)
            SELECT COUNT(*) FROM repeated WHERE person_id NOT IN ({HTN_PERSONS})"""
    ).fetchone() or (0,)
    (persons,) = small.execute("SELECT COUNT(*) FROM person").fetchone() or (1,)
    assert 0.01 < count / persons < 0.2


def test_measurements_carry_units_and_match_diagnoses(small: duckdb.DuckDBPyConnection) -> None:
    units = dict(
        small.execute(
            "SELECT measurement_concept_id, ANY_VALUE(unit_concept_id) FROM measurement "
            "GROUP BY 1 HAVING COUNT(DISTINCT unit_concept_id) = 1"
        ).fetchall()
    )
    assert units == {3004249: 8876, 3012888: 8876, 3004410: 8554, 3038553: 9531}
    t2d = vocabulary.descendants(201826)
    with_t2d, without = small.execute(
        f"""WITH d AS (SELECT DISTINCT person_id FROM condition_occurrence
                       WHERE condition_concept_id IN ({",".join(map(str, t2d))}))
            SELECT AVG(value_as_number) FILTER (WHERE person_id IN (SELECT * FROM d)),
                   AVG(value_as_number) FILTER (WHERE person_id NOT IN (SELECT * FROM d))
            FROM measurement WHERE measurement_concept_id = 3004410"""
    ).fetchone() or (0, 0)
    assert with_t2d > 6.5 > without


def _first_dates(con: duckdb.DuckDBPyConnection, concepts: set[int]) -> str:
    ids = ",".join(map(str, sorted(concepts)))
    return (
        f"SELECT person_id, MIN(condition_start_date) AS dx FROM condition_occurrence "
        f"WHERE condition_concept_id IN ({ids}) GROUP BY person_id"
    )


@pytest.mark.parametrize(
    ("drug", "conditions"),
    [
        (1332418, {320128}),  # amlodipine: hypertension
        (1308216, {320128}),  # lisinopril: hypertension
        (1503297, {201826}),  # metformin: type 2 diabetes
        (1545958, {201826, 320128, 313217, 316139}),  # atorvastatin: cardiovascular risk
    ],
)
def test_drugs_follow_diagnoses(
    small: duckdb.DuckDBPyConnection, drug: int, conditions: set[int]
) -> None:
    concepts = set().union(*(vocabulary.descendants(c) for c in conditions))
    total, unexplained = small.execute(
        f"""WITH first_rx AS (SELECT person_id, MIN(drug_exposure_start_date) AS rx
                              FROM drug_exposure WHERE drug_concept_id = {drug} GROUP BY 1),
                 dx AS ({_first_dates(small, concepts)})
            SELECT COUNT(*), COUNT(*) FILTER (WHERE dx.dx IS NULL OR dx.dx > first_rx.rx)
            FROM first_rx LEFT JOIN dx USING (person_id)"""
    ).fetchone() or (0, 1)
    assert total > 0
    assert unexplained == 0


def test_no_events_after_death_or_outside_the_record(small: duckdb.DuckDBPyConnection) -> None:
    checks = {
        "visit_occurrence": ("visit_start_date", "visit_end_date"),
        "condition_occurrence": ("condition_start_date", "condition_start_date"),
        "drug_exposure": ("drug_exposure_start_date", "drug_exposure_end_date"),
        "measurement": ("measurement_date", "measurement_date"),
        "observation": ("observation_date", "observation_date"),
    }
    (deaths,) = small.execute("SELECT COUNT(*) FROM death").fetchone() or (0,)
    assert deaths > 0
    for table, (first, last) in checks.items():
        (bad,) = small.execute(
            f"""SELECT COUNT(*) FROM {table} e
                JOIN observation_period op USING (person_id)
                LEFT JOIN death d USING (person_id)
                WHERE e.{last} > d.death_date OR e.{first} < op.observation_period_start_date
                   OR e.{last} > op.observation_period_end_date OR e.{last} < e.{first}"""
        ).fetchone() or (1,)
        assert bad == 0, table
    (mismatch,) = small.execute(
        "SELECT COUNT(*) FROM death d JOIN observation_period op USING (person_id) "
        "WHERE op.observation_period_end_date <> d.death_date"
    ).fetchone() or (1,)
    assert mismatch == 0


def test_deaths_are_mostly_in_old_age(small: duckdb.DuckDBPyConnection) -> None:
    (age,) = small.execute(
        "SELECT AVG(YEAR(death_date) - year_of_birth) FROM death JOIN person USING (person_id)"
    ).fetchone() or (0,)
    assert 70 < age < 85


def test_some_records_use_descendant_concepts(small: duckdb.DuckDBPyConnection) -> None:
    exact, any_level = small.execute(
        f"""SELECT COUNT(*) FILTER (WHERE condition_concept_id = {HTN}), COUNT(*)
            FROM condition_occurrence co JOIN concept_ancestor ca
              ON ca.descendant_concept_id = co.condition_concept_id
            WHERE ca.ancestor_concept_id = {HTN}"""
    ).fetchone() or (0, 0)
    assert 0 < exact < any_level


def test_gp_contacts_are_outpatient_visits_by_ancestry(small: duckdb.DuckDBPyConnection) -> None:
    (gp,) = small.execute(
        f"""SELECT COUNT(*) FROM visit_occurrence v JOIN concept_ancestor ca
              ON ca.descendant_concept_id = v.visit_concept_id
            WHERE ca.ancestor_concept_id = {vocabulary.OUTPATIENT_VISIT_CONCEPT_ID}
              AND v.visit_concept_id = {vocabulary.GP_VISIT_CONCEPT_ID}"""
    ).fetchone() or (0,)
    kinds = {
        r[0]
        for r in small.execute("SELECT DISTINCT visit_concept_id FROM visit_occurrence").fetchall()
    }
    assert gp > 0
    assert kinds == {vocabulary.GP_VISIT_CONCEPT_ID, 9202, 9203, 9201, 262}
