"""The small OMOP vocabulary bundled with every node.

The full Athena vocabulary cannot be fetched here, so each node carries the
concepts the synthetic population uses (``data/concepts.csv``), a few
descendant concepts per condition (so that "this concept or any descendant"
cohorts behave as they would on real data), and the workbench's local
concepts (ids from 2,000,000,000, vocabulary ``SDE``: OMOP reserves that range
for site-specific concepts).

Descendants marked ``confirmed`` carry real OMOP concept ids, names and SNOMED
codes seen in OHDSI's Eunomia vocabulary extract; the others are local
stand-ins for SNOMED descendants whose ids could not be confirmed
(``docs/data-model.md`` lists which are which).

>>> 4051466 in descendants(317009)          # Childhood asthma is a kind of asthma
True
>>> sorted(ancestors(4043241))[:2]           # Familial early-onset Alzheimer's disease
[378419, 4182210]
>>> concept(IMD_DECILE_CONCEPT_ID).vocabulary_id
'SDE'
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

import pyarrow as pa

from sde.errors import InvalidInput

#: Observation concept holding the IMD 2019 decile of the person's LSOA (1 = most deprived).
IMD_DECILE_CONCEPT_ID = 2_000_000_001
#: Visit concept for a contact with the person's general practice (a kind of outpatient visit).
GP_VISIT_CONCEPT_ID = 2_000_000_002
#: The OMOP "Outpatient Visit" concept that GP contacts descend from.
OUTPATIENT_VISIT_CONCEPT_ID = 9202
#: Type concept used for every synthetic record ("EHR").
EHR_TYPE_CONCEPT_ID = 32817

VALID_START = date(1970, 1, 1)
VALID_END = date(2099, 12, 31)
LOCAL_VOCABULARY = "SDE"
#: Version label of the bundled vocabulary (fits cdm_source.vocabulary_version, varchar(20)).
VOCABULARY_VERSION = "SDE subset v1"


@dataclass(frozen=True)
class Concept:
    """One row of the ``concept`` table (validity dates are the same for every concept)."""

    concept_id: int
    concept_name: str
    domain_id: str
    vocabulary_id: str
    concept_class_id: str
    standard_concept: str | None
    concept_code: str
    confirmed: bool


@dataclass(frozen=True)
class Descendant:
    """A concept below ``parent`` in the hierarchy (one 'Is a' step)."""

    concept: Concept
    parent: int


def _snomed(cid: int, name: str, code: str) -> Concept:
    return Concept(cid, name, "Condition", "SNOMED", "Clinical Finding", "S", code, True)


def _local(
    cid: int, name: str, domain: str = "Condition", cls: str = "Clinical Finding"
) -> Concept:
    return Concept(
        cid, name, domain, LOCAL_VOCABULARY, cls, "S", f"SDE{cid - 2_000_000_000:06d}", False
    )


#: Descendants per condition. Confirmed ids come from OHDSI's Eunomia vocabulary
#: extract (id, name and SNOMED code); local ids stand in for unconfirmed ones.
DESCENDANTS: tuple[Descendant, ...] = (
    # Essential hypertension (320128)
    Descendant(_local(2_000_000_101, "Benign essential hypertension"), 320128),
    Descendant(_local(2_000_000_102, "Essential hypertension in remission"), 320128),
    # Type 2 diabetes mellitus (201826)
    Descendant(_local(2_000_000_111, "Type 2 diabetes mellitus without complication"), 201826),
    Descendant(_local(2_000_000_112, "Type 2 diabetes mellitus with renal complication"), 201826),
    # Asthma (317009)
    Descendant(_snomed(4051466, "Childhood asthma", "233678006"), 317009),
    Descendant(_local(2_000_000_121, "Allergic asthma"), 317009),
    # Chronic obstructive lung disease (255573)
    Descendant(_snomed(261325, "Pulmonary emphysema", "87433001"), 255573),
    Descendant(_snomed(258780, "Emphysematous bronchitis", "185086009"), 255573),
    # Depressive disorder (440383)
    Descendant(_local(2_000_000_141, "Recurrent depressive disorder"), 440383),
    Descendant(_local(2_000_000_142, "Mild depression"), 440383),
    # Anxiety disorder (442077)
    Descendant(_local(2_000_000_151, "Generalized anxiety disorder"), 442077),
    Descendant(_local(2_000_000_152, "Panic disorder"), 442077),
    # Dementia (4182210): Alzheimer's disease, and below it its familial early-onset form
    Descendant(_snomed(378419, "Alzheimer's disease", "26929004"), 4182210),
    Descendant(
        _snomed(4043241, "Familial Alzheimer's disease of early onset", "230265002"), 378419
    ),
    Descendant(_local(2_000_000_161, "Vascular dementia"), 4182210),
    # Heart failure (316139)
    Descendant(_local(2_000_000_171, "Congestive heart failure"), 316139),
    Descendant(_local(2_000_000_172, "Left ventricular failure"), 316139),
    # Chronic pain (436096)
    Descendant(_local(2_000_000_181, "Chronic low back pain"), 436096),
    Descendant(_local(2_000_000_182, "Chronic widespread pain"), 436096),
    # Atrial fibrillation (313217)
    Descendant(_local(2_000_000_191, "Paroxysmal atrial fibrillation"), 313217),
    Descendant(_local(2_000_000_192, "Persistent atrial fibrillation"), 313217),
    # General practice contact: a kind of outpatient visit
    Descendant(
        _local(GP_VISIT_CONCEPT_ID, "General practice consultation", "Visit", "Visit"),
        OUTPATIENT_VISIT_CONCEPT_ID,
    ),
)

#: Local concepts that are not descendants of anything.
LOCAL_CONCEPTS: tuple[Concept, ...] = (
    _local(
        IMD_DECILE_CONCEPT_ID,
        "Index of Multiple Deprivation 2019 decile of LSOA of residence",
        "Observation",
        "Clinical Observation",
    ),
)

_VOCABULARY_NAMES = {
    "SNOMED": "Systematic Nomenclature of Medicine - Clinical Terms (IHTSDO)",
    "LOINC": "Logical Observation Identifiers Names and Codes (Regenstrief Institute)",
    "UCUM": "Unified Code for Units of Measure (Regenstrief Institute)",
    "RxNorm": "RxNorm (NLM)",
    "Gender": "OMOP Gender",
    "Race": "Race and Ethnicity Code Set (USBC)",
    "Visit": "OMOP Visit",
    "Type Concept": "OMOP Type Concept",
    LOCAL_VOCABULARY: "SDE Workbench local concepts (Lancashire & South Cumbria)",
}

_DOMAIN_NAMES = {
    "Condition": "Condition",
    "Measurement": "Measurement",
    "Observation": "Observation",
    "Drug": "Drug",
    "Unit": "Unit",
    "Gender": "Gender",
    "Race": "Race",
    "Visit": "Visit",
    "Type Concept": "Type Concept",
}


@cache
def bundled_concepts() -> tuple[Concept, ...]:
    """The concepts of ``data/concepts.csv`` (the ids the population uses)."""
    text = resources.files("sde.omop").joinpath("data/concepts.csv").read_text("utf-8")
    rows = []
    for row in csv.DictReader(text.splitlines()):
        rows.append(
            Concept(
                int(row["concept_id"]),
                row["concept_name"],
                row["domain_id"],
                row["vocabulary_id"],
                row["concept_class_id"],
                row["standard_concept"] or None,
                row["concept_code"],
                row["checked"] == "yes",
            )
        )
    return tuple(rows)


@cache
def all_concepts() -> tuple[Concept, ...]:
    """Every concept in the bundled vocabulary, each once, ordered by id."""
    by_id: dict[int, Concept] = {}
    for c in (*bundled_concepts(), *(d.concept for d in DESCENDANTS), *LOCAL_CONCEPTS):
        by_id.setdefault(c.concept_id, c)
    return tuple(by_id[k] for k in sorted(by_id))


def concept(concept_id: int) -> Concept:
    """The bundled concept with this id."""
    for c in all_concepts():
        if c.concept_id == concept_id:
            return c
    raise InvalidInput("vocabulary.unknown-concept", f"concept {concept_id} is not bundled")


@cache
def _parents() -> dict[int, int]:
    return {d.concept.concept_id: d.parent for d in DESCENDANTS}


@cache
def ancestry() -> tuple[tuple[int, int, int], ...]:
    """``(ancestor, descendant, levels)`` for every pair, including each standard
    concept to itself at level 0, as ``concept_ancestor`` holds them."""
    parents = _parents()
    pairs: list[tuple[int, int, int]] = []
    for c in all_concepts():
        if c.standard_concept != "S":
            continue
        pairs.append((c.concept_id, c.concept_id, 0))
        node, level = c.concept_id, 0
        while node in parents:
            node, level = parents[node], level + 1
            pairs.append((node, c.concept_id, level))
    return tuple(sorted(pairs))


def descendants(concept_id: int, *, include_self: bool = True) -> set[int]:
    """Ids of ``concept_id`` and everything below it in the bundled hierarchy."""
    found = {d for a, d, _ in ancestry() if a == concept_id}
    if not include_self:
        found.discard(concept_id)
    return found


def ancestors(concept_id: int, *, include_self: bool = False) -> set[int]:
    """Ids of every concept above ``concept_id`` in the bundled hierarchy."""
    found = {a for a, d, _ in ancestry() if d == concept_id}
    if not include_self:
        found.discard(concept_id)
    return found


def child_concepts(concept_id: int) -> tuple[int, ...]:
    """Ids one 'Is a' step below ``concept_id``, in a stable order."""
    return tuple(sorted(cid for cid, parent in _parents().items() if parent == concept_id))


# --- the vocabulary tables as Arrow tables, ready to insert ----------------------------


def _dates(n: int) -> tuple[pa.Array, pa.Array]:
    return pa.array([VALID_START] * n, pa.date32()), pa.array([VALID_END] * n, pa.date32())


def _concept_table() -> pa.Table:
    cs = all_concepts()
    start, end = _dates(len(cs))
    return pa.table(
        {
            "concept_id": [c.concept_id for c in cs],
            "concept_name": [c.concept_name for c in cs],
            "domain_id": [c.domain_id for c in cs],
            "vocabulary_id": [c.vocabulary_id for c in cs],
            "concept_class_id": [c.concept_class_id for c in cs],
            "standard_concept": [c.standard_concept for c in cs],
            "concept_code": [c.concept_code for c in cs],
            "valid_start_date": start,
            "valid_end_date": end,
        }
    )


def _ancestor_table() -> pa.Table:
    rows = ancestry()
    return pa.table(
        {
            "ancestor_concept_id": [a for a, _, _ in rows],
            "descendant_concept_id": [d for _, d, _ in rows],
            "min_levels_of_separation": [n for _, _, n in rows],
            "max_levels_of_separation": [n for _, _, n in rows],
        }
    )


def _relationship_rows() -> Iterable[tuple[int, int, str]]:
    for d in DESCENDANTS:
        yield d.concept.concept_id, d.parent, "Is a"
        yield d.parent, d.concept.concept_id, "Subsumes"


def _concept_relationship_table() -> pa.Table:
    rows = sorted(_relationship_rows())
    start, end = _dates(len(rows))
    return pa.table(
        {
            "concept_id_1": [a for a, _, _ in rows],
            "concept_id_2": [b for _, b, _ in rows],
            "relationship_id": [r for _, _, r in rows],
            "valid_start_date": start,
            "valid_end_date": end,
        }
    )


def _named_table(key: str, names: dict[str, str], used: Iterable[str]) -> pa.Table:
    ids = sorted(set(used))
    return pa.table(
        {
            f"{key}_id": ids,
            f"{key}_name": [names.get(i, i) for i in ids],
            # Concept ids of vocabularies, domains and classes are not bundled: 0 means
            # "no matching concept", as the CDM allows.
            f"{key}_concept_id": [0] * len(ids),
        }
    )


def vocabulary_tables() -> dict[str, pa.Table]:
    """The bundled vocabulary as Arrow tables keyed by CDM table name."""
    cs = all_concepts()
    vocabulary = _named_table("vocabulary", _VOCABULARY_NAMES, (c.vocabulary_id for c in cs))
    vocabulary = vocabulary.add_column(
        3, "vocabulary_version", pa.array([VOCABULARY_VERSION] * vocabulary.num_rows)
    )
    relationship = pa.table(
        {
            "relationship_id": ["Is a", "Subsumes"],
            "relationship_name": ["Is a", "Subsumes"],
            "is_hierarchical": ["1", "1"],
            "defines_ancestry": ["1", "1"],
            "reverse_relationship_id": ["Subsumes", "Is a"],
            "relationship_concept_id": [0, 0],
        }
    )
    return {
        "concept": _concept_table(),
        "concept_ancestor": _ancestor_table(),
        "concept_relationship": _concept_relationship_table(),
        "relationship": relationship,
        "vocabulary": vocabulary,
        "domain": _named_table("domain", _DOMAIN_NAMES, (c.domain_id for c in cs)),
        "concept_class": _named_table("concept_class", {}, (c.concept_class_id for c in cs)),
    }
