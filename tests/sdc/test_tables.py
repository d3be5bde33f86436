"""crosstab / pivot_table mirror pandas and return a complete CheckedTable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sde
from sde import sdc


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 3000
    frame = pd.DataFrame(
        {
            "a": rng.choice(list("abcde"), n),
            "b": rng.integers(0, 4, n),
            "c": rng.choice(["x", "y"], n),
            "v": rng.gamma(2.0, 3.0, n),
            "p": rng.integers(0, 800, n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "v"] = np.nan
    return frame


def same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        got, expected, check_dtype=False, check_index_type=False, check_column_type=False
    )


@pytest.mark.parametrize("aggfunc", [None, "count", "sum", "mean", "median", "min", "max", "std"])
@pytest.mark.parametrize("margins", [False, True])
def test_crosstab_table_equals_pandas(df: pd.DataFrame, aggfunc: str | None, margins: bool) -> None:
    kw = {} if aggfunc is None else {"values": df.v, "aggfunc": aggfunc}
    same(
        sdc.crosstab(df.a, df.b, margins=margins, **kw).table,
        pd.crosstab(df.a, df.b, margins=margins, **kw),
    )


def test_multi_level_and_multi_statistic_tables_equal_pandas(df: pd.DataFrame) -> None:
    same(
        sdc.crosstab([df.a, df.c], df.b, margins=True).table,
        pd.crosstab([df.a, df.c], df.b, margins=True),
    )
    kw = {"values": df.v, "aggfunc": ["sum", "mean"]}
    same(sdc.crosstab(df.a, [df.b, df.c], **kw).table, pd.crosstab(df.a, [df.b, df.c], **kw))


@pytest.mark.parametrize("aggfunc", ["sum", "mean", ["mean", "std"]])
@pytest.mark.parametrize("columns", [None, "b"])
@pytest.mark.parametrize("margins", [False, True])
def test_pivot_table_equals_pandas(
    df: pd.DataFrame, aggfunc: str | list[str], columns: str | None, margins: bool
) -> None:
    kw = {"values": "v", "index": "a", "columns": columns, "aggfunc": aggfunc, "margins": margins}
    same(sdc.pivot_table(df, **kw).table, pd.pivot_table(df, **kw))


def test_flags_have_the_table_shape_and_hold_tuples(df: pd.DataFrame) -> None:
    t = sdc.crosstab(df.a, [df.b, df.c], values=df.v, aggfunc=["sum", "mean"], margins=True)
    assert t.flags.shape == t.table.shape == t.safe.shape == t.hidden.shape
    assert t.flags.index.equals(t.table.index)
    assert t.flags.columns.equals(t.table.columns)
    assert all(isinstance(x, tuple) for x in t.flags.to_numpy().ravel())


def test_persons_count_distinct_people() -> None:
    df = pd.DataFrame({"g": ["a"] * 30, "c": "x", "p": [1, 2, 3] * 10})
    by_records = sdc.crosstab(df.g, df.c)
    by_persons = sdc.crosstab(df.g, df.c, persons=df.p)
    assert int(by_records.table.iloc[0, 0]) == 30
    assert by_records.status == "pass"
    assert int(by_persons.table.iloc[0, 0]) == 3
    assert by_persons.status == "fail"
    assert by_persons.report["units"] == "persons"


def test_persons_margins_count_each_person_once() -> None:
    # Each of 20 persons has one record in group a and one in group b.
    df = pd.DataFrame({"g": ["a"] * 20 + ["b"] * 20, "c": "x", "p": list(range(20)) * 2})
    t = sdc.crosstab(df.g, df.c, persons=df.p, margins=True)
    assert t.table.loc["a", "x"] == 20
    assert t.table.loc["All", "All"] == 20  # not 40
    assert sdc.crosstab(df.g, df.c, margins=True).table.loc["All", "All"] == 40


def test_status_is_the_worst_flag(df: pd.DataFrame) -> None:
    assert sdc.crosstab(df.a, df.b).status == "pass"
    assert sdc.crosstab(df.a, df.b, values=df.v, aggfunc="mean").status == "review"  # missing
    small = df[df.p < 40]
    assert sdc.crosstab(small.a, small.b).status == "fail"


def test_safe_is_the_table_where_nothing_is_flagged(df: pd.DataFrame) -> None:
    t = sdc.crosstab(df.a, df.b, margins=True)
    same(t.safe, t.table)
    assert not t.hidden.to_numpy().any()


def test_report_lists_each_rule_with_positions(df: pd.DataFrame) -> None:
    small = df[df.p < 60]
    t = sdc.crosstab(small.a, small.b, margins=True)
    report = t.report
    assert set(report["rules"]) == {"threshold", "zeros"}
    cells = report["rules"]["threshold"]["cells"]
    flagged = np.argwhere(t.flags.map(lambda f: "threshold" in f).to_numpy()).tolist()
    assert sorted(cells) == sorted(flagged)
    assert report["protection"]["method"] == "suppression"
    assert report["parameters"]["threshold"] == 10


def test_protection_none_and_rounding(df: pd.DataFrame) -> None:
    small = df[df.p < 60]
    t = sdc.crosstab(small.a, small.b, protection="none")
    same(t.safe, t.table.astype(float))
    r = sdc.crosstab(small.a, small.b, margins=True, protection="base-5")
    assert (r.safe.to_numpy() % 5 == 0).all()
    with pytest.raises(sde.errors.InvalidInput):
        sdc.crosstab(df.a, df.b, values=df.v, aggfunc="mean", protection="base-5")
    with pytest.raises(sde.errors.ConfigurationError):
        sdc.crosstab(df.a, df.b, protection="base-five")


def test_lazy_import_from_sde() -> None:
    assert sde.sdc.crosstab is sdc.crosstab


def test_lists_and_arrays_are_accepted_like_pandas() -> None:
    expected = pd.crosstab([1, 2, 3] * 5, [1, 1, 1] * 5)
    for index, columns in [
        ([1, 2, 3] * 5, [1, 1, 1] * 5),
        (np.array([1, 2, 3] * 5), np.array([1, 1, 1] * 5)),
        ((1, 2, 3) * 5, [1, 1, 1] * 5),
    ]:
        t = sdc.crosstab(index, columns)
        assert t.table.equals(expected)
    two = sdc.crosstab([["a", "b"] * 6, [1, 2, 2] * 4], ["x"] * 12)
    assert two.table.equals(pd.crosstab([["a", "b"] * 6, [1, 2, 2] * 4], ["x"] * 12))


@pytest.mark.parametrize("margins", [False, True])
def test_an_empty_table_is_reported_not_approved(margins: bool) -> None:
    empty = pd.DataFrame({"a": pd.Series([], dtype=object), "b": pd.Series([], dtype=object)})
    t = sdc.crosstab(empty.a, empty.b, margins=margins)
    assert t.status == "fail"
    assert t.report["rules"]["empty"]["status"] == "fail"
    assert "empty" in t.public_report["summary"]
    one_way = sdc.crosstab(empty.a)
    assert one_way.status == "fail"
    nothing_labelled = pd.DataFrame({"a": [None] * 12, "b": ["x"] * 12})
    assert sdc.crosstab(nothing_labelled.a, nothing_labelled.b).status == "fail"
    pivot = sdc.pivot_table(empty.assign(v=1.0)[:0], values="v", index="a", columns="b")
    assert pivot.status == "fail"
