"""Condition records: the diagnosis at onset, then occasional review records.

Most records carry the condition's own concept; about one in five is coded
with one of its descendants from the bundled vocabulary, as clinicians pick
more specific codes. Heart failure is often diagnosed during an emergency
admission; every other diagnosis is made at a GP consultation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sde.omop import vocabulary
from sde.omop.synth import params
from sde.omop.synth.persons import NEVER, Persons
from sde.omop.synth.sites import acute_site
from sde.omop.synth.timeline import VisitBook, scatter

#: Review records per year after diagnosis (capped at :data:`MAX_REVIEWS`).
REVIEW_RATE = 0.12
MAX_REVIEWS = 5
#: Share of heart failure diagnoses made in hospital.
HF_IN_HOSPITAL = 0.4


@dataclass
class ConditionRecords:
    """Condition rows of a chunk, and the visit of each person's diagnosis."""

    owner: np.ndarray
    day: np.ndarray
    concept: np.ndarray
    visit: np.ndarray
    #: (persons, conditions): visit reference of the diagnosis, -1 when none.
    diagnosis_visit: np.ndarray


def _coding(rng: np.random.Generator, condition: int, n: int) -> np.ndarray:
    """Concept of each of ``n`` records of a condition: the condition or a descendant."""
    base = params.CONDITIONS[condition].concept_id
    below = np.array(sorted(vocabulary.descendants(base, include_self=False)), dtype=np.int64)
    concept = np.full(n, base, dtype=np.int64)
    if len(below):
        pick = rng.random(n) < params.DESCENDANT_CODING
        concept[pick] = below[rng.integers(0, len(below), int(pick.sum()))]
    return concept


def _length_of_stay(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.geometric(0.25, n) - 1


def generate(rng: np.random.Generator, persons: Persons, visits: VisitBook) -> ConditionRecords:
    owners, days, concepts, refs = [], [], [], []
    diagnosis_visit = np.full(persons.onset.shape, -1, dtype=np.int64)
    for i, model in enumerate(params.CONDITIONS):
        who = np.flatnonzero(persons.onset[:, i] != NEVER)
        onset = persons.onset[who, i]
        # The diagnosis.
        if model.key == "heart_failure":
            in_hospital = rng.random(len(who)) < HF_IN_HOSPITAL
        else:
            in_hospital = np.zeros(len(who), dtype=bool)
        dx_ref = np.empty(len(who), dtype=np.int64)
        gp = ~in_hospital
        dx_ref[gp] = visits.add(who[gp], onset[gp], onset[gp], vocabulary.GP_VISIT_CONCEPT_ID, -1)
        stay = _length_of_stay(rng, int(in_hospital.sum()))
        hw = who[in_hospital]
        dx_ref[in_hospital] = visits.add(
            hw,
            onset[in_hospital],
            np.minimum(onset[in_hospital] + stay, persons.end[hw]),
            params.EMERGENCY_INPATIENT,
            acute_site(persons.location[hw]),
        )
        diagnosis_visit[who, i] = dx_ref
        # Reviews after the diagnosis, each at a GP consultation.
        span = persons.end[who] - onset
        counts = np.minimum(rng.poisson(REVIEW_RATE * span / params.YEAR), MAX_REVIEWS)
        counts[span <= 0] = 0
        r_owner, r_day = scatter(rng, counts, onset + 1, span)
        r_who = who[r_owner]
        r_ref = visits.add(r_who, r_day, r_day, vocabulary.GP_VISIT_CONCEPT_ID, -1)
        owner = np.concatenate([who, r_who])
        owners.append(owner)
        days.append(np.concatenate([onset, r_day]))
        refs.append(np.concatenate([dx_ref, r_ref]))
        concepts.append(_coding(rng, i, len(owner)))
    return ConditionRecords(
        owner=np.concatenate(owners),
        day=np.concatenate(days),
        concept=np.concatenate(concepts),
        visit=np.concatenate(refs),
        diagnosis_visit=diagnosis_visit,
    )
