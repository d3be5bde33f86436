"""Blood pressure, HbA1c and BMI readings consistent with the diagnoses.

Blood pressure: adults are checked now and then (more often when older or
diabetic). A hypertension diagnosis follows two raised readings (the second at
the diagnosing consultation); after it, readings are frequent and lower
(treated). Persons with undiagnosed hypertension have high readings and no
diagnosis: the "undiagnosed hypertension" question. HbA1c: a raised value at
a type 2 diabetes diagnosis and regular monitoring after; occasional normal
values in other adults over 40. BMI: higher with diabetes, hypertension and
deprivation. Each occasion is a GP consultation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sde.omop import vocabulary
from sde.omop.synth import params
from sde.omop.synth.persons import NEVER, Persons
from sde.omop.synth.timeline import VisitBook, poisson_days

YEAR_DAYS = int(params.YEAR)


@dataclass
class Readings:
    """Measurement rows of one kind (concept and unit fixed per row)."""

    owner: np.ndarray
    day: np.ndarray
    concept: np.ndarray
    value: np.ndarray
    unit: np.ndarray
    visit: np.ndarray

    @staticmethod
    def concat(parts: list[Readings]) -> Readings:
        return Readings(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("owner", "day", "concept", "value", "unit", "visit")
            )
        )


def _occasions(visits: VisitBook, owner: np.ndarray, day: np.ndarray) -> np.ndarray:
    return visits.add(owner, day, day, vocabulary.GP_VISIT_CONCEPT_ID, -1)


def _bp_rows(
    owner: np.ndarray, day: np.ndarray, sbp: np.ndarray, dbp: np.ndarray, ref: np.ndarray
) -> Readings:
    n = len(owner)
    return Readings(
        owner=np.concatenate([owner, owner]),
        day=np.concatenate([day, day]),
        concept=np.repeat(np.array([params.SYSTOLIC, params.DIASTOLIC]), n),
        value=np.concatenate([sbp, dbp]),
        unit=np.full(2 * n, params.MMHG),
        visit=np.concatenate([ref, ref]),
    )


def blood_pressure(
    rng: np.random.Generator, persons: Persons, visits: VisitBook, diagnosis_visit: np.ndarray
) -> Readings:
    n = len(persons)
    idx = np.arange(n)
    adult_from = np.maximum(persons.start, persons.birth + 18 * YEAR_DAYS)
    htn_onset = persons.onset_of("hypertension")
    htn = htn_onset != NEVER
    rate = np.select([persons.age < 40, persons.age < 60], [0.12, 0.25], 0.4)
    rate = rate * np.where(persons.has("t2_diabetes"), 1.5, 1.0)
    # Routine checks: before the diagnosis for the hypertensive, throughout for others.
    routine_to = np.where(htn, np.minimum(persons.end, htn_onset - 91), persons.end)
    r_owner, r_day = poisson_days(rng, rate, adult_from, routine_to)
    # Monitoring after a diagnosis.
    m_owner, m_day = poisson_days(
        rng, np.where(htn, 1.5, 0.0), htn_onset + 1, np.where(htn, persons.end, 0)
    )
    # The two raised readings that make the diagnosis.
    h_who = idx[htn]
    first = np.maximum(htn_onset[h_who] - rng.integers(7, 91, len(h_who)), persons.start[h_who])

    offset = rng.normal(0.0, 6.0, n)  # the person's usual level
    dbp_offset = rng.normal(0.0, 4.0, n)
    treated = rng.normal(138.0, 7.0, n)
    undiagnosed = rng.normal(150.0, 7.0, n)

    def usual(owner: np.ndarray, day: np.ndarray) -> np.ndarray:
        age = persons.age_at(day, owner)
        normal = np.minimum(108.0 + 0.4 * (age - 18.0), 130.0) + offset[owner]
        level = np.where(persons.undiagnosed_htn[owner], undiagnosed[owner], normal)
        return np.where(htn[owner], np.minimum(normal, 134.0), level)

    r_sbp = usual(r_owner, r_day) + rng.normal(0.0, 8.0, len(r_owner))
    m_sbp = treated[m_owner] + rng.normal(0.0, 9.0, len(m_owner))
    raised = 140.0 + np.abs(rng.normal(0.0, 14.0, 2 * len(h_who)))

    owner = np.concatenate([r_owner, m_owner, h_who, h_who])
    day = np.concatenate([r_day, m_day, first, htn_onset[h_who]])
    sbp = np.concatenate([r_sbp, m_sbp, raised])
    dbp = 0.42 * sbp + 22.0 + dbp_offset[owner] + rng.normal(0.0, 5.0, len(owner))
    routine_refs = _occasions(
        visits, np.concatenate([r_owner, m_owner, h_who]), np.concatenate([r_day, m_day, first])
    )
    dx_refs = diagnosis_visit[h_who, params.CONDITION_INDEX["hypertension"]]
    ref = np.concatenate([routine_refs, dx_refs])
    sbp = np.clip(np.rint(sbp), 80, 240)
    dbp = np.clip(np.rint(dbp), 40, 140)
    return _bp_rows(owner, day, sbp, dbp, ref)


def hba1c(
    rng: np.random.Generator, persons: Persons, visits: VisitBook, diagnosis_visit: np.ndarray
) -> Readings:
    n = len(persons)
    onset = persons.onset_of("t2_diabetes")
    t2d = onset != NEVER
    who = np.flatnonzero(t2d)
    at_dx = np.maximum(rng.normal(8.0, 1.0, len(who)), 6.5)
    f_owner, f_day = poisson_days(
        rng, np.where(t2d, 1.5, 0.0), onset + 1, np.where(t2d, persons.end, 0)
    )
    control = rng.normal(7.2, 0.7, n)
    f_val = np.clip(control[f_owner] + rng.normal(0.0, 0.4, len(f_owner)), 5.5, 14.0)
    over_40 = np.maximum(persons.start, persons.birth + 40 * YEAR_DAYS)
    s_owner, s_day = poisson_days(rng, np.where(t2d, 0.0, 0.12), over_40, persons.end)
    usual = rng.normal(5.5, 0.3, n)
    s_val = np.clip(usual[s_owner] + rng.normal(0.0, 0.15, len(s_owner)), 4.0, 6.4)
    refs = np.concatenate(
        [
            diagnosis_visit[who, params.CONDITION_INDEX["t2_diabetes"]],
            _occasions(visits, np.concatenate([f_owner, s_owner]), np.concatenate([f_day, s_day])),
        ]
    )
    owner = np.concatenate([who, f_owner, s_owner])
    return Readings(
        owner=owner,
        day=np.concatenate([onset[who], f_day, s_day]),
        concept=np.full(len(owner), params.HBA1C),
        value=np.round(np.concatenate([at_dx, f_val, s_val]), 1),
        unit=np.full(len(owner), params.PERCENT),
        visit=refs,
    )


def bmi(rng: np.random.Generator, persons: Persons, visits: VisitBook) -> Readings:
    n = len(persons)
    t2d = persons.has("t2_diabetes")
    htn = persons.has("hypertension")
    adult_from = np.maximum(persons.start, persons.birth + 18 * YEAR_DAYS)
    rate = 0.15 + 0.35 * (t2d | htn)
    owner, day = poisson_days(rng, rate, adult_from, persons.end)
    usual = 26.0 + 4.0 * t2d + 1.5 * htn + 0.8 * persons.dep + rng.normal(0.0, 4.5, n)
    usual = np.clip(usual, 16.0, 55.0)
    value = np.round(np.clip(usual[owner] + rng.normal(0.0, 0.8, len(owner)), 14.0, 70.0), 1)
    return Readings(
        owner=owner,
        day=day,
        concept=np.full(len(owner), params.BMI),
        value=value,
        unit=np.full(len(owner), params.KG_M2),
        visit=_occasions(visits, owner, day),
    )


def generate(
    rng: np.random.Generator, persons: Persons, visits: VisitBook, diagnosis_visit: np.ndarray
) -> Readings:
    return Readings.concat(
        [
            blood_pressure(rng, persons, visits, diagnosis_visit),
            hba1c(rng, persons, visits, diagnosis_visit),
            bmi(rng, persons, visits),
        ]
    )
