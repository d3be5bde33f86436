"""The OMOP CDM v5.4 schema as data: tables, columns, types and what each means for scope.

The field list is the OHDSI CommonDataModel v5.4 DuckDB DDL (bundled as
``data/cdm54_fields.csv``). On top of it this module records the facts the
rest of the workbench needs about each table: which column links a row to a
person, which date places an event in time (for a project's period), and
which columns must never be exposed whatever a scope file says.

>>> CDM.table("person").column("person_id").type
'integer'
>>> CDM.event_date("condition_occurrence")
'condition_start_date'
>>> "person_source_value" in CDM.NEVER_EXPOSED["person"]
True
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import ClassVar

from sde.errors import ConfigurationError


@dataclass(frozen=True)
class Column:
    """One CDM column: name, CDM type (``integer``, ``date``, ``varchar(50)``...), required."""

    name: str
    type: str
    required: bool

    @property
    def base_type(self) -> str:
        """The type without its length: ``varchar(50)`` -> ``varchar``."""
        return self.type.split("(", 1)[0]


@dataclass(frozen=True)
class Table:
    """One CDM table with its columns in CDM order."""

    name: str
    columns: tuple[Column, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise ConfigurationError(
            "cdm.unknown-column", f"table {self.name} has no column {name} in OMOP CDM v5.4"
        )

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)


@cache
def _load_tables() -> dict[str, Table]:
    text = resources.files("sde.omop").joinpath("data/cdm54_fields.csv").read_text("utf-8")
    columns: dict[str, list[Column]] = {}
    for row in csv.DictReader(text.splitlines()):
        columns.setdefault(row["table"], []).append(
            Column(row["column"], row["type"], row["required"] == "yes")
        )
    return {name: Table(name, tuple(cols)) for name, cols in columns.items()}


class CDM:
    """Facts about OMOP CDM v5.4 that scope, synthesis and the engines share."""

    VERSION: ClassVar[str] = "5.4"

    #: Columns never exposed to any project, whatever its scope file says: they can
    #: hold direct identifiers (NHS number, full date of birth, professional
    #: registration numbers, addresses, free text). A device's UDI and production id
    #: name one physical device (an implant: one person) and a specimen's source id is
    #: the laboratory's accession number: raw text identifiers with no research value
    #: that a per-project pseudonym would keep, so they are withheld, not pseudonymised.
    #: Clinicians' and sites' names are free text naming a person or a practice, and a
    #: site's source value (its ODS code) or a family's source value is the raw
    #: identifier behind a pseudonymised id: shown, they would undo the pseudonym and
    #: link projects.
    NEVER_EXPOSED: ClassVar[dict[str, frozenset[str]]] = {
        "person": frozenset({"person_source_value", "day_of_birth", "birth_datetime"}),
        "provider": frozenset({"provider_name", "npi", "dea", "provider_source_value"}),
        "care_site": frozenset({"care_site_name", "care_site_source_value"}),
        "location": frozenset({"address_1", "address_2", "location_source_value"}),
        "note": frozenset({"note_text"}),
        "device_exposure": frozenset({"unique_device_id", "production_id"}),
        "specimen": frozenset({"specimen_source_id"}),
        "payer_plan_period": frozenset({"family_source_value"}),
    }

    #: Vocabulary tables: public reference data, not about persons.
    VOCABULARY_TABLES: ClassVar[frozenset[str]] = frozenset(
        {
            "concept",
            "vocabulary",
            "domain",
            "concept_class",
            "concept_relationship",
            "relationship",
            "concept_synonym",
            "concept_ancestor",
            "source_to_concept_map",
            "drug_strength",
        }
    )

    #: The date that places a row of an event table in time (start date, or the single
    #: date). A project's period keeps rows whose event date lies inside it.
    EVENT_DATES: ClassVar[dict[str, str]] = {
        "visit_occurrence": "visit_start_date",
        "visit_detail": "visit_detail_start_date",
        "condition_occurrence": "condition_start_date",
        "drug_exposure": "drug_exposure_start_date",
        "procedure_occurrence": "procedure_date",
        "device_exposure": "device_exposure_start_date",
        "measurement": "measurement_date",
        "observation": "observation_date",
        "death": "death_date",
        "note": "note_date",
        "specimen": "specimen_date",
        "payer_plan_period": "payer_plan_period_start_date",
        "drug_era": "drug_era_start_date",
        "dose_era": "dose_era_start_date",
        "condition_era": "condition_era_start_date",
        "episode": "episode_start_date",
    }

    #: Tables whose rows span an interval; the period keeps rows that overlap it.
    INTERVALS: ClassVar[dict[str, tuple[str, str]]] = {
        "observation_period": ("observation_period_start_date", "observation_period_end_date"),
    }

    @staticmethod
    def tables() -> dict[str, Table]:
        """Every CDM v5.4 table by name."""
        return _load_tables()

    @staticmethod
    def table(name: str) -> Table:
        try:
            return _load_tables()[name]
        except KeyError:
            raise ConfigurationError(
                "cdm.unknown-table", f"{name} is not a table of OMOP CDM v5.4"
            ) from None

    @staticmethod
    def has_table(name: str) -> bool:
        return name in _load_tables()

    @staticmethod
    def event_date(table: str) -> str | None:
        return CDM.EVENT_DATES.get(table)

    @staticmethod
    def is_person_table(table: str) -> bool:
        """True when rows of ``table`` belong to a person (carry ``person_id``)."""
        return CDM.table(table).has_column("person_id")

    @staticmethod
    def exposable_columns(table: str) -> tuple[str, ...]:
        """Columns of ``table`` that a scope may ever expose (``"*"`` means these)."""
        hidden = CDM.NEVER_EXPOSED.get(table, frozenset())
        return tuple(c for c in CDM.table(table).column_names if c not in hidden)
