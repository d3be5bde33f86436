"""Contacts that carry no generated event: GP consultations, outpatient
appointments, A&E attendances and admissions (including deaths in hospital).

GP consultations use the local concept :data:`~sde.omop.vocabulary.GP_VISIT_CONCEPT_ID`
("General practice consultation", a descendant of Outpatient Visit 9202); hospital
outpatient appointments use 9202 itself, A&E 9203, planned admissions 9201 and
admissions through A&E 262.
"""

from __future__ import annotations

import numpy as np

from sde.omop import vocabulary
from sde.omop.synth import params
from sde.omop.synth.persons import NEVER, Persons
from sde.omop.synth.sites import MENTAL_HEALTH_SITE, acute_site
from sde.omop.synth.timeline import VisitBook, poisson_days

#: Share of deaths that happen in hospital.
DIED_IN_HOSPITAL = 0.45
#: Share of admissions that come through A&E.
EMERGENCY_ADMISSIONS = 0.35
#: Share of outpatient appointments of mental health patients held by the mental health trust.
MENTAL_HEALTH_OUTPATIENT = 0.3


def _count(persons: Persons, keys: tuple[str, ...]) -> np.ndarray:
    total = np.zeros(len(persons))
    for key in keys:
        total += persons.onset_of(key) != NEVER
    return total


def _stay(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.geometric(0.25, n) - 1


def generate(rng: np.random.Generator, persons: Persons, visits: VisitBook) -> None:
    n = len(persons)
    age = persons.age
    conditions = (persons.onset != NEVER).sum(axis=1)
    # GP consultations beyond those the other modules record.
    rate = 0.2 + 0.01 * np.maximum(age - 50, 0) + 0.1 * conditions
    owner, day = poisson_days(rng, rate, persons.start, persons.end)
    visits.add(owner, day, day, vocabulary.GP_VISIT_CONCEPT_ID, -1)
    # Outpatient appointments.
    chronic = _count(
        persons, ("heart_failure", "atrial_fibrillation", "copd", "t2_diabetes", "dementia")
    )
    rate = 0.1 + 0.25 * chronic + 0.004 * np.maximum(age - 50, 0)
    owner, day = poisson_days(rng, rate, persons.start, persons.end)
    site = acute_site(persons.location[owner])
    mental = _count(persons, ("depression", "dementia"))[owner] > 0
    site = np.where(
        mental & (rng.random(len(owner)) < MENTAL_HEALTH_OUTPATIENT), MENTAL_HEALTH_SITE, site
    )
    visits.add(owner, day, day, params.OUTPATIENT, site)
    # A&E attendances: more in deprived areas, among the very young and the old.
    rate = 0.12 * (1 + 0.4 * persons.dep) * np.where((age < 5) | (age > 75), 1.5, 1.0)
    owner, day = poisson_days(rng, rate, persons.start, persons.end)
    visits.add(owner, day, day, params.EMERGENCY, acute_site(persons.location[owner]))
    # Admissions.
    rate = (
        0.03 + 0.002 * np.maximum(age - 40, 0) + 0.15 * _count(persons, ("heart_failure", "copd"))
    )
    owner, day = poisson_days(rng, rate, persons.start, persons.end)
    emergency = rng.random(len(owner)) < EMERGENCY_ADMISSIONS
    end = np.minimum(day + _stay(rng, len(owner)), persons.end[owner])
    visits.add(
        owner,
        day,
        end,
        np.where(emergency, params.EMERGENCY_INPATIENT, params.INPATIENT),
        acute_site(persons.location[owner]),
    )
    # Deaths in hospital: an admission that ends on the day of death.
    who = np.flatnonzero(persons.died & (rng.random(n) < DIED_IN_HOSPITAL))
    start = np.maximum(persons.end[who] - _stay(rng, len(who)), persons.start[who])
    visits.add(
        who, start, persons.end[who], params.EMERGENCY_INPATIENT, acute_site(persons.location[who])
    )
