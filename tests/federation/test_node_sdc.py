"""Node-level disclosure control: exactly the stated rule of docs/federation.md (round 1:
only groups that are not small leave; round 2: probes); and the
node-part shape a node accepts (:func:`sde.federation.node.check_shape`)."""

from __future__ import annotations

import pandas as pd
import pytest

from sde.errors import InvalidInput, ScopeViolation
from sde.federation.node import check_shape
from sde.federation.node_sdc import SMALL, probe, protect
from sde.proxy.parse import parse_sql


def _part(counts: list[int | None], second: list[int] | None = None) -> pd.DataFrame:
    n = len(counts)
    frame = pd.DataFrame(
        {
            "f_k0": pd.array(list(range(n)), dtype="Int64"),
            "f_k1": pd.Series([f"g{i}" for i in range(n)], dtype=object),
            "f_a0": pd.array([100 + i for i in range(n)], dtype="Int64"),
            "f_a1": [0.5 * i for i in range(n)],
            "__sde_persons_0": pd.array(counts, dtype="Int64"),
        }
    )
    if second is not None:
        frame["__sde_persons_1"] = pd.array(second, dtype="Int64")
    return frame


@pytest.mark.parametrize(
    ("count", "small"),
    [(0, False), (1, True), (5, True), (9, True), (10, False), (11, False), (1000, False)],
)
def test_a_group_is_small_when_a_count_is_1_to_threshold_minus_1(count: int, small: bool) -> None:
    """A small group is not sent at all (round 1): not its keys, not a flag."""
    out = protect(_part([count]), 10)
    assert len(out) == (0 if small else 1)
    assert out[SMALL].tolist() == ([] if small else [False])


def test_large_rows_go_unchanged_and_small_ones_not_at_all() -> None:
    part = _part([50, 3, 12])
    out = protect(part, 10)
    assert out[SMALL].tolist() == [False, False]
    expected = part.loc[[0, 2]].reset_index(drop=True)
    pd.testing.assert_frame_equal(out[list(part.columns)], expected)
    assert str(out[SMALL].dtype) == "boolean"
    assert list(out.columns) == [*part.columns, SMALL]


def test_any_small_count_makes_the_group_small() -> None:
    out = protect(_part([50, 50, 0], second=[50, 4, 0]), 10)
    assert out["f_k0"].tolist() == [0, 2]


def test_the_threshold_is_the_projects() -> None:
    assert len(protect(_part([4]), 5)) == 0
    assert len(protect(_part([5]), 5)) == 1


def test_a_null_count_fails_closed() -> None:
    assert len(protect(_part([None]), 10)) == 0


def test_no_person_counts_means_nothing_is_small() -> None:
    part = _part([1]).drop(columns="__sde_persons_0")
    assert protect(part, 10)[SMALL].tolist() == [False]


def test_an_empty_part_gets_the_column() -> None:
    out = protect(_part([]), 10)
    assert list(out.columns)[-1] == SMALL
    assert len(out) == 0


def test_a_probe_says_small_for_the_small_keys_only() -> None:
    small = pd.DataFrame(
        {
            "f_k0": pd.array([1, 2, None], dtype="Int64"),
            "f_k1": pd.to_datetime(["2020-01-02", "2020-01-03", "2021-05-06"]),
        }
    )
    keys = [[1, "2020-01-02"], [1, "2020-01-03"], [None, "2021-05-06"], [2.0, "2020-01-03"]]
    assert probe(small, keys, keys_count=2) == [True, False, True, True]
    assert probe(small.iloc[:0], keys, keys_count=2) == [False] * 4


def test_a_probe_of_another_width_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        probe(pd.DataFrame({"f_k0": [1]}), [[1, 2]], keys_count=1)
    assert caught.value.rule == "federation.bad-request"


@pytest.mark.parametrize("column", ["person_id", "f_x0", "__sde_small", "n"])
def test_an_unexpected_column_is_refused(column: str) -> None:
    part = _part([50])
    part[column] = 1
    with pytest.raises(ScopeViolation) as caught:
        protect(part, 10)
    assert caught.value.rule == "federation.node-shape"


# -- the node part's shape -----------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) AS f_a0 FROM person",
        "SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a",
        "SELECT a AS f_k0, b + 1 AS f_k1, SUM(x) AS f_a0, COUNT(*) AS f_a1 FROM t GROUP BY 1, 2",
        "SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY f_k0",
        "WITH c AS (SELECT a FROM t) SELECT a AS f_k0, COUNT(*) AS f_a0 FROM c GROUP BY a",
        "SELECT a AS f_k0, COUNT(*) AS f_a0 FROM (SELECT a, ROW_NUMBER() OVER () AS r FROM t) AS s "
        "GROUP BY a",
        "SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t WHERE b IN (SELECT b FROM u ORDER BY b LIMIT 3) "
        "GROUP BY a",
    ],
)
def test_node_parts_of_the_stated_shape_pass(sql: str) -> None:
    check_shape(parse_sql(sql, "postgres"), "demo")


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a HAVING COUNT(*) > 1", "HAVING"),
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a ORDER BY 1", "ORDER BY"),
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a LIMIT 5", "LIMIT"),
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a OFFSET 5", "OFFSET"),
        ("SELECT DISTINCT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a", "DISTINCT"),
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a QUALIFY f_a0 > 1", "QUALIFY"),
        ("SELECT a AS f_k0, SUM(COUNT(*)) OVER () AS f_a0 FROM t GROUP BY a", "window"),
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY ROLLUP (a)", "ROLLUP"),
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t", "grouped by exactly"),
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a, b", "grouped by exactly"),
        ("SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY 2", "grouped by exactly"),
        ("SELECT a AS f_k0 FROM t GROUP BY a", "no partial aggregate"),
        ("SELECT a AS f_k0, b AS f_a0 FROM t GROUP BY a", "f_a0 is not an aggregate"),
        ("SELECT COUNT(*) AS f_k0, COUNT(*) AS f_a0 FROM t", "key f_k0 is an aggregate"),
        ("SELECT a AS f_k1, COUNT(*) AS f_a0 FROM t GROUP BY a", "not the next"),
        ("SELECT COUNT(*) AS f_a0, a AS f_k0 FROM t GROUP BY a", "not the next"),
        ("SELECT a, COUNT(*) AS f_a0 FROM t GROUP BY a", "not the next"),
        (
            "SELECT a AS f_k0, COUNT(*) AS f_a0 FROM t GROUP BY a UNION ALL SELECT 1, 2",
            "one SELECT",
        ),
    ],
)
def test_node_parts_of_another_shape_are_refused(sql: str, says: str) -> None:
    with pytest.raises(ScopeViolation, match=says) as caught:
        check_shape(parse_sql(sql, "duckdb"), "demo")
    assert caught.value.rule == "federation.node-shape"


# -- round 2's probe filter: what a node reads depends on the probe only -----------------------


def _filtered(types: list[str], keys: list[list[object]]) -> str:
    from sqlglot import exp

    from sde.federation.node_sdc import probe_filter

    found = probe_filter([exp.DataType.build(t) for t in types], keys)  # type: ignore[arg-type]
    return found.sql(dialect="duckdb") if found is not None else ""


def test_the_probe_filter_writes_each_columns_values_in_its_type() -> None:
    sql = _filtered(
        ["BIGINT", "DATE", "TIMESTAMP", "VARCHAR", "BOOLEAN"],
        [[3, "2020-01-02", "2020-01-02", "a'b", True], [2.5, None, "2020-01-02T03:04:05", "c", 0]],
    )
    assert "f_k0 IN (" in sql.replace('"__sde_part".', "").replace('"', "")
    for literal in ("3", "2.5", "CAST('2020-01-02' AS DATE)", "'a''b'", "TRUE", "FALSE"):
        assert literal in sql, literal
    assert "CAST('2020-01-02 00:00:00.000000' AS TIMESTAMP)" in sql
    assert "CAST('2020-01-02 03:04:05.000000' AS TIMESTAMP)" in sql
    assert '"f_k1" IS NULL' in sql


def test_values_that_cannot_be_of_the_columns_type_match_nothing() -> None:
    assert _filtered(["BIGINT"], [["x"]]) == "FALSE"
    assert _filtered(["DATE"], [["2020-01-02T03:04:05"], [7]]) == "FALSE"
    assert _filtered(["VARCHAR"], [[3]]) == "FALSE"


def test_columns_of_other_types_are_not_narrowed() -> None:
    assert _filtered(["TIMESTAMPTZ", "UNKNOWN"], [["2020-01-02", 1]]) == ""


def test_the_probe_filter_never_leaves_out_what_probe_matches() -> None:
    """Over DuckDB: every small group a probe names is read, whatever its type."""
    import duckdb
    from sqlglot import exp

    from sde.federation.node_sdc import probe_filter

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE __sde_part AS SELECT * FROM (VALUES "
        "(1, 2.0, DATE '2020-01-02', TIMESTAMP '2020-01-02 00:00:00', 'a', TRUE), "
        "(2, 2.5, DATE '2020-01-03', TIMESTAMP '2020-01-02 03:04:05', NULL, FALSE), "
        "(NULL, NULL, NULL, NULL, 'b', NULL)) "
        "AS t(f_k0, f_k1, f_k2, f_k3, f_k4, f_k5)"
    )
    frame = con.execute("SELECT * FROM __sde_part").df()
    from sde.federation.wire import frame_keys

    keys = [list(k) for k in frame_keys(frame, 6)]
    types = ["INT", "DOUBLE", "DATE", "TIMESTAMP", "VARCHAR", "BOOLEAN"]
    test = probe_filter([exp.DataType.build(t) for t in types], keys)
    assert test is not None
    read = con.execute(f"SELECT * FROM __sde_part WHERE {test.sql(dialect='duckdb')}").df()
    assert len(read) == 3
    assert probe(read, keys, keys_count=6) == [True, True, True]
