"""One chunk of persons and all their rows, as column arrays ready for Arrow.

A chunk depends only on ``(seed, chunk index, first person id, size, node count)``:
its random generator is derived from the seed and the chunk index, so chunks
can be made in any order (or in parallel) with the same result. Row ids
(``visit_occurrence_id`` and the like) are local to the chunk, counted from 0;
the writer shifts them by the rows of earlier chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import pyarrow as pa

from sde.omop import vocabulary
from sde.omop.synth import conditions, drugs, measurements, params, persons, visits
from sde.omop.synth.nhs_number import nhs_numbers
from sde.omop.synth.persons import NEVER, Persons
from sde.omop.synth.timeline import VisitBook, remap

Column: TypeAlias = np.ndarray | pa.Array

#: The tables a chunk fills, in the order they are written.
PERSON_TABLES = (
    "person",
    "observation_period",
    "death",
    "observation",
    "visit_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "measurement",
    "sde_opt_out",
)


@dataclass
class Frame:
    """Rows of one table: columns by name, and the node of each row."""

    columns: dict[str, Column]
    node: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.node)


@dataclass
class Chunk:
    index: int
    frames: dict[str, Frame] = field(default_factory=dict)
    #: Persons with each condition (by key), for the manifest's summary.
    condition_counts: dict[str, int] = field(default_factory=dict)


def rng_for(seed: int, index: int) -> np.random.Generator:
    """The random generator of chunk ``index`` of a population with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _labels(values: np.ndarray, labels: dict[int, str]) -> pa.DictionaryArray:
    """Strings for integer codes, as a dictionary array (cheap for millions of rows)."""
    keys = np.array(sorted(labels), dtype=np.int64)
    indices = np.searchsorted(keys, values).astype(np.int32)
    return pa.DictionaryArray.from_arrays(indices, pa.array([labels[k] for k in keys]))


def _ordered(owner: np.ndarray, day: np.ndarray) -> np.ndarray:
    return np.lexsort((day, owner))


def _person(p: Persons) -> Frame:
    birth = p.birth.astype("datetime64[D]")
    years = birth.astype("datetime64[Y]")
    months = birth.astype("datetime64[M]")
    race_labels = {
        0: "Not stated",
        params.WHITE: "White",
        params.BLACK: "Black or Black British",
        params.ASIAN: "Asian or Asian British",
    }
    return Frame(
        {
            "person_id": p.person_id,
            "gender_concept_id": np.where(p.female, params.FEMALE, params.MALE),
            "year_of_birth": years.astype(np.int64) + 1970,
            "month_of_birth": (months - years.astype("datetime64[M]")).astype(np.int64) + 1,
            "day_of_birth": (birth - months.astype("datetime64[D]")).astype(np.int64) + 1,
            "birth_datetime": p.birth,
            "race_concept_id": p.race,
            "ethnicity_concept_id": np.zeros(len(p), dtype=np.int64),
            "location_id": p.location + 1,
            "person_source_value": pa.array(nhs_numbers(p.person_id)),
            "gender_source_value": _labels(p.female.astype(np.int64), {0: "M", 1: "F"}),
            "race_source_value": _labels(p.race, race_labels),
        },
        p.node,
    )


def _observation_period(p: Persons) -> Frame:
    n = len(p)
    return Frame(
        {
            "observation_period_id": np.arange(n, dtype=np.int64),
            "person_id": p.person_id,
            "observation_period_start_date": p.start,
            "observation_period_end_date": p.end,
            "period_type_concept_id": np.full(n, vocabulary.EHR_TYPE_CONCEPT_ID),
        },
        p.node,
    )


def _death(p: Persons) -> Frame:
    who = np.flatnonzero(p.died)
    cause = np.full(len(who), -1, dtype=np.int64)
    for key in ("copd", "heart_failure", "dementia"):  # later keys take precedence
        has = p.onset[who, params.CONDITION_INDEX[key]] != NEVER
        cause[has] = params.CONDITIONS[params.CONDITION_INDEX[key]].concept_id
    return Frame(
        {
            "person_id": p.person_id[who],
            "death_date": p.end[who],
            "death_type_concept_id": np.full(len(who), vocabulary.EHR_TYPE_CONCEPT_ID),
            "cause_concept_id": cause,
        },
        p.node[who],
    )


def _observation(p: Persons) -> Frame:
    """The IMD 2019 decile of each person's LSOA.

    Dated when IMD 2019 was published, or the nearest day of the person's record, so
    that a project period containing late 2019 keeps every person's decile.
    """
    n = len(p)
    return Frame(
        {
            "observation_id": np.arange(n, dtype=np.int64),
            "person_id": p.person_id,
            "observation_concept_id": np.full(n, vocabulary.IMD_DECILE_CONCEPT_ID),
            "observation_date": np.clip(params.IMD_PUBLISHED_DAY, p.start, p.end),
            "observation_type_concept_id": np.full(n, vocabulary.EHR_TYPE_CONCEPT_ID),
            "value_as_number": p.decile.astype(np.float64),
            "observation_source_value": _labels(np.zeros(n, dtype=np.int64), {0: "IMD2019"}),
        },
        p.node,
    )


def _visits(p: Persons, v: dict[str, np.ndarray]) -> Frame:
    n = len(v["owner"])
    labels = {
        vocabulary.GP_VISIT_CONCEPT_ID: "GP",
        params.OUTPATIENT: "OP",
        params.EMERGENCY: "AE",
        params.INPATIENT: "IP",
        params.EMERGENCY_INPATIENT: "AE-IP",
    }
    return Frame(
        {
            "visit_occurrence_id": np.arange(n, dtype=np.int64),
            "person_id": p.person_id[v["owner"]],
            "visit_concept_id": v["concept"],
            "visit_start_date": v["start"],
            "visit_end_date": v["end"],
            "visit_type_concept_id": np.full(n, vocabulary.EHR_TYPE_CONCEPT_ID),
            "care_site_id": v["care_site"],
            "visit_source_value": _labels(v["concept"], labels),
        },
        p.node[v["owner"]],
    )


def _code_labels() -> dict[int, str]:
    return {c.concept_id: c.concept_code for c in vocabulary.all_concepts()}


def _conditions(p: Persons, c: conditions.ConditionRecords, position: np.ndarray) -> Frame:
    order = _ordered(c.owner, c.day)
    owner, concept = c.owner[order], c.concept[order]
    return Frame(
        {
            "condition_occurrence_id": np.arange(len(order), dtype=np.int64),
            "person_id": p.person_id[owner],
            "condition_concept_id": concept,
            "condition_start_date": c.day[order],
            "condition_type_concept_id": np.full(len(order), vocabulary.EHR_TYPE_CONCEPT_ID),
            "visit_occurrence_id": remap(c.visit[order], position),
            "condition_source_value": _labels(concept, _code_labels()),
        },
        p.node[owner],
    )


def _drugs(p: Persons, d: drugs.Prescriptions, position: np.ndarray) -> Frame:
    order = _ordered(d.owner, d.day)
    owner, concept = d.owner[order], d.concept[order]
    n = len(order)
    return Frame(
        {
            "drug_exposure_id": np.arange(n, dtype=np.int64),
            "person_id": p.person_id[owner],
            "drug_concept_id": concept,
            "drug_exposure_start_date": d.day[order],
            "drug_exposure_end_date": d.end[order],
            "drug_type_concept_id": np.full(n, vocabulary.EHR_TYPE_CONCEPT_ID),
            "quantity": np.full(n, float(params.ISSUE_DAYS)),
            "days_supply": np.full(n, params.ISSUE_DAYS),
            "visit_occurrence_id": remap(d.visit[order], position),
            "drug_source_value": _labels(concept, drugs.DRUG_LABELS),
        },
        p.node[owner],
    )


def _measurements(p: Persons, m: measurements.Readings, position: np.ndarray) -> Frame:
    order = np.lexsort((m.concept, m.day, m.owner))
    owner, concept, unit = m.owner[order], m.concept[order], m.unit[order]
    n = len(order)
    return Frame(
        {
            "measurement_id": np.arange(n, dtype=np.int64),
            "person_id": p.person_id[owner],
            "measurement_concept_id": concept,
            "measurement_date": m.day[order],
            "measurement_type_concept_id": np.full(n, vocabulary.EHR_TYPE_CONCEPT_ID),
            "value_as_number": m.value[order],
            "unit_concept_id": unit,
            "visit_occurrence_id": remap(m.visit[order], position),
            "measurement_source_value": _labels(concept, _code_labels()),
            "unit_source_value": _labels(unit, _code_labels()),
        },
        p.node[owner],
    )


def _opt_out(p: Persons) -> Frame:
    who = np.flatnonzero(p.opt_out)
    return Frame({"person_id": p.person_id[who]}, p.node[who])


def generate(seed: int, index: int, first_id: int, size: int, nodes: int) -> Chunk:
    """Every row of chunk ``index`` (persons ``first_id`` .. ``first_id + size - 1``)."""
    rng = rng_for(seed, index)
    p = persons.generate(rng, first_id, size, nodes)
    book = VisitBook()
    cond = conditions.generate(rng, p, book)
    meas = measurements.generate(rng, p, book, cond.diagnosis_visit)
    rx = drugs.generate(rng, p, book, cond.diagnosis_visit)
    visits.generate(rng, p, book)
    v, position = book.finish()
    chunk = Chunk(index)
    chunk.frames = {
        "person": _person(p),
        "observation_period": _observation_period(p),
        "death": _death(p),
        "observation": _observation(p),
        "visit_occurrence": _visits(p, v),
        "condition_occurrence": _conditions(p, cond, position),
        "drug_exposure": _drugs(p, rx, position),
        "measurement": _measurements(p, meas, position),
        "sde_opt_out": _opt_out(p),
    }
    chunk.condition_counts = {m.key: int(p.has(m.key).sum()) for m in params.CONDITIONS}
    return chunk
