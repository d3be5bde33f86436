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


# --- output-checking settings: one declaration (SDCConfig), every setting takes effect ---


def test_the_sdc_settings_are_an_sdc_config() -> None:
    from sde.sdc import SDCConfig

    scope = Scope.load({**BASE, "sdc": {"threshold": 20, "nk_n": 3, "protection_width": 25}})
    assert isinstance(scope.sdc, SDCConfig)
    assert scope.sdc == SDCConfig(threshold=20, nk_n=3, protection_width=25)
    assert scope.threshold == 20
    assert Scope.load(BASE).sdc == SDCConfig()
    assert Scope.load(scope.to_dict()).sdc == scope.sdc
    assert Scope.load(BASE).to_dict()["sdc"] == {"threshold": 10}  # versions of old scopes hold


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ({"dominance_n": 3}, "renamed nk_n"),
        ({"dominance_k": 0.8}, "renamed nk_k"),
        ({"rounding": "base-5"}, "protection="),
        ({"treshold": 20}, "unknown key"),
        ({"nk_k": 1.5}, "(0, 1]"),
        ({"nk_n": 2.5}, "whole number"),
    ],
)
def test_sdc_settings_are_never_silently_ignored(setting: dict, problem: str) -> None:  # type: ignore[type-arg]
    key = next(iter(setting))
    with pytest.raises(ConfigurationError) as info:
        Scope.load({**BASE, "sdc": setting})
    assert info.value.rule == "scope.invalid"
    assert f"scope key sdc.{key}:" in info.value.message
    assert problem in info.value.message


def test_threshold_takes_effect_in_sde_sdc() -> None:
    import pandas as pd

    from sde import sdc

    df = pd.DataFrame({"g": ["a"] * 40 + ["b"] * 15})
    assert sdc.crosstab(df.g, rules=Scope.load(BASE).sdc).status == "pass"
    strict = Scope.load({**BASE, "sdc": {"threshold": 20}})
    assert sdc.crosstab(df.g, rules=strict.sdc).flags.loc["b", "count"] == ("threshold",)


def _dominated() -> object:
    import pandas as pd

    # Cell b: 20 people, total 1000; the two largest hold 80%, the three largest 91%;
    # p-ratio (1000 - 600 - 200) / 600 = 0.33.
    b = [600.0, 200.0, 110.0] + [90.0 / 17] * 17
    return pd.DataFrame({"g": ["a"] * 30 + ["b"] * 20, "v": [10.0] * 30 + b})


@pytest.mark.parametrize(
    ("setting", "rule"),
    [
        ({"nk_n": 3}, "nk-dominance"),
        ({"nk_k": 0.75}, "nk-dominance"),
        ({"p_ratio": 0.5}, "p-ratio"),
    ],
)
def test_dominance_settings_take_effect_in_sde_sdc(setting: dict, rule: str) -> None:  # type: ignore[type-arg]
    from sde import sdc

    df = _dominated()
    default = sdc.pivot_table(df, values="v", index="g", aggfunc="sum")  # type: ignore[arg-type]
    assert rule not in default.flags.loc["b", "v"]
    scope = Scope.load({**BASE, "sdc": setting})
    checked = sdc.pivot_table(df, values="v", index="g", aggfunc="sum", rules=scope.sdc)  # type: ignore[arg-type]
    assert rule in checked.flags.loc["b", "v"]


def test_protection_width_takes_effect_in_sde_sdc() -> None:
    import numpy as np

    from sde import sdc
    from tests.sdc.test_suppression import records_for

    df = records_for(np.array([[0, 0, 50], [4, 30, 40], [25, 35, 45]]))
    scope = Scope.load({**BASE, "sdc": {"protection_width": 30}})
    t = sdc.crosstab(df.r, df.c, margins=True, rules=scope.sdc)
    assert t.report["protection"]["audit"]["width"] == 30


def test_zeros_and_missing_switches_take_effect_in_sde_sdc() -> None:
    import pandas as pd

    from sde import sdc

    df = pd.DataFrame({"g": ["a"] * 20 + ["b"] * 20, "c": ["x"] * 20 + ["y"] * 20})
    off = Scope.load({**BASE, "sdc": {"zeros_are_disclosive": False}}).sdc
    assert "zeros" in sdc.crosstab(df.g, df.c).flags.loc["a", "y"]
    assert "zeros" not in sdc.crosstab(df.g, df.c, rules=off).flags.loc["a", "y"]
    df["v"] = [1.0] * 39 + [None]
    quiet = Scope.load({**BASE, "sdc": {"check_missing_values": False}}).sdc
    assert sdc.pivot_table(df, values="v", index="g", aggfunc="mean").status == "review"
    assert sdc.pivot_table(df, values="v", index="g", aggfunc="mean", rules=quiet).status == "pass"


def test_dof_and_survival_thresholds_take_effect_in_sde_sdc() -> None:
    import numpy as np
    import pandas as pd

    from sde import sdc

    df = pd.DataFrame({"g": ["a"] * 15 + ["b"] * 15, "v": np.arange(30, dtype=float)})
    strict = Scope.load({**BASE, "sdc": {"dof_threshold": 20}}).sdc
    assert sdc.pivot_table(df, values="v", index="g", aggfunc="std").status == "pass"
    assert sdc.pivot_table(df, values="v", index="g", aggfunc="std", rules=strict).status == "fail"
    survival = Scope.load({**BASE, "sdc": {"survival_threshold": 20}}).sdc
    time = np.repeat(np.arange(1, 7, dtype=float), 10)  # 10 events a step; last risk set 10
    event = np.ones(60, dtype=int)
    assert sdc.check_survival(time=time, event=event).status == "pass"
    assert sdc.check_survival(time=time, event=event, rules=survival).status == "fail"


def test_threshold_takes_effect_in_aggregates_mode(sentinel_nodes: object) -> None:
    import sde
    from tests.fixtures.proxy import scope_with

    sql = "SELECT race_concept_id, COUNT(DISTINCT person_id) AS n FROM person GROUP BY 1"
    sizes = {}
    for threshold in (10, 75):  # the sentinel data's race groups hold 63-79 persons
        scope = scope_with(
            project="htn-threshold", access="aggregates", sdc={"threshold": threshold}
        )
        with sde.connect(sentinel_nodes.folder, scope=scope, user="t") as conn:  # type: ignore[attr-defined]
            frame = conn.sql(sql)
        assert frame.attrs["sdc"]["threshold"] == threshold
        assert (frame.n >= threshold).all()
        sizes[threshold] = len(frame)
    assert 0 < sizes[75] < sizes[10]
