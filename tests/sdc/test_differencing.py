"""The differencing ledger catches the classic attacks and names the earlier release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sde import sdc
from sde.registry.db import open_registry


@pytest.fixture
def ledger(tmp_path: Path) -> sdc.DifferencingLedger:
    return sdc.open_ledger(f"sqlite:///{tmp_path / 'registry.sqlite'}", "htn-deprivation")


@pytest.fixture
def people() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 2000
    df = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "age": rng.choice(["18-39", "40-64", "65+"], n),
            "year": rng.integers(2015, 2021, n),
            "diagnosis": rng.choice(["HTN", "T2D", "asthma"], n),
        }
    )
    # Rare groups: 4 people with COPD, all aged 65+; 3 people recorded in 2021 only.
    copd = pd.DataFrame(
        {"sex": ["F", "M", "F", "M"], "age": "65+", "year": 2018, "diagnosis": "COPD"}
    )
    late = pd.DataFrame({"sex": ["F", "F", "M"], "age": "40-64", "year": 2021, "diagnosis": "HTN"})
    return pd.concat([df, copd, late], ignore_index=True)


def test_one_more_category_in_a_filter_is_caught(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame
) -> None:
    base = people[people.diagnosis.isin(["HTN", "T2D", "asthma"])]
    first = sdc.crosstab(
        base.age, base.sex, ledger=ledger, filters={"diagnosis": {"HTN", "T2D", "asthma"}}
    )
    assert first.status == "pass"
    ledger.record_table("table 1 (release 3)", first)
    wider = people
    second = sdc.crosstab(
        wider.age,
        wider.sex,
        ledger=ledger,
        filters={"diagnosis": {"HTN", "T2D", "asthma", "COPD"}},
    )
    assert second.status == "fail"
    assert second.flags.loc["65+", "F"] == ("differencing",)
    assert second.flags.loc["18-39", "F"] == ()
    found = second.report["differencing"]
    assert {f["release"] for f in found} == {"table 1 (release 3)"}
    assert sorted(f["difference"] for f in found) == [2, 2]
    assert np.isnan(second.safe.loc["65+", "F"])


def test_one_more_period_is_caught(ledger: sdc.DifferencingLedger, people: pd.DataFrame) -> None:
    people = people[people.diagnosis != "COPD"]  # keep the earlier table fully published
    early = people[people.year <= 2020]
    ledger.record_table(
        "2015-2020",
        sdc.crosstab(early.diagnosis, early.sex, filters={"year": sdc.Between(2015, 2020)}),
    )
    t = sdc.crosstab(
        people.diagnosis, people.sex, ledger=ledger, filters={"year": sdc.Between(2015, 2021)}
    )
    assert t.flags.loc["HTN", "F"] == ("differencing",)
    assert t.flags.loc["HTN", "M"] == ("differencing",)
    assert t.flags.loc["T2D", "F"] == ()
    assert {h["difference"] for h in t.report["differencing"]} == {1, 2}
    assert all(h["release"] == "2015-2020" for h in t.report["differencing"])


def test_total_then_total_minus_a_subgroup(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame
) -> None:
    everyone = pd.Series(["all"] * len(people), name="cohort")
    ledger.record_table("cohort size", sdc.crosstab(everyone, people.sex, margins=True))
    not_copd = people[people.diagnosis != "COPD"]
    t = sdc.crosstab(
        pd.Series(["all"] * len(not_copd), name="cohort"),
        not_copd.sex,
        margins=True,
        ledger=ledger,
        filters={"diagnosis": {"HTN", "T2D", "asthma"}},
    )
    assert t.status == "fail"
    diffs = {tuple(f["cell"]): f["difference"] for f in t.report["differencing"]}
    assert diffs[(0, 2)] == 4  # the total: 4 people with COPD
    assert diffs[(0, 0)] == 2


def test_nested_grouping_is_caught(ledger: sdc.DifferencingLedger, people: pd.DataFrame) -> None:
    ledger.record_table(
        "by age", sdc.crosstab(people.age, pd.Series(["n"] * len(people), name="k"))
    )
    no_copd = people[people.diagnosis != "COPD"]
    t = sdc.crosstab(
        no_copd.age,
        pd.Series(["n"] * len(no_copd), name="k"),
        ledger=ledger,
        filters={"diagnosis": {"HTN", "T2D", "asthma"}},
    )
    assert t.flags.loc["65+", "n"] == ("differencing",)


def test_identical_or_far_apart_releases_are_fine(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame
) -> None:
    first = sdc.crosstab(people.age, people.sex)
    ledger.record_table("first", first)
    again = sdc.crosstab(people.age, people.sex, ledger=ledger)
    assert again.status == "pass"
    half = people.iloc[: len(people) // 2]
    other = sdc.crosstab(half.age, half.sex, ledger=ledger, filters={"half": {"first"}})
    assert other.status == "pass"  # differences of hundreds reveal no small group


def test_suppressed_cells_of_earlier_releases_are_not_compared(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame
) -> None:
    copd = people[people.diagnosis == "COPD"]
    small = sdc.crosstab(copd.age, copd.sex, filters={"diagnosis": {"COPD"}})
    ledger.record_table("copd", small)
    spec = small.release_cells()
    assert not any(c.published for c in spec.cells)


def test_ledger_lives_in_the_registry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    engine = open_registry(url)
    from sqlalchemy import inspect

    assert "sdc_releases" in inspect(engine).get_table_names()
    ledger = sdc.open_ledger(url, "p")
    ledger.record("t", [sdc.Cell({"sex": sdc.In({"F"})}, 12)], "default", "records")
    assert [name for name, _ in ledger.releases("default", "records")] == ["t"]
    assert sdc.open_ledger(url, "other").releases("default", "records") == []


def test_records_then_persons_of_the_same_table_is_caught(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame
) -> None:
    # Three people have a second record in their cell: the records table and the
    # persons table of the same cells differ by a small group.
    df = people.assign(pid=np.arange(len(people)))
    repeat = df[(df.age == "18-39") & (df.sex == "F")].head(3)
    df = pd.concat([df, repeat], ignore_index=True)
    ledger.record_table("records", sdc.crosstab(df.age, df.sex))
    t = sdc.crosstab(df.age, df.sex, persons=df.pid, ledger=ledger)
    # Also "unprotected": the other cells are known from "records", the totals pin it.
    assert t.flags.loc["18-39", "F"] == ("differencing", "unprotected")
    assert t.flags.loc["40-64", "M"] == ()
    assert [(f["release"], f["difference"]) for f in t.report["differencing"]] == [("records", 3)]


def test_records_then_persons_with_a_filter_is_caught(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame
) -> None:
    df = people.assign(pid=np.arange(len(people)))
    ledger.record_table("records", sdc.crosstab(df.age, df.sex))
    rest = df[df.diagnosis != "COPD"]
    t = sdc.crosstab(
        rest.age,
        rest.sex,
        persons=rest.pid,
        ledger=ledger,
        filters={"diagnosis": {"HTN", "T2D", "asthma"}},
    )
    assert t.flags.loc["65+", "F"] == ("differencing",)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (sdc.Between(2015, 2020), sdc.Between("2015", "2021")),
        (sdc.Between("2015", "2020"), sdc.Between(2015, 2021)),
        ({"2015", "2016", "2017", "2018", "2019", "2020"}, sdc.Between(2015, 2021)),
        (sdc.Between(2015.0, 2020.0), {str(y) for y in range(2015, 2022)}),
    ],
)
def test_the_same_filter_with_another_label_type_is_caught(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame, first: object, second: object
) -> None:
    people = people[people.diagnosis != "COPD"]
    early = people[people.year <= 2020]
    ledger.record_table(
        "2015-2020", sdc.crosstab(early.diagnosis, early.sex, filters={"year": first})
    )
    t = sdc.crosstab(people.diagnosis, people.sex, ledger=ledger, filters={"Year ": second})
    assert t.flags.loc["HTN", "F"] == ("differencing",)
    assert t.flags.loc["T2D", "F"] == ()


def test_row_labels_of_another_type_are_the_same_labels(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame
) -> None:
    people = people[people.year <= 2020]  # nothing suppressed in the first release
    ledger.record_table("by year", sdc.crosstab(people.year, people.sex))
    rest = people.drop(index=people.index[people.year == 2016][:1])
    t = sdc.crosstab(rest.year.astype(str), rest.sex, ledger=ledger)
    assert t.status == "fail"
    assert [f["difference"] for f in t.report["differencing"]] == [1]


def test_equal_descriptions_with_a_smaller_count_are_caught(
    ledger: sdc.DifferencingLedger, people: pd.DataFrame
) -> None:
    # An undescribed filter: the second table drops one person and says nothing.
    ledger.record_table("by age", sdc.crosstab(people.age, people.sex, margins=True))
    one = people.index[(people.age == "40-64") & (people.sex == "M")][0]
    rest = people.drop(index=one)
    t = sdc.crosstab(rest.age, rest.sex, margins=True, ledger=ledger)
    assert t.status == "fail"
    flagged = {tuple(f["cell"]) for f in t.report["differencing"]}
    assert (1, 1) in flagged  # 40-64, M
    assert (0, 0) not in flagged
    assert {f["difference"] for f in t.report["differencing"]} == {1}
