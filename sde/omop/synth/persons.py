"""Who the persons of one chunk are: demography, residence, registration, conditions, death.

Everything here is person-level (one entry per person); the event tables are
derived from it by the other modules. Days are integers since 1970-01-01.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sde.omop.synth import params, risk
from sde.omop.synth.geography import (
    DISTRICTS,
    MENTAL_HEALTH_NODE,
    MENTAL_HEALTH_NODE_SHARE,
    district_node,
    geography,
    node_names,
)

#: Onset value meaning "never recorded".
NEVER = np.iinfo(np.int32).max


@dataclass
class Persons:
    """One chunk's persons (arrays of equal length)."""

    person_id: np.ndarray  # int64, unique across the whole population
    female: np.ndarray  # bool
    birth: np.ndarray  # day of birth
    age: np.ndarray  # years at the end of life or at the data cut
    location: np.ndarray  # index into geography() (location_id - 1)
    decile: np.ndarray  # IMD 2019 decile of the LSOA
    dep: np.ndarray  # deprivation score, +1 most deprived
    race: np.ndarray  # race concept id (0 = not stated)
    start: np.ndarray  # observation period start
    end: np.ndarray  # observation period end (death, leaving or data cut)
    died: np.ndarray  # bool: end is the day of death
    onset: np.ndarray  # (n, conditions) first record day, NEVER when absent
    undiagnosed_htn: np.ndarray  # bool: raised blood pressure, never diagnosed
    opt_out: np.ndarray  # bool: National Data Opt-out
    node: np.ndarray  # node index

    def __len__(self) -> int:
        return len(self.person_id)

    def has(self, key: str) -> np.ndarray:
        """Whether each person has condition ``key`` recorded."""
        return self.onset[:, params.CONDITION_INDEX[key]] != NEVER

    def onset_of(self, key: str) -> np.ndarray:
        return self.onset[:, params.CONDITION_INDEX[key]]

    def age_at(self, days: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Age in years on ``days`` of the persons ``owner`` (indices into this chunk)."""
        return (days - self.birth[owner]) / params.YEAR


def _ages(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Age at the data cut and sex of persons alive then (the population pyramid)."""
    share = params.AGE_BAND_SHARE / params.AGE_BAND_SHARE.sum()
    band = rng.choice(len(share), size=n, p=share)
    width = np.where(band == len(share) - 1, 10.0, 5.0)
    age = band * 5.0 + rng.random(n) * width
    female = rng.random(n) < params.FEMALE_SHARE[band]
    return age, female


def _death_ages(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ages at death, distributed as deaths in England are."""
    share = params.DEATH_AGE_SHARE / params.DEATH_AGE_SHARE.sum()
    band = rng.choice(len(share), size=n, p=share)
    lo, hi = params.DEATH_AGE_EDGES[band], params.DEATH_AGE_EDGES[band + 1]
    return lo + rng.random(n) * (hi - lo)


def _race(rng: np.random.Generator, district: np.ndarray) -> np.ndarray:
    asian = np.array([d.asian_share for d in DISTRICTS])[district]
    black = np.array([d.black_share for d in DISTRICTS])[district]
    u = rng.random(len(district))
    not_stated = 0.02
    return np.select(
        [u < asian, u < asian + black, u < asian + black + not_stated],
        [params.ASIAN, params.BLACK, 0],
        default=params.WHITE,
    )


def _conditions(
    rng: np.random.Generator,
    age: np.ndarray,
    dep: np.ndarray,
    female: np.ndarray,
    died: np.ndarray,
) -> np.ndarray:
    """(n, conditions) bool: condition recorded at some point."""
    n = len(age)
    factors = {
        "cardio": rng.standard_normal(n),
        "mental": rng.standard_normal(n),
        "none": np.zeros(n),
    }
    has = np.empty((n, len(params.CONDITIONS)), dtype=bool)
    u = rng.random((n, len(params.CONDITIONS)))
    for i, model in enumerate(params.CONDITIONS):
        p = risk.probability(i, age, dep, female.astype(np.float64), factors[model.factor])
        boost = params.DECEDENT_LOG_ODDS.get(model.key, 0.0)
        if boost:
            odds = p / (1 - p) * np.where(died, np.exp(boost), 1.0)
            p = odds / (1 + odds)
        has[:, i] = u[:, i] < p
    return has


def generate(rng: np.random.Generator, first_id: int, n: int, nodes: int) -> Persons:
    """Draw ``n`` persons with ids ``first_id .. first_id + n - 1``.

    A person either is alive at the data cut (age from the population pyramid) or
    died during the period (age at death as deaths are distributed; more likely in
    deprived areas); ``age`` is the age at the end of the record.
    """
    geo = geography()
    person_id = np.arange(first_id, first_id + n, dtype=np.int64)
    location = rng.integers(0, geo.size, n)
    district = geo.district[location]
    decile = geo.decile[location]
    dep = risk.deprivation_score(decile)
    hr = params.DEATH_DEPRIVATION_HR ** (dep / 2)  # geometric mean 1 over the extremes
    died = rng.random(n) < params.DEATH_SHARE * hr
    alive_age, female = _ages(rng, n)
    death_age = _death_ages(rng, n)
    death_day = params.START_DAY + rng.integers(0, params.END_DAY - params.START_DAY + 1, n)
    age = np.where(died, death_age, alive_age)
    end_of_life = np.where(died, death_day, params.END_DAY)
    birth = (end_of_life - np.floor(age * params.YEAR)).astype(np.int64)
    race = _race(rng, district)

    # Registration: most persons are on record from 2010 (or birth); some join later,
    # some leave the region before the data cut.
    late = rng.random(n) < params.LATE_JOINERS
    joined = params.START_DAY + np.floor(
        rng.random(n) * (end_of_life - params.START_DAY + 1)
    ).astype(np.int64)
    first_day = np.maximum(birth, params.START_DAY)
    start = np.where(late, np.maximum(joined, first_day), first_day)
    leaves = ~died & (rng.random(n) < params.LEAVERS)
    left_day = start + np.floor(rng.random(n) * (params.END_DAY - start)).astype(np.int64)
    end = np.where(leaves, left_day, end_of_life).astype(np.int64)

    has = _conditions(rng, age, dep, female, died)
    htn = has[:, params.CONDITION_INDEX["hypertension"]]
    p_htn = risk.probability(
        params.CONDITION_INDEX["hypertension"], age, dep, female.astype(np.float64), np.zeros(n)
    )
    p_undx = np.minimum(0.6, params.UNDIAGNOSED_HTN_RATIO * p_htn / (1 - p_htn))
    undiagnosed = ~htn & (age >= 30) & (rng.random(n) < p_undx)

    onset = np.full(has.shape, NEVER, dtype=np.int64)
    u = rng.random(has.shape)
    for i, model in enumerate(params.CONDITIONS):
        lo = np.maximum(start, birth + int(model.min_onset_age * params.YEAR))
        ok = has[:, i] & (lo <= end)
        onset[:, i] = np.where(ok, lo + np.floor(u[:, i] * (end - lo + 1)), NEVER)

    opt_out = rng.random(n) < params.OPT_OUT_SHARE
    # Drawn whatever the node count, so that the population is the same for every
    # count and only its partition into nodes differs.
    to_mental_health = rng.random(n) < MENTAL_HEALTH_NODE_SHARE
    node = district_node(nodes)[district]
    names = node_names(nodes)
    if MENTAL_HEALTH_NODE in names:
        mental = np.zeros(n, dtype=bool)
        for key in ("depression", "anxiety", "dementia"):
            mental |= onset[:, params.CONDITION_INDEX[key]] != NEVER
        node = np.where(mental & to_mental_health, names.index(MENTAL_HEALTH_NODE), node)

    return Persons(
        person_id=person_id,
        female=female,
        birth=birth,
        age=age,
        location=location,
        decile=decile,
        dep=dep,
        race=race,
        start=start,
        end=end,
        died=died,
        onset=onset,
        undiagnosed_htn=undiagnosed,
        opt_out=opt_out,
        node=node.astype(np.int8),
    )
