"""Differencing through combinations of three or more releases (sde.sdc.combinations).

Each case builds releases whose pairs say nothing (no new cell is nested with an earlier one
at a small distance) but whose signed sum pins one small group down; and the same releases
with a large or empty group, which must pass.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sde import sdc
from sde.sdc import combinations
from sde.sdc.combinations import find_combinations
from sde.sdc.differencing import Between, Cell, In, NotNull, find_differences


def _cell(count: int, pos: int = 0, **dims: object) -> Cell:
    return Cell(dict(dims), count, position=(pos, 0))  # type: ignore[misc]


@pytest.mark.parametrize(("other", "flagged"), [(5, True), (0, False), (20, False), (9, True)])
def test_total_minus_two_subgroups(other: int, flagged: bool) -> None:
    women, men = 55, 40
    total = [_cell(women + men + other, ward=In({"A"}))]
    f = [_cell(women, ward=In({"A"}), sex=In({"F"}))]
    m = [_cell(men, ward=In({"A"}), sex=In({"M"}))]
    earlier = [("total", total), ("women", f)]
    assert not find_differences(m, earlier, 10)  # no pair gives it away
    found = find_combinations(m, earlier, 10)
    assert bool(found) is flagged
    if flagged:
        assert [(x.difference, x.release) for x in found] == [(other, "total + women")]


def test_a_period_split_in_two_then_the_rest() -> None:
    """2015-2020 in one release, 2015-2017 in another, now 2018-2019: 2020 is what is left."""
    whole = [_cell(100, year=Between(2015, 2020))]
    early = [_cell(50, year=Between(2015, 2017))]
    late = [_cell(46, year=Between(2018, 2019))]
    found = find_combinations(late, [("whole", whole), ("early", early)], 10)
    assert [x.difference for x in found] == [4]


def test_margins_and_one_inner_cell_pin_the_opposite_corner() -> None:
    """Ward totals over F and M, sex totals over wards A and B, and now the (A, F) cell:
    (B, M) = B - F + (A, F), although no earlier cell is nested with the new one at 3."""
    true = {("A", "F"): 40, ("A", "M"): 30, ("B", "F"): 25, ("B", "M"): 3}
    both_sexes, both_wards = In({"F", "M"}), In({"A", "B"})
    wards = [
        _cell(true[(w, "F")] + true[(w, "M")], i, ward=In({w}), sex=both_sexes)
        for i, w in enumerate("AB")
    ]
    sexes = [
        _cell(true[("A", s)] + true[("B", s)], i, sex=In({s}), ward=both_wards)
        for i, s in enumerate("FM")
    ]
    corner = [_cell(true[("A", "F")], 7, ward=In({"A"}), sex=In({"F"}))]
    earlier = [("wards", wards), ("sexes", sexes)]
    found = find_combinations(corner, earlier, 10)
    assert {(x.position, x.difference, x.release) for x in found} == {((7, 0), 3, "wards + sexes")}


def test_groups_only_non_negativity_pins_are_not_found() -> None:
    """Known limit: with plain ward and sex totals (other wards and sexes possible) the
    corner is pinned only because counts cannot be negative; a linear check cannot see it."""
    true = {("A", "F"): 40, ("A", "M"): 30, ("B", "F"): 25, ("B", "M"): 3}
    wards = [_cell(true[(w, "F")] + true[(w, "M")], i, ward=In({w})) for i, w in enumerate("AB")]
    sexes = [_cell(true[("A", s)] + true[("B", s)], i, sex=In({s})) for i, s in enumerate("FM")]
    grand = [_cell(sum(true.values()), 0)]
    corner = [_cell(true[("A", "F")], 7, ward=In({"A"}), sex=In({"F"}))]
    found = find_combinations(corner, [("wards", wards), ("sexes", sexes), ("all", grand)], 10)
    assert found == []  # documented in docs/threat-model-sdc.md; an LP audit would see it


def test_a_group_the_earlier_releases_gave_away_is_not_charged_to_the_new_table() -> None:
    total = [_cell(100, ward=In({"A"}))]
    women = [_cell(95, ward=In({"A"}), sex=In({"F"}))]  # the pairwise check's case, earlier
    unrelated = [_cell(500, ward=In({"B"}))]
    assert not find_combinations(unrelated, [("total", total), ("women", women)], 10)


def test_missing_values_are_a_part_of_their_own() -> None:
    """All ages (missing included) minus the non-missing ones: the missing few."""
    everyone = [_cell(80)]
    known = [_cell(77, age=NotNull())]
    # a pair: the pairwise check finds it already; the combination finds the same group
    assert [x.difference for x in find_combinations(known, [("all", everyone)], 10)] == [3]


def test_labels_that_spell_the_same_value_are_one_label() -> None:
    total = [_cell(100, year=In({"2019", "2020"}))]
    y19 = [_cell(60, year=In({2019}))]
    y20 = [_cell(35, year=In({2020.0}))]
    # 2019 + 2020 = 95 of the 100 listed as 2019 or 2020: 5 records are counted twice or
    # differ; the class "2019 or 2020, neither alone" does not exist, so nothing is derived
    # beyond the pairs; the pair (total, 2019 + 2020) is not nested either.
    assert find_combinations(y20, [("total", total), ("y19", y19)], 10) == []


def test_too_many_atoms_leaves_the_pairwise_check_in_charge(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(combinations, "MAX_ATOMS", 10)
    total = [_cell(100, ward=In({"A"}))]
    women = [_cell(55, ward=In({"A"}), sex=In({"F"}))]
    men = [_cell(40, i, ward=In({"A"}), sex=In({"M"}), age=In({a})) for i, a in enumerate("xyz")]
    with caplog.at_level(logging.WARNING, logger="sde.sdc.combinations"):
        assert find_combinations(men, [("total", total), ("women", women)], 10) == []
    assert "not checked" in caplog.text


def test_the_ledger_flags_the_third_release_through_crosstab(tmp_path: Path) -> None:
    ledger = sdc.open_ledger(f"sqlite:///{tmp_path / 'r.sqlite'}", "p")
    df = pd.DataFrame(
        {"ward": ["A"] * 60 + ["B"] * 60, "sex": (["F"] * 25 + ["M"] * 32 + ["X"] * 3) * 2}
    )
    ledger.record_table("by ward", sdc.crosstab(df.ward, ledger=ledger))
    ledger.record_table("by sex", sdc.crosstab(df.sex, ledger=ledger))
    women = df[df.sex == "F"]
    table = sdc.crosstab(women.ward, ledger=ledger, filters={"sex": {"F"}})
    men = df[df.sex == "M"]
    ledger.record_table("women by ward", table)
    checked = sdc.crosstab(men.ward, ledger=ledger, filters={"sex": {"M"}})
    # ward A: 60 - 25 - 32 = 3 of sex X, and the same in ward B
    assert checked.status == "fail"


def test_a_thousand_cell_release_is_checked(caplog: pytest.LogCaptureFixture) -> None:
    """A ward x sex x age table against a ward x sex one: the check runs (no fallback)."""
    rng = np.random.default_rng(0)
    dims = {"ward": 20, "sex": 3, "age": 10}
    old = [
        _cell(
            int(rng.integers(10, 500)),
            i,
            **{d: In({f"{d}{v}"}) for d, v in zip(dims, combo, strict=True)},
        )
        for i, combo in enumerate(itertools.product(*(range(n) for n in dims.values())))
    ]
    new = [
        _cell(int(rng.integers(10, 500)), i, ward=In({f"ward{w}"}), sex=In({f"sex{s}"}))
        for i, (w, s) in enumerate(itertools.product(range(20), range(3)))
    ]
    with caplog.at_level(logging.WARNING, logger="sde.sdc.combinations"):
        find_combinations(new, [("old", old)], 10)
    assert "not checked" not in caplog.text
