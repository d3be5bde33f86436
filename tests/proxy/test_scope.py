"""sde.Scope: loading and validating scope files; errors name the key and the problem."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sde import Scope
from sde.errors import ConfigurationError
from sde.omop.cdm import CDM

BASE = {"project": "htn-deprivation", "access": "rows", "tables": {"person": ["person_id"]}}


def test_yaml_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "scope.yaml"
    path.write_text(
        "project: htn-deprivation\naccess: aggregates\nnodes: [lth, elht]\n"
        "tables:\n  person: [person_id, gender_concept_id, year_of_birth]\n"
        "  condition_occurrence: '*'\n  concept: '*'\n"
        "cohort: {any_condition: [320128]}\nperiod: {start: 2015-01-01, end: 2024-12-31}\n"
        "sdc: {threshold: 10}\ndp: {epsilon: 3.0, delta: 1.0e-6}\nexpires: 2027-12-31\n"
    )
    scope = Scope.load(path)
    assert scope.access == "aggregates"
    assert scope.nodes == ("lth", "elht")
    assert scope.columns("person") == ("person_id", "gender_concept_id", "year_of_birth")
    assert scope.cohort_concepts == (320128,)
    assert scope.period is not None
    assert scope.period.start == dt.date(2015, 1, 1)
    assert scope.threshold == 10
    assert scope.dp == {"epsilon": 3.0, "delta": 1e-6}
    assert scope.expires == dt.date(2027, 12, 31)
    assert (
        Scope.load(scope.to_dict() | {"cohort": {"any_condition": [320128]}}).version
        == scope.version
    )


def test_star_means_exposable_columns() -> None:
    scope = Scope.load({**BASE, "tables": {"person": "*", "note": "*", "measurement": "*"}})
    assert "person_source_value" not in scope.columns("person")
    assert "note_text" not in scope.columns("note")
    assert "measurement_event_id" not in scope.columns("measurement")
    assert set(scope.columns("person")) == set(CDM.exposable_columns("person"))


def test_never_exposed_columns_are_withheld() -> None:
    scope = Scope.load({**BASE, "tables": {"person": ["person_id", "person_source_value"]}})
    assert scope.columns("person") == ("person_id",)
    assert scope.withheld == ("person.person_source_value",)


def test_version_changes_with_content() -> None:
    a = Scope.load(BASE)
    b = Scope.load({**BASE, "tables": {"person": ["person_id", "year_of_birth"]}})
    assert a.version != b.version
    assert len(a.version) == 64


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"colour": "blue"}, "colour", "unknown key"),
        ({"access": "everything"}, "access", "not one of"),
        ({"project": "Has Spaces"}, "project", "slug"),
        ({"tables": {}}, "tables", "at least one table"),
        ({"tables": {"persons": "*"}}, "tables.persons", "not a table"),
        ({"tables": {"person": ["nhs_number"]}}, "tables.person", "no column nhs_number"),
        ({"tables": {"person": []}}, "tables.person", "non-empty list"),
        ({"tables": {"person": ["person_source_value"]}}, "tables.person", "never exposed"),
        ({"tables": {"cost": "*"}}, "tables.cost", "not supported"),
        ({"period": {"start": "2024-01-01", "end": "2015-01-01"}}, "period", "after end"),
        ({"period": {"start": "yesterday"}}, "period.start", "not a date"),
        ({"period": {"begin": "2020-01-01"}}, "period.begin", "unknown key"),
        ({"cohort": {"any_condition": []}}, "cohort.any_condition", "non-empty"),
        ({"cohort": {"any_drug": [1]}}, "cohort.any_drug", "unknown key"),
        ({"cohort": {"any_condition": ["htn"]}}, "cohort.any_condition", "not a concept id"),
        ({"nodes": []}, "nodes", "non-empty"),
        ({"nodes": ["LTH!"]}, "nodes", "not a node name"),
        ({"sdc": {"threshold": 0}}, "sdc.threshold", "positive"),
        ({"sdc": {"minimum": 5}}, "sdc.minimum", "unknown key"),
        ({"dp": {"epsilon": -1}}, "dp.epsilon", "non-negative"),
        ({"expires": "soon"}, "expires", "not a date"),
    ],
)
def test_invalid_scopes_name_key_and_problem(change: dict, key: str, problem: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigurationError) as info:
        Scope.load({**BASE, **change})
    assert info.value.rule == "scope.invalid"
    assert f"scope key {key}:" in info.value.message
    assert problem in info.value.message


def test_missing_required_key() -> None:
    with pytest.raises(ConfigurationError, match="scope key tables: missing"):
        Scope.load({"project": "p", "access": "rows"})


def test_expiry() -> None:
    scope = Scope.load({**BASE, "expires": "2020-01-01"})
    assert scope.is_expired(dt.date(2020, 1, 2))
    assert not scope.is_expired(dt.date(2020, 1, 1))
