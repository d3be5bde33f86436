"""Each rule at its boundaries, through the public crosstab/pivot_table API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sde import sdc
from sde.errors import ConfigurationError, InvalidInput
from sde.sdc.rules import APPLIES, RULES


def one_cell(values: list[float], persons: list[int] | None = None) -> sdc.CheckedTable:
    """A one-row, one-column sum table over ``values``."""
    n = len(values)
    df = pd.DataFrame({"g": ["a"] * n, "c": ["x"] * n, "v": values})
    if persons is not None:
        df["p"] = persons
    return sdc.pivot_table(
        df, values="v", index="g", columns="c", aggfunc="sum", persons="p" if persons else None
    )


def flags_of(t: sdc.CheckedTable) -> tuple[str, ...]:
    return tuple(t.flags.iloc[0, 0])


@pytest.mark.parametrize(("n", "flagged"), [(9, True), (10, False), (1, True), (11, False)])
def test_threshold_boundary_counts(n: int, flagged: bool) -> None:
    df = pd.DataFrame({"g": ["a"] * n + ["b"] * 20, "c": "x"})
    t = sdc.crosstab(df.g, df.c)
    assert ("threshold" in t.flags.loc["a", "x"]) is flagged
    assert t.status == ("fail" if flagged else "pass")


def test_threshold_follows_the_configured_value() -> None:
    df = pd.DataFrame({"g": ["a"] * 12 + ["b"] * 30, "c": "x"})
    assert sdc.crosstab(df.g, df.c).status == "pass"
    assert sdc.crosstab(df.g, df.c, rules={"threshold": 13}).status == "fail"


def test_threshold_counts_contributors_not_rows_with_missing_values() -> None:
    # 12 records, 3 of them without a value: the mean describes 9 people.
    v = [1.0] * 9 + [np.nan] * 3
    t = sdc.pivot_table(
        pd.DataFrame({"g": "a", "c": "x", "v": v}), values="v", index="g", columns="c"
    )
    assert set(flags_of(t)) == {"threshold", "missing"}


@pytest.mark.parametrize(
    ("values", "flagged"),
    [
        ([40.0, 40.0] + [2.0] * 10, False),  # 0.80
        ([45.0, 45.0] + [10.0 / 8] * 8, True),  # exactly 0.90
        ([45.0, 44.99] + [10.01 / 8] * 8, False),  # just below 0.90
        ([50.0, 40.0] + [1.25] * 8, True),  # exactly 0.90, unequal top two
    ],
)
def test_nk_dominance_boundary(values: list[float], flagged: bool) -> None:
    assert ("nk-dominance" in flags_of(one_cell(values))) is flagged


def test_nk_dominance_with_ties_uses_two_of_the_tied_values() -> None:
    # Three tied top values of 30 and one of 10: top two are 30 + 30 = 60 of 100.
    assert "nk-dominance" not in flags_of(one_cell([30.0, 30.0, 30.0, 10.0] + [0.0] * 8))
    # Two tied at 46 make 92 of 100: dominated.
    assert "nk-dominance" in flags_of(one_cell([46.0, 46.0, 8.0] + [0.0] * 9))


@pytest.mark.parametrize(
    ("rest", "flagged"),
    [(10.0, False), (9.99, True), (10.01, False), (0.0, True)],
)
def test_p_ratio_boundary(rest: float, flagged: bool) -> None:
    # top1 = 100, top2 = 50; the other contributions add up to ``rest``: p = rest / 100.
    values = [100.0, 50.0] + [rest / 10] * 10
    assert ("p-ratio" in flags_of(one_cell(values))) is flagged


def test_p_ratio_exactly_at_point_one_passes_with_float_noise() -> None:
    # 0.1 + 0.2 style sums: the rest is 0.1 * top1 up to rounding.
    values = [1.0, 0.5] + [0.01] * 10
    assert "p-ratio" not in flags_of(one_cell(values))


def test_all_zero_cell_fails_p_ratio_but_not_nk() -> None:
    got = flags_of(one_cell([0.0] * 12))
    assert "p-ratio" in got  # every contribution is known to be 0 (as ACRO)
    assert "nk-dominance" not in got  # 0 / 0 is not dominance


def test_negative_values_ask_for_review_and_skip_dominance_in_that_cell() -> None:
    got = flags_of(one_cell([100.0, -1.0] + [0.1] * 10))
    assert "negative" in got
    assert "nk-dominance" not in got
    assert "p-ratio" not in got


def test_negative_in_one_cell_does_not_switch_dominance_off_elsewhere() -> None:
    df = pd.DataFrame(
        {
            "g": ["a"] * 12 + ["b"] * 12,
            "c": "x",
            "v": [5.0, -1.0] + [5.0] * 10 + [1000.0] + [1.0] * 11,
        }
    )
    t = sdc.pivot_table(df, values="v", index="g", columns="c", aggfunc="sum")
    assert t.flags.loc["a", "x"] == ("negative",)
    assert "p-ratio" in t.flags.loc["b", "x"]
    assert t.status == "fail"


def test_dominance_counts_persons_contributions_together() -> None:
    # Twelve records but two persons hold nearly all: by persons, 2 units (threshold) and
    # dominated; by records, 12 contributors of 1/12 each would pass.
    values = [10.0] * 12
    persons = [1] * 6 + [2] * 5 + [3]
    by_person = flags_of(one_cell(values, persons))
    assert {"threshold", "nk-dominance"} <= set(by_person)
    assert flags_of(one_cell(values)) == ()


def test_zeros_flag_empty_cells_in_frequency_tables() -> None:
    df = pd.DataFrame({"g": ["a"] * 20 + ["b"] * 20, "c": ["x"] * 30 + ["y"] * 10})
    t = sdc.crosstab(df.g, df.c)
    assert t.flags.loc["a", "y"] == ("threshold", "zeros")
    off = sdc.crosstab(df.g, df.c, rules={"zeros_are_disclosive": False})
    assert off.flags.loc["a", "y"] == ("threshold",)


def test_missing_values_ask_for_review() -> None:
    got = flags_of(one_cell([5.0] * 12 + [np.nan]))
    assert got == ("missing",)
    off = pd.DataFrame({"g": "a", "c": "x", "v": [5.0] * 12 + [np.nan]})
    t = sdc.pivot_table(
        off, values="v", index="g", columns="c", rules={"check_missing_values": False}
    )
    assert t.status == "pass"


@pytest.mark.parametrize(("n", "flagged"), [(10, True), (11, False)])
def test_dof_for_spread_statistics(n: int, flagged: bool) -> None:
    df = pd.DataFrame({"g": "a", "c": "x", "v": np.arange(n, dtype=float)})
    t = sdc.pivot_table(df, values="v", index="g", columns="c", aggfunc="std")
    assert (flags_of(t) == ("dof",)) is flagged


def test_nan_labels_are_left_out_as_pandas_does_and_reported() -> None:
    df = pd.DataFrame({"g": ["a"] * 12 + [None] * 3 + ["b"] * 12, "c": "x"})
    t = sdc.crosstab(df.g, df.c)
    assert list(t.table.index) == ["a", "b"]
    assert t.report["records_left_out"] == 3
    kept = sdc.crosstab(df.g, df.c, dropna=False)
    assert kept.table.shape == (3, 1)
    assert "threshold" in kept.flags.iloc[2, 0]


def test_label_seen_only_with_a_missing_partner_is_dropped() -> None:
    df = pd.DataFrame({"g": ["a"] * 12 + ["z"], "c": ["x"] * 12 + [None]})
    t = sdc.crosstab(df.g, df.c)
    pd.testing.assert_frame_equal(t.table, pd.crosstab(df.g, df.c), check_dtype=False)


def test_every_rule_has_an_id_severity_and_explanation() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.severity in ("fail", "review")
        assert rule.explanation
        assert rule.acro_check
    for rule_ids in APPLIES.values():
        assert set(rule_ids) <= set(ids)


def test_bad_settings_are_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError) as err:
        sdc.SDCConfig.from_mapping({"treshold": 5})
    assert err.value.rule == "sdc.unknown-setting"
    with pytest.raises(ConfigurationError):
        sdc.SDCConfig.from_mapping({"threshold": 2.5})
    with pytest.raises(ConfigurationError):
        sdc.SDCConfig(nk_k=1.5)


def test_unsupported_input_is_refused() -> None:
    df = pd.DataFrame({"g": ["a"] * 3, "c": "x", "v": ["p", "q", "r"]})
    with pytest.raises(InvalidInput):
        sdc.pivot_table(df, values="v", index="g", columns="c")
    with pytest.raises(InvalidInput):
        sdc.crosstab(df.g, df.c, aggfunc="sum")
    with pytest.raises(InvalidInput):
        sdc.crosstab(df.g, df.c, values=[1, 2, 3], aggfunc="kurtosis")
