"""Every number the generator uses, in one place.

Figures are chosen to look like a regional English population in primary and
secondary care records; they are plausible, not official statistics. Changing
any of them changes the output for every seed, so bump :data:`GENERATOR_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

#: Changes whenever the same seed would give different rows.
GENERATOR_VERSION = "1.1"

#: Persons per chunk. Each chunk has its own random generator derived from
#: ``(seed, chunk index)``; the chunk size is part of the algorithm.
CHUNK_SIZE = 100_000

#: The records span 2010-01-01 to the data cut (inclusive).
DATA_START = date(2010, 1, 1)
DATA_END = date(2025, 3, 31)

EPOCH = date(1970, 1, 1)


def day(d: date) -> int:
    """Days since 1970-01-01 (the DuckDB/Arrow date32 representation)."""
    return (d - EPOCH).days


START_DAY = day(DATA_START)
END_DAY = day(DATA_END)
#: IMD 2019 was published on 26 September 2019: the date its decile is recorded at.
IMD_PUBLISHED_DAY = day(date(2019, 9, 26))
YEAR = 365.25

#: Share of the population in each 5-year age band at the data cut (0-4 ... 85-89, 90-99):
#: the shape of a North West England population pyramid.
AGE_BAND_SHARE = np.array(
    [5.4, 5.9, 6.1, 5.9, 6.0, 6.1, 6.2, 6.0, 5.7, 6.2, 6.9, 6.9, 6.2, 5.5, 5.6, 4.1, 2.9, 1.7, 0.9]
)
#: Share of females in each band (more women at older ages).
# fmt: off
FEMALE_SHARE = np.array([0.49, 0.49, 0.49, 0.49, 0.49, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.51, 0.51,
                         0.51, 0.52, 0.54, 0.56, 0.6, 0.67])
# fmt: on

#: Registration: share joining a practice in the region after 2010 and share leaving it.
LATE_JOINERS = 0.15
LEAVERS = 0.05
#: Share of persons registered with the National Data Opt-out.
OPT_OUT_SHARE = 0.05


@dataclass(frozen=True)
class ConditionModel:
    """How one condition arises: overall prevalence (ever recorded over the period in the
    whole population), prevalence by age at the data cut (at average deprivation), the
    odds ratio between the most and least deprived deciles, and a log-odds shift for
    women. ``factor`` names the shared latent risk (cardiometabolic or mental)."""

    key: str
    concept_id: int
    prevalence: float
    age_knots: tuple[tuple[int, float], ...]
    deprivation_or: float
    female_log_odds: float
    min_onset_age: int
    factor: str


#: The ten conditions, in the order their columns appear everywhere.
# fmt: off
CONDITIONS: tuple[ConditionModel, ...] = (
    #              key, concept, prevalence, (age, prevalence at that age)..., OR, female, min age
    ConditionModel("hypertension", 320128, 0.15,
                   ((0, 0.0005), (20, 0.002), (30, 0.01), (40, 0.05), (50, 0.15), (60, 0.3),
                    (70, 0.46), (80, 0.57), (100, 0.62)), 2.4, -0.05, 25, "cardio"),
    ConditionModel("t2_diabetes", 201826, 0.08,
                   ((0, 0.0002), (20, 0.004), (30, 0.015), (40, 0.04), (50, 0.09), (60, 0.15),
                    (70, 0.2), (80, 0.21), (100, 0.17)), 2.4, -0.2, 25, "cardio"),
    ConditionModel("asthma", 317009, 0.09,
                   ((0, 0.01), (5, 0.08), (15, 0.11), (30, 0.09), (60, 0.08), (100, 0.07)),
                   1.35, 0.1, 2, "none"),
    ConditionModel("copd", 255573, 0.024,
                   ((0, 0.0), (35, 0.001), (40, 0.004), (50, 0.015), (60, 0.04), (70, 0.075),
                    (80, 0.09), (100, 0.08)), 3.0, -0.1, 35, "none"),
    ConditionModel("depression", 440383, 0.14,
                   ((0, 0.0), (10, 0.003), (15, 0.05), (20, 0.12), (30, 0.17), (50, 0.18),
                    (70, 0.14), (100, 0.14)), 1.8, 0.55, 12, "mental"),
    ConditionModel("anxiety", 442077, 0.10,
                   ((0, 0.0), (10, 0.01), (15, 0.06), (25, 0.12), (50, 0.11), (70, 0.08),
                    (100, 0.07)), 1.6, 0.5, 10, "mental"),
    ConditionModel("dementia", 4182210, 0.01,
                   ((0, 0.0), (55, 0.001), (60, 0.004), (70, 0.02), (80, 0.09), (90, 0.24),
                    (100, 0.33)), 1.25, 0.15, 55, "none"),
    ConditionModel("heart_failure", 316139, 0.013,
                   ((0, 0.0), (40, 0.001), (50, 0.003), (60, 0.01), (70, 0.03), (80, 0.08),
                    (90, 0.13), (100, 0.15)), 1.7, -0.3, 40, "cardio"),
    ConditionModel("chronic_pain", 436096, 0.11,
                   ((0, 0.0), (18, 0.02), (30, 0.06), (40, 0.1), (60, 0.17), (80, 0.23),
                    (100, 0.24)), 1.7, 0.25, 18, "mental"),
    ConditionModel("atrial_fibrillation", 313217, 0.022,
                   ((0, 0.0), (35, 0.0005), (50, 0.005), (60, 0.02), (70, 0.06), (80, 0.12),
                    (90, 0.16), (100, 0.17)), 1.0, -0.35, 35, "cardio"),
)
# fmt: on
CONDITION_INDEX = {c.key: i for i, c in enumerate(CONDITIONS)}

#: Loading of each condition on its latent factor (a standard normal per person).
FACTOR_LOADING = 0.6

#: Share of records coded with a descendant concept rather than the condition itself.
DESCENDANT_CODING = 0.2

#: Ratio of undiagnosed to diagnosed hypertension among adults (England: about 1 in 3).
UNDIAGNOSED_HTN_RATIO = 0.45

# --- deaths ------------------------------------------------------------------------------
#: Share of the persons on record over the period who die before the data cut
#: (England: about 1% of the population a year), at average deprivation.
DEATH_SHARE = 0.12
#: Hazard ratio of death between the most and the least deprived deciles.
DEATH_DEPRIVATION_HR = 1.6
#: Ages at death: band edges (years) and share of deaths in each band (ONS-like).
DEATH_AGE_EDGES = np.array([0, 5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 105])
DEATH_AGE_SHARE = np.array([0.6, 0.2, 0.6, 1.1, 2.0, 4.5, 8.5, 15.0, 27.0, 33.0, 7.5])
#: Extra log-odds of conditions among those who die (they are sicker than their age).
DECEDENT_LOG_ODDS = {
    "heart_failure": 1.0,
    "dementia": 1.2,
    "copd": 0.9,
    "atrial_fibrillation": 0.4,
    "t2_diabetes": 0.3,
    "hypertension": 0.2,
}

# --- concepts ----------------------------------------------------------------------------
MALE, FEMALE = 8507, 8532
WHITE, BLACK, ASIAN = 8527, 8516, 8515
SYSTOLIC, DIASTOLIC, HBA1C, BMI = 3004249, 3012888, 3004410, 3038553
MMHG, PERCENT, KG_M2 = 8876, 8554, 9531
AMLODIPINE, METFORMIN, LISINOPRIL, ATORVASTATIN = 1332418, 1503297, 1308216, 1545958
INPATIENT, OUTPATIENT, EMERGENCY, EMERGENCY_INPATIENT = 9201, 9202, 9203, 262

#: Days of supply per repeat prescription (a three-month issue).
ISSUE_DAYS = 84
