"""The cohort's size per node on the review page: the extract's persons, rounded to the
nearest 10, never shown below 10."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

import sde
from access_committee.cohort_size import NodeSize, cohort_sizes, node_files, rounded, shown
from sde.scope import Scope

COPD, EMPHYSEMA, ASTHMA = 255573, 261325, 317009


def node_file(path: Path, rows: list[tuple[int, int, str]], opted_out: set[int]) -> Path:
    """A node file with the tables the cohort reads: (person, condition, start date) rows."""
    persons = sorted({p for p, _, _ in rows} | opted_out)
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE person (person_id BIGINT)")
    con.execute("CREATE TABLE sde_opt_out (person_id BIGINT)")
    con.execute(
        "CREATE TABLE condition_occurrence "
        "(person_id BIGINT, condition_concept_id INTEGER, condition_start_date DATE)"
    )
    con.execute(
        "CREATE TABLE concept_ancestor (ancestor_concept_id INTEGER, descendant_concept_id INTEGER)"
    )
    con.executemany("INSERT INTO person VALUES (?)", [(p,) for p in persons])
    for p in sorted(opted_out):
        con.execute("INSERT INTO sde_opt_out VALUES (?)", [p])
    con.executemany("INSERT INTO condition_occurrence VALUES (?, ?, ?)", rows)
    con.executemany(
        "INSERT INTO concept_ancestor VALUES (?, ?)",
        [(COPD, COPD), (COPD, EMPHYSEMA), (ASTHMA, ASTHMA)],
    )
    con.close()
    return path


def _scope(**changes: object) -> Scope:
    return Scope.from_dict(
        {
            "project": "p",
            "access": "aggregates",
            "tables": {"person": ["person_id"]},
            "nodes": ["lth", "elht", "umbh"],
            "cohort": {"any_condition": [COPD]},
            **changes,
        }
    )


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "fewer than 10"), (1, "fewer than 10"), (9, "fewer than 10"), (10, "about 10"),
     (14, "about 10"), (15, "about 20"), (96, "about 100"), (1_004, "about 1,000")],
)  # fmt: skip
def test_rounding(n: int, text: str) -> None:
    assert shown(n) == text
    expected = None if n < 10 else int(text.removeprefix("about ").replace(",", ""))
    assert rounded(n) == expected


@pytest.fixture
def nodes(tmp_path: Path) -> Path:
    # lth: 4 with COPD (fewer than 10). elht: 12 with emphysema (a kind of COPD) and 3 with
    # COPD, 2 more with COPD who opted out, 5 with asthma only: 15 in the cohort, 8 of
    # them with a COPD record in 2020. umbh: 14 with COPD.
    node_file(tmp_path / "lth.duckdb", [(p, COPD, "2020-03-01") for p in range(4)], set())
    elht = [(100 + p, EMPHYSEMA, "2020-06-01" if p < 8 else "2015-01-01") for p in range(12)]
    elht += [(200 + p, COPD, "2016-01-01") for p in range(3)]
    elht += [(300 + p, COPD, "2020-01-01") for p in range(2)]
    elht += [(400 + p, ASTHMA, "2020-01-01") for p in range(5)]
    node_file(tmp_path / "elht.duckdb", elht, {300, 301})
    node_file(tmp_path / "umbh.duckdb", [(p, COPD, "2019-01-01") for p in range(14)], set())
    return tmp_path


def test_sizes_per_node_rounded(nodes: Path) -> None:
    period = {"start": "2020-01-01", "end": "2020-12-31"}
    sizes = cohort_sizes(_scope(period=period), ["lth", "elht", "umbh"], str(nodes))
    assert sizes == [
        NodeSize("lth", "fewer than 10", "fewer than 10"),
        NodeSize("elht", "about 20", "fewer than 10"),
        NodeSize("umbh", "about 10", "fewer than 10"),
    ]


def test_without_a_period_or_cohort(nodes: Path) -> None:
    assert cohort_sizes(_scope(), ["elht"], str(nodes)) == [NodeSize("elht", "about 20")]
    everyone = cohort_sizes(_scope(cohort=None), ["elht"], str(nodes))
    assert everyone == [NodeSize("elht", "about 20")]  # 20 persons, 2 opted out: 18


def test_a_node_without_data_says_so(nodes: Path) -> None:
    (missing,) = cohort_sizes(_scope(), ["xyz"], str(nodes))
    assert missing.persons is None
    assert missing.missing == "this node's data is not readable here"
    assert node_files("postgresql://host/db") == {}
    assert cohort_sizes(_scope(), ["lth"], None)[0].missing is not None


def test_the_count_is_the_extracts_persons(synth_dir: Path, tmp_path: Path) -> None:
    """On the synthetic population, the rounded count is the extract's person count, rounded."""
    scope = {
        "project": "copd-check",
        "access": "rows",
        "tables": {"person": ["person_id"]},
        "nodes": ["lth"],
        "cohort": {"any_condition": [COPD]},
        "expires": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
    }
    # a registry of its own: the default sits beside the data, in the shared synth folder
    registry = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    conn = sde.connect(synth_dir / "lth.duckdb", scope=scope, registry=registry)
    try:
        persons = int(conn.sql("SELECT COUNT(*) AS n FROM person")["n"][0])
    finally:
        conn.close()
    assert persons >= 10
    (size,) = cohort_sizes(Scope.from_dict(scope), ["lth"], str(synth_dir))
    assert size.persons == shown(persons)


def test_periods_a_day_apart_cannot_be_differenced(tmp_path: Path) -> None:
    """The in-period count covers the period's whole calendar years, so moving an end by a
    day never shows, by difference, the one person recorded on that day."""
    rows = [(p, COPD, "2020-01-01") for p in range(24)] + [(99, COPD, "2020-06-15")]
    node_file(tmp_path / "lth.duckdb", rows, set())
    before = _scope(period={"start": "2020-01-01", "end": "2020-06-14"})
    after = _scope(period={"start": "2020-01-01", "end": "2020-06-15"})
    one = cohort_sizes(before, ["lth"], str(tmp_path))
    assert one == cohort_sizes(after, ["lth"], str(tmp_path))
    assert one == [NodeSize("lth", "about 30", "about 30")]  # 25 persons, all in 2020
    later = cohort_sizes(_scope(period={"start": "2021-01-01"}), ["lth"], str(tmp_path))
    assert later == [NodeSize("lth", "about 30", "fewer than 10")]
