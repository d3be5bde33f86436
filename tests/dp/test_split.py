"""The split truncation (one GROUP BY finds the persons over a cap; only they go through the
per-person windows) gives exactly the totals of the windowed reference, on every engine.

The two methods must truncate every person identically, so each exact statistic (and
each quantile histogram) is compared cell by cell, on data with heavy contributors: the
small node's person with 1000 readings, visits and every IMD decile, and the synthetic
node under caps small enough that many persons exceed them.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pandas as pd
import pytest

from sde.dp.analyse import analyse
from sde.dp.plan import public_cells
from sde.dp.release import merge
from sde.dp.rewrite import ExactPlan, rewrite
from tests.fixtures.dp import HEAVY, build_dp_node, run_on

SBP = "measurement_concept_id = 3004249"
IMD_JOIN = (
    "FROM measurement m JOIN observation o ON o.person_id = m.person_id "
    "WHERE m.measurement_concept_id = 3004249 AND o.observation_concept_id = 2000000001 "
)

#: (query, rows, groups): counts only, values, quantiles; with and without group caps.
CASES = [
    ("SELECT COUNT(*) FROM visit_occurrence", 3, 1),
    ("SELECT COUNT(*) AS n, COUNT(DISTINCT person_id) AS p FROM visit_occurrence", 2, 1),
    ("SELECT visit_concept_id, COUNT(*) AS n FROM visit_occurrence GROUP BY 1", 2, 1),
    (
        "SELECT visit_concept_id, COUNT(*) AS n, COUNT(DISTINCT person_id) AS p "
        "FROM visit_occurrence GROUP BY 1",
        3,
        2,
    ),
    (
        "SELECT o.value_as_number AS imd, COUNT(*) AS n FROM person p "
        "JOIN observation o ON o.person_id = p.person_id GROUP BY 1",
        1,
        1,
    ),
    (
        "SELECT o.value_as_number AS imd, COUNT(*) AS n, AVG(m.value_as_number) AS sbp, "
        "SUM(m.value_as_number) AS s, VARIANCE(m.value_as_number) AS v " + IMD_JOIN + "GROUP BY 1",
        5,
        1,
    ),
    (
        "SELECT o.value_as_number AS imd, COUNT(DISTINCT m.person_id) AS persons, "
        "SUM(m.value_as_number) AS s " + IMD_JOIN + "GROUP BY 1",
        4,
        3,
    ),
    ("SELECT AVG(value_as_number) AS a FROM measurement WHERE " + SBP, 2, 1),
    ("SELECT COUNT(visit_concept_id) AS n FROM visit_occurrence", 2, 1),  # MD5 row order
    (
        "SELECT o.value_as_number AS imd, MEDIAN(m.value_as_number) AS med, "
        "AVG(m.value_as_number) AS a " + IMD_JOIN + "GROUP BY 1",
        3,
        2,
    ),
    ("SELECT MEDIAN(value_as_number) AS med FROM measurement WHERE " + SBP, 4, 1),
    (
        "SELECT c.condition_concept_id AS c, COUNT(*) AS n, SUM(m.value_as_number) AS s "
        "FROM measurement m LEFT JOIN condition_occurrence c ON c.person_id = m.person_id "
        "WHERE m." + SBP + " GROUP BY 1",
        3,
        2,
    ),
]


def _plans(sql: str, rows: int, groups: int, *, threshold: bool = False) -> dict[str, ExactPlan]:
    a = analyse(sql)
    cells = public_cells(a)
    cap = cells is None or groups < len(cells)
    return {
        m: rewrite(
            a,
            rows=rows,
            groups=groups,
            salt="s",
            threshold=threshold or cells is None,
            cap_groups=cap,
            method=m,
        )
        for m in ("window", "split")
    }


def _totals(run: object, plan: ExactPlan) -> tuple[pd.DataFrame, dict[int, pd.DataFrame]]:
    """Merged totals and histograms; from the one-pass SQL when the plan has one."""
    execute = run  # a callable (sql) -> DataFrame
    if plan.combined is not None:
        exact, hists = plan.split(execute(plan.combined))  # type: ignore[operator]
    else:
        exact = execute(plan.sql)  # type: ignore[operator]
        hists = {j: execute(h) for j, (h, _) in plan.histograms.items()}  # type: ignore[operator]
    totals = merge(exact, plan.key_cols, plan.stats)
    merged = {j: merge(h, [*plan.key_cols, "_dp_bin"], ["n"]) for j, h in hists.items()}
    return totals, merged


def _assert_same(a: tuple[pd.DataFrame, dict], b: tuple[pd.DataFrame, dict], obj: str) -> None:  # type: ignore[type-arg]
    pd.testing.assert_frame_equal(a[0], b[0], obj=obj)
    assert a[1].keys() == b[1].keys()
    for j in a[1]:
        pd.testing.assert_frame_equal(a[1][j], b[1][j], obj=f"{obj} histogram {j}")


@pytest.mark.parametrize(("sql", "rows", "groups"), CASES)
def test_split_equals_windows(
    dp_node: duckdb.DuckDBPyConnection, sql: str, rows: int, groups: int
) -> None:
    run = run_on(dp_node)
    plans = _plans(sql, rows, groups)
    window = _totals(lambda q: run(q, "postgres"), plans["window"])
    split = _totals(lambda q: run(q, "postgres"), plans["split"])
    _assert_same(window, split, sql)
    assert len(window[0]) > 0


def test_split_equals_windows_with_thresholded_keys(dp_node: duckdb.DuckDBPyConnection) -> None:
    run = run_on(dp_node)
    sql = (
        "SELECT visit_start_date AS d, COUNT(*) AS n, COUNT(visit_concept_id) AS k "
        "FROM visit_occurrence GROUP BY 1"
    )
    for rows, groups in ((1, 1), (2, 3)):
        plans = _plans(sql, rows, groups, threshold=True)
        assert "n_persons" in plans["split"].stats
        _assert_same(
            _totals(lambda q: run(q, "postgres"), plans["window"]),
            _totals(lambda q: run(q, "postgres"), plans["split"]),
            f"{rows}/{groups}",
        )


def test_one_pass_sql_equals_separate_totals_and_histogram(
    dp_node: duckdb.DuckDBPyConnection,
) -> None:
    run = run_on(dp_node)
    plan = _plans(CASES[9][0], 3, 2)["split"]
    assert plan.combined is not None
    separate = (
        merge(run(plan.sql, "postgres"), plan.key_cols, plan.stats),
        {
            j: merge(run(h, "postgres"), [*plan.key_cols, "_dp_bin"], ["n"])
            for j, (h, _) in plan.histograms.items()
        },
    )
    _assert_same(separate, _totals(lambda q: run(q, "postgres"), plan), "one pass")


@pytest.fixture(scope="module")
def with_null_persons(dp_node: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """The small node plus readings and visits that belong to no person (NULL person_id):
    the windows treat them as one partition; the split must send them there too."""
    con = duckdb.connect()
    build_dp_node(con, persons=0, heavy=False)
    for t in ("person", "measurement", "observation", "visit_occurrence", "condition_occurrence"):
        con.execute(f"ALTER TABLE {t} ALTER COLUMN person_id DROP NOT NULL")
        con.register("_t", dp_node.execute(f"SELECT * FROM {t}").df())
        con.execute(f"INSERT INTO {t} SELECT * FROM _t")
        con.unregister("_t")
    con.execute(
        "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, "
        "measurement_date, measurement_type_concept_id, value_as_number) "
        "SELECT 900000 + i, NULL, 3004249, DATE '2020-01-01', 32817, 100 + i FROM range(12) t(i)"
    )
    con.execute(
        "INSERT INTO visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, "
        "visit_start_date, visit_end_date, visit_type_concept_id) "
        "SELECT 900000 + i, NULL, 9201 + i % 3, DATE '2021-01-01', DATE '2021-01-01', 32817 "
        "FROM range(9) t(i)"
    )
    yield con
    con.close()


@pytest.mark.parametrize(
    ("sql", "rows", "groups"),
    [
        ("SELECT COUNT(*) AS n, COUNT(DISTINCT person_id) AS p FROM visit_occurrence", 2, 1),
        ("SELECT visit_concept_id, COUNT(*) AS n FROM visit_occurrence GROUP BY 1", 2, 1),
        ("SELECT visit_concept_id, COUNT(*) AS n FROM visit_occurrence GROUP BY 1", 2, 2),
        (
            "SELECT AVG(value_as_number) AS a, MEDIAN(value_as_number) AS m FROM measurement "
            "WHERE " + SBP,
            3,
            1,
        ),
    ],
)
def test_rows_without_a_person_truncate_as_one_partition(
    with_null_persons: duckdb.DuckDBPyConnection, sql: str, rows: int, groups: int
) -> None:
    run = run_on(with_null_persons)
    plans = _plans(sql, rows, groups)
    _assert_same(
        _totals(lambda q: run(q, "postgres"), plans["window"]),
        _totals(lambda q: run(q, "postgres"), plans["split"]),
        sql,
    )


def test_only_persons_over_a_cap_are_ranked(dp_node: duckdb.DuckDBPyConnection) -> None:
    """The persons sent through the windows are the heavy one (and no one within the caps)."""
    sql = "SELECT AVG(value_as_number) AS a FROM measurement WHERE " + SBP
    plan = _plans(sql, rows=3, groups=1)["split"]
    over = plan.sql.split(", _dp_e AS ")[0] + " SELECT _dp_pid FROM _dp_x"
    ids = set(run_on(dp_node)(over, "postgres")["_dp_pid"])
    assert ids == {HEAVY}


ENGINE_CASES = [
    ("SELECT COUNT(*) AS n, COUNT(DISTINCT person_id) AS p FROM visit_occurrence", 2, 1),
    ("SELECT visit_concept_id, COUNT(*) AS n FROM visit_occurrence GROUP BY 1", 2, 1),
    (
        "SELECT visit_concept_id, COUNT(*) AS n, COUNT(DISTINCT person_id) AS p "
        "FROM visit_occurrence GROUP BY 1",
        3,
        2,
    ),
    (
        "SELECT o.value_as_number AS imd, COUNT(DISTINCT m.person_id) AS persons, "
        "AVG(m.value_as_number) AS sbp, SUM(m.value_as_number) AS total, "
        "STDDEV(m.value_as_number) AS sd " + IMD_JOIN + "GROUP BY 1",
        2,
        1,
    ),
    (
        "SELECT o.value_as_number AS imd, MEDIAN(m.value_as_number) AS med, "
        "SUM(m.value_as_number) AS s " + IMD_JOIN + "GROUP BY 1",
        2,
        2,
    ),
]


@pytest.mark.postgres
@pytest.mark.spark
def test_split_equals_windows_on_every_engine(engines) -> None:  # type: ignore[no-untyped-def]
    """DuckDB, PostgreSQL and Spark: split == windows == the same totals everywhere, under
    caps that many persons of the synthetic node exceed."""
    from sde.backends.dialect import transpile

    for sql, rows, groups in ENGINE_CASES:
        plans = _plans(sql, rows, groups)
        reference = _totals(
            lambda q: engines["duckdb"].query(transpile(q, "duckdb")), plans["window"]
        )
        for name, backend in engines.items():
            got = _totals(lambda q, b=backend: b.query(transpile(q, b.dialect)), plans["split"])
            _assert_same(reference, got, f"{name}: {sql}")
