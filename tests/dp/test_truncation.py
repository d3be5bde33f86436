"""Contribution bounding: one person (1000 visits and readings) moves any total by at most the
declared sensitivity, and truncation never depends on other persons' data."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from sde.dp.analyse import analyse
from sde.dp.metadata import Metadata
from sde.dp.plan import build
from sde.dp.release import merge
from tests.fixtures.dp import HEAVY, build_dp_node, run_on

TABLES = ("person", "measurement", "observation", "visit_occurrence", "condition_occurrence")

QUERIES = [
    ("SELECT COUNT(*) FROM visit_occurrence", 3, 1),
    (
        "SELECT visit_concept_id, COUNT(*) AS n, COUNT(DISTINCT person_id) AS p "
        "FROM visit_occurrence GROUP BY 1",
        4,
        2,
    ),
    (
        "SELECT o.value_as_number AS imd, COUNT(*) AS n, AVG(m.value_as_number) AS sbp, "
        "SUM(m.value_as_number) AS s, VARIANCE(m.value_as_number) AS v "
        "FROM measurement m JOIN observation o ON o.person_id = m.person_id "
        "WHERE m.measurement_concept_id = 3004249 AND o.observation_concept_id = 2000000001 "
        "GROUP BY 1",
        5,
        3,
    ),
    (
        "SELECT COUNT(*) FROM person p JOIN visit_occurrence v ON v.person_id = p.person_id "
        "WHERE p.person_id IN (SELECT person_id FROM measurement WHERE value_as_number > 150)",
        10,
        1,
    ),
]


def _split(full: duckdb.DuckDBPyConnection) -> tuple[duckdb.DuckDBPyConnection, ...]:
    """(everyone but the heavy person, the heavy person alone) as in-memory copies."""
    parts = []
    for op in ("<>", "="):
        con = duckdb.connect()
        build_dp_node(con, persons=0, heavy=False)
        for t in TABLES:
            con.register("_t", full.execute(f"SELECT * FROM {t} WHERE person_id {op} {HEAVY}").df())
            con.execute(f"INSERT INTO {t} SELECT * FROM _t")
            con.unregister("_t")
        parts.append(con)
    return parts[0], parts[1]


@pytest.fixture(scope="module")
def split(dp_node: duckdb.DuckDBPyConnection) -> tuple[duckdb.DuckDBPyConnection, ...]:
    return _split(dp_node)


def _totals(
    con: duckdb.DuckDBPyConnection, sql: str, keys: list[str], stats: list[str]
) -> pd.DataFrame:
    merged = merge(run_on(con)(sql, "postgres"), keys, stats)
    return merged.set_index("_cell") if keys else merged


@pytest.mark.parametrize(("sql", "rows", "groups"), QUERIES)
def test_one_person_moves_totals_by_at_most_the_sensitivity(
    dp_node: duckdb.DuckDBPyConnection,
    split: tuple[duckdb.DuckDBPyConnection, ...],
    sql: str,
    rows: int,
    groups: int,
) -> None:
    a = analyse(sql)
    plan = build(
        a,
        epsilon=1.0,
        delta=1e-6,
        rows=rows,
        groups=groups,
        salt="s",
        defaults=Metadata.default().defaults,
    )
    keys, stats = plan.exact.key_cols, plan.exact.stats
    full = _totals(dp_node, plan.exact.sql, keys, stats)
    rest = _totals(split[0], plan.exact.sql, keys, stats)
    alone = _totals(split[1], plan.exact.sql, keys, stats)
    diff = full.sub(rest, fill_value=0).fillna(0)
    # truncation is per person and ordered by the person's own rows: totals are additive
    pd.testing.assert_frame_equal(
        diff.astype("int64"),
        alone.reindex(diff.index).fillna(0).astype("int64"),
        check_names=False,
    )
    # ... and the heavy person's part is within what the mechanisms were built for
    assert (diff.abs().to_numpy() > 0).any(axis=1).sum() <= plan.groups
    for stat, mech in plan.vectors.items():
        assert np.abs(diff[stat]).sum() <= mech.l1, stat


def test_heavy_person_is_truncated_to_max_rows(
    dp_node: duckdb.DuckDBPyConnection, split: tuple[duckdb.DuckDBPyConnection, ...]
) -> None:
    sql = "SELECT COUNT(*) FROM visit_occurrence"
    plan = build(
        analyse(sql),
        epsilon=1.0,
        delta=None,
        rows=7,
        groups=1,
        salt="s",
        defaults=Metadata.default().defaults,
    )
    alone = run_on(split[1])(plan.exact.sql, "postgres")
    assert int(alone["n_rows"].iloc[0]) == 7  # 1000 visits, 7 kept


def test_quantile_histograms_bounded_per_person(
    split: tuple[duckdb.DuckDBPyConnection, ...],
) -> None:
    sql = (
        "SELECT o.value_as_number AS imd, MEDIAN(m.value_as_number) FROM measurement m "
        "JOIN observation o ON o.person_id = m.person_id WHERE m.measurement_concept_id = "
        "3004249 AND o.observation_concept_id = 2000000001 GROUP BY 1"
    )
    plan = build(
        analyse(sql),
        epsilon=1.0,
        delta=None,
        rows=4,
        groups=2,
        salt="s",
        defaults=Metadata.default().defaults,
    )
    ((hist_sql, _),) = plan.exact.histograms.values()
    h = run_on(split[1])(hist_sql, "postgres")
    per_cell = h.groupby("_dp_k0")["n"].sum()
    assert len(per_cell) <= 2
    assert per_cell.max() <= 4


def test_truncation_is_deterministic(dp_node: duckdb.DuckDBPyConnection) -> None:
    sql, rows, groups = QUERIES[2]
    plan = build(
        analyse(sql),
        epsilon=1.0,
        delta=None,
        rows=rows,
        groups=groups,
        salt="s",
        defaults=Metadata.default().defaults,
    )
    run = run_on(dp_node)
    first = run(plan.exact.sql, "postgres").sort_values("_dp_k0").reset_index(drop=True)
    again = run(plan.exact.sql, "postgres").sort_values("_dp_k0").reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)
