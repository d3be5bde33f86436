"""Repeat prescriptions that follow the diagnoses.

Hypertension: amlodipine first from age 55 (and for Black persons), lisinopril
first below it (NICE's order), the other added later for some. Type 2
diabetes: metformin. Atorvastatin for cardiovascular risk (diabetes,
hypertension from 50, atrial fibrillation, heart failure). Each issue is a
three-month supply; some persons stop. The first issue is written at the
diagnosing consultation or at a later one; repeats need no visit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from sde.omop import vocabulary
from sde.omop.synth import params
from sde.omop.synth.persons import NEVER, Persons
from sde.omop.synth.timeline import NO_VISIT, VisitBook, repeats

#: (drug concept, label) in the order of the dictionary of drug_source_value.
DRUG_LABELS: dict[int, str] = {
    params.AMLODIPINE: "Amlodipine 5mg tablets",
    params.LISINOPRIL: "Lisinopril 10mg tablets",
    params.METFORMIN: "Metformin 500mg tablets",
    params.ATORVASTATIN: "Atorvastatin 20mg tablets",
}
TREATED = {"hypertension": 0.85, "t2_diabetes": 0.85}
SECOND_HTN_DRUG = 0.35
STATIN_UPTAKE = {
    "t2_diabetes": 0.7,
    "hypertension": 0.45,
    "atrial_fibrillation": 0.4,
    "heart_failure": 0.6,
}
STOPPED = 0.2


@dataclass
class Prescriptions:
    owner: np.ndarray
    day: np.ndarray
    end: np.ndarray
    concept: np.ndarray
    visit: np.ndarray


@dataclass
class _Course:
    owner: np.ndarray
    start: np.ndarray
    concept: np.ndarray
    visit: np.ndarray  # visit of the first issue


def _start(
    rng: np.random.Generator,
    *,
    who: np.ndarray,
    onset: np.ndarray,
    dx_visit: np.ndarray,
    concept: np.ndarray | int,
    persons: Persons,
    visits: VisitBook,
    same_day: float,
    max_delay: int,
) -> _Course:
    """Courses of ``concept`` starting at the diagnosis (share ``same_day``) or up to
    ``max_delay`` days later; courses that would start after the record ends are dropped."""
    concept = np.broadcast_to(np.asarray(concept, dtype=np.int64), who.shape)
    later = rng.random(len(who)) >= same_day
    start = onset + np.where(later, rng.integers(7, max_delay + 1, len(who)), 0)
    keep = start <= persons.end[who]
    who, start, later, visit = who[keep], start[keep], later[keep], dx_visit[keep].copy()
    visit[later] = visits.add(
        who[later], start[later], start[later], vocabulary.GP_VISIT_CONCEPT_ID, -1
    )
    return _Course(who, start, concept[keep], visit)


def generate(
    rng: np.random.Generator, persons: Persons, visits: VisitBook, diagnosis_visit: np.ndarray
) -> Prescriptions:
    courses: list[_Course] = []
    n = len(persons)
    start = partial(_start, rng, persons=persons, visits=visits)
    # Hypertension.
    h = params.CONDITION_INDEX["hypertension"]
    onset = persons.onset[:, h]
    who = np.flatnonzero((onset != NEVER) & (rng.random(n) < TREATED["hypertension"]))
    older = persons.age_at(onset[who], who) >= 55
    first_drug = np.where(
        older | (persons.race[who] == params.BLACK), params.AMLODIPINE, params.LISINOPRIL
    )
    first = start(
        who=who,
        onset=onset[who],
        dx_visit=diagnosis_visit[who, h],
        concept=first_drug,
        same_day=0.6,
        max_delay=180,
    )
    courses.append(first)
    add = rng.random(len(first.owner)) < SECOND_HTN_DRUG
    other = np.where(first.concept[add] == params.AMLODIPINE, params.LISINOPRIL, params.AMLODIPINE)
    later = first.start[add] + rng.integers(180, 1500, int(add.sum()))
    courses.append(
        start(
            who=first.owner[add],
            onset=later,
            dx_visit=np.full(int(add.sum()), NO_VISIT),
            concept=other,
            same_day=0.0,
            max_delay=7,
        )
    )
    # Type 2 diabetes.
    d = params.CONDITION_INDEX["t2_diabetes"]
    onset = persons.onset[:, d]
    who = np.flatnonzero((onset != NEVER) & (rng.random(n) < TREATED["t2_diabetes"]))
    courses.append(
        start(
            who=who,
            onset=onset[who],
            dx_visit=diagnosis_visit[who, d],
            concept=params.METFORMIN,
            same_day=0.5,
            max_delay=365,
        )
    )
    # Statins: from the first qualifying diagnosis.
    trigger = np.full(n, NEVER, dtype=np.int64)
    for key, uptake in STATIN_UPTAKE.items():
        on = persons.onset_of(key)
        ok = (on != NEVER) & (rng.random(n) < uptake)
        if key == "hypertension":
            ok &= persons.age_at(on, np.arange(n)) >= 50
        trigger = np.where(ok, np.minimum(trigger, on), trigger)
    who = np.flatnonzero(trigger != NEVER)
    courses.append(
        start(
            who=who,
            onset=trigger[who],
            dx_visit=np.full(len(who), NO_VISIT),
            concept=params.ATORVASTATIN,
            same_day=0.0,
            max_delay=365,
        )
    )
    return _issues(rng, persons, courses)


def _issues(rng: np.random.Generator, persons: Persons, courses: list[_Course]) -> Prescriptions:
    owner = np.concatenate([c.owner for c in courses])
    start = np.concatenate([c.start for c in courses])
    concept = np.concatenate([c.concept for c in courses])
    first_visit = np.concatenate([c.visit for c in courses])
    stop = persons.end[owner]
    stops = rng.random(len(owner)) < STOPPED
    stop = np.where(stops, np.minimum(stop, start + rng.integers(90, 3650, len(owner))), stop)
    interval = params.ISSUE_DAYS + rng.integers(0, 15, len(owner))
    course = np.arange(len(owner))
    c_ix, day, seq = repeats(course, start, stop, interval)
    return Prescriptions(
        owner=owner[c_ix],
        day=day,
        end=np.minimum(day + params.ISSUE_DAYS - 1, persons.end[owner[c_ix]]),
        concept=concept[c_ix],
        visit=np.where(seq == 0, first_visit[c_ix], NO_VISIT),
    )
