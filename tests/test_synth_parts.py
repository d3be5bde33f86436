"""The generator's parts: NHS numbers, vocabulary, geography, arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sde.errors import ConfigurationError
from sde.omop import vocabulary
from sde.omop.synth import params, risk, validate
from sde.omop.synth.geography import DISTRICTS, geography, node_names
from sde.omop.synth.nhs_number import check_digit, is_valid, nhs_numbers


@given(st.integers(min_value=1, max_value=20_000_000))
def test_every_generated_nhs_number_is_valid(person_id: int) -> None:
    (number,) = nhs_numbers(np.array([person_id]))
    assert number.startswith("999")
    assert is_valid(number)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_a_changed_digit_breaks_the_check(first_nine: str) -> None:
    digit = check_digit(first_nine)
    if digit is None:
        return
    number = first_nine + str(digit)
    assert is_valid(number)
    changed = str((int(number[3]) + 1) % 10)
    assert not is_valid(number[:3] + changed + number[4:])


def test_known_check_digits() -> None:
    # 943 476 5919 is the NHS's own worked example of the modulus-11 check.
    assert is_valid("9434765919")
    assert not is_valid("9434765918")
    assert check_digit("999000000") is None


def test_descendants_resolve_through_levels() -> None:
    assert vocabulary.descendants(4182210) >= {4182210, 378419, 4043241}
    assert vocabulary.descendants(4182210, include_self=False) >= {378419, 4043241}
    assert vocabulary.ancestors(4043241) == {378419, 4182210}
    levels = {(a, d): n for a, d, n in vocabulary.ancestry()}
    assert levels[4182210, 4043241] == 2
    assert levels[320128, 320128] == 0
    for model in params.CONDITIONS:
        assert len(vocabulary.descendants(model.concept_id, include_self=False)) >= 2


def test_every_standard_concept_is_its_own_ancestor() -> None:
    pairs = {(a, d) for a, d, _ in vocabulary.ancestry()}
    for concept in vocabulary.all_concepts():
        assert (concept.standard_concept != "S") or (concept.concept_id,) * 2 in pairs


def test_local_concepts_are_in_the_local_range() -> None:
    for concept in vocabulary.all_concepts():
        if concept.vocabulary_id == vocabulary.LOCAL_VOCABULARY:
            assert concept.concept_id >= 2_000_000_000
        else:
            assert concept.concept_id < 2_000_000_000


def test_the_region_is_more_deprived_than_england() -> None:
    geo = geography()
    assert geo.decile.mean() < 5.0  # England's LSOAs average 5.5 by construction
    assert np.mean(geo.decile == 1) > 0.1 > np.mean(geo.decile == 10)
    assert set(np.unique(geo.decile)) == set(range(1, 11))

    def mean(name: str) -> float:
        index = [d.name for d in DISTRICTS].index(name)
        return float(geo.decile[geo.district == index].mean())

    for deprived in ("Blackpool", "Burnley", "Blackburn with Darwen"):
        for affluent in ("South Lakeland", "Ribble Valley"):
            assert mean(deprived) + 3 < mean(affluent)


def test_lsoa_codes_are_unique() -> None:
    codes = geography().lsoa_code
    assert len(set(codes)) == len(codes)


def test_calibrated_risk_hits_the_target_prevalence() -> None:
    intercepts = risk.intercepts()
    assert len(intercepts) == len(params.CONDITIONS)
    older, younger = risk.probability(
        0, np.array([70.0, 30.0]), np.zeros(2), np.zeros(2), np.zeros(2)
    )
    assert older > 5 * younger


@pytest.mark.parametrize(
    ("count", "names"),
    [(1, ("lth",)), (3, ("lth", "elht", "umbh")), (5, ("lth", "elht", "umbh", "bfw", "lscft"))],
)
def test_node_names(count: int, names: tuple[str, ...]) -> None:
    assert node_names(count) == names


@pytest.mark.parametrize(
    ("persons", "nodes", "seed", "rule"),
    [
        (0, 3, 1, "synth.persons"),
        (-5, 3, 1, "synth.persons"),
        (10, 0, 1, "synth.nodes"),
        (10, 6, 1, "synth.nodes"),
        (10, 3, -1, "synth.seed"),
    ],
)
def test_bad_arguments_are_refused(persons: int, nodes: int, seed: int, rule: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        validate(persons, nodes, seed)
    assert err.value.rule == rule
