"""Public metadata for DP queries: value bounds, public key sets, contribution defaults.

Read from ``bounds.yaml`` beside this module (a project may ship its own file with the
same shape). Nothing here is derived from data: bounds come from clinical plausibility,
key sets from the vocabulary and the calendar. Metadata only ever changes accuracy; the
privacy guarantee holds whatever it says, because values are clamped and contributions
truncated to whatever bounds are used.

>>> md = Metadata.default()
>>> b = md.bounds_for(ValueRef("value_as_number", "measurement",
...                            concepts={"measurement": frozenset({3004249})}))
>>> (b.lower, b.upper, b.resolution)
(60.0, 250.0, 1.0)
>>> md.keys_for(ValueRef("gender_concept_id")).keys
(8507, 8532)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sde.errors import ConfigurationError

#: Tables whose ``value_as_number`` is described per concept in the metadata.
CONCEPT_VALUE_TABLES = {
    "measurement": "measurement_concept_id",
    "observation": "observation_concept_id",
}
CONCEPT_COLUMNS = {v: k for k, v in CONCEPT_VALUE_TABLES.items()}


@dataclass(frozen=True)
class Bounds:
    """A closed range for a value, and the grid it is rounded to before summing."""

    lower: float
    upper: float
    resolution: float
    source: str = "metadata"

    def __post_init__(self) -> None:
        if (
            not (math.isfinite(self.lower) and math.isfinite(self.upper))
            or self.lower >= self.upper
        ):
            raise ConfigurationError(
                "dp.bounds-invalid",
                f"bounds must be finite with lower < upper, got [{self.lower}, {self.upper}]",
            )
        if not self.resolution > 0:
            raise ConfigurationError("dp.bounds-invalid", "resolution must be positive")

    @staticmethod
    def of(
        lower: float, upper: float, resolution: float | None = None, source: str = "query"
    ) -> Bounds:
        """Bounds with a default resolution of about 1/10,000 of the range (a power of ten)."""
        lo, hi = float(lower), float(upper)
        if resolution is None:
            span = hi - lo if hi > lo else 1.0
            resolution = 10.0 ** math.floor(math.log10(span / 1e4))
        return Bounds(lo, hi, float(resolution), source)


@dataclass(frozen=True)
class KeySpec:
    """A public key set (None: unknown keys) and the default groups per person."""

    keys: tuple[Any, ...] | None
    groups_per_person: int | None = None


@dataclass(frozen=True)
class ValueRef:
    """What the analyser knows about a value or key expression, for metadata look-ups."""

    column: str | None
    table: str | None = None
    date_part: str | None = None
    #: Concept filters found in the query: table -> concept ids (e.g. measurement -> {3004249}).
    concepts: Mapping[str, frozenset[int]] = field(default_factory=dict)

    def concept_table(self) -> str | None:
        """The table whose per-concept metadata applies to ``value_as_number``."""
        if self.table in CONCEPT_VALUE_TABLES:
            return self.table
        found = [t for t in CONCEPT_VALUE_TABLES if self.concepts.get(t)]
        return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Defaults:
    max_rows_per_person: int = 1
    max_groups_per_person: int = 1
    threshold_delta: float = 1e-8
    clamped_report_weight: float = 0.1
    quantile_candidates: int = 1000


class Metadata:
    """Look-ups over one metadata document (see ``bounds.yaml`` for the shape)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self._doc = doc
        d = doc.get("defaults", {}) or {}
        self.defaults = Defaults(
            max_rows_per_person=int(d.get("max_rows_per_person", 1)),
            max_groups_per_person=int(d.get("max_groups_per_person", 1)),
            threshold_delta=float(d.get("threshold_delta", 1e-8)),
            clamped_report_weight=float(d.get("clamped_report_weight", 0.1)),
            quantile_candidates=int(d.get("quantile_candidates", 1000)),
        )
        if not self.defaults.clamped_report_weight >= 0:
            raise ValueError("defaults.clamped_report_weight must be >= 0 (0: no report)")
        self._rows: dict[str, int] = {
            str(k): int(v) for k, v in (doc.get("rows_per_person") or {}).items()
        }

    @staticmethod
    @cache
    def default() -> Metadata:
        text = resources.files("sde.dp").joinpath("bounds.yaml").read_text("utf-8")
        return Metadata(yaml.safe_load(text))

    @staticmethod
    def load(path: str | Path) -> Metadata:
        """The bundled metadata with the entries of ``path`` laid over it, section by section."""
        extra = yaml.safe_load(Path(path).read_text("utf-8")) or {}
        base = dict(Metadata.default()._doc)
        for section, entries in extra.items():
            merged = dict(base.get(section) or {})
            merged.update(entries or {})
            base[section] = merged
        return Metadata(base)

    # -- contribution defaults ------------------------------------------------------------

    def rows_per_person(self, tables: set[str]) -> int:
        """Default rows per person for a query over ``tables`` (the largest table default)."""
        known = [self._rows[t] for t in tables if t in self._rows]
        return max(known) if known else self.defaults.max_rows_per_person

    # -- bounds and keys ---------------------------------------------------------------------

    def _entries(self, ref: ValueRef) -> list[Mapping[str, Any]]:
        """The metadata entries that describe ``ref`` (several when concepts are OR-ed)."""
        if ref.date_part:
            entry = (self._doc.get("date_parts") or {}).get(ref.date_part)
            return [entry] if entry else []
        if ref.column == "value_as_number":
            table = ref.concept_table()
            concepts = ref.concepts.get(table or "", frozenset())
            section = self._doc.get(table or "") or {}
            entries = [section.get(c) for c in sorted(concepts)]
            if not concepts or any(e is None for e in entries):
                return []
            return [e for e in entries if e is not None]
        entry = (self._doc.get("columns") or {}).get(ref.column)
        return [entry] if entry else []

    def bounds_for(self, ref: ValueRef) -> Bounds | None:
        """Declared bounds for a value, or None (the caller refuses: never guessed from data)."""
        entries = self._entries(ref)
        if not entries or any("lower" not in e or "upper" not in e for e in entries):
            return None
        lo = min(float(e["lower"]) for e in entries)
        hi = max(float(e["upper"]) for e in entries)
        res = [float(e["resolution"]) for e in entries if "resolution" in e]
        return Bounds.of(lo, hi, min(res) if res else None, source="metadata")

    def keys_for(self, ref: ValueRef) -> KeySpec:
        """The public key set of a group key (keys None when there is none)."""
        entries = self._entries(ref)
        if len(entries) != 1:
            return KeySpec(None)
        entry = entries[0]
        gpp = entry.get("groups_per_person")
        return KeySpec(_key_set(entry.get("keys")), int(gpp) if gpp is not None else None)


def _key_set(spec: Any) -> tuple[Any, ...] | None:
    if spec is None:
        return None
    if isinstance(spec, list):
        return tuple(spec)
    if isinstance(spec, Mapping) and "range" in spec:
        lo, hi = spec["range"]
        return tuple(range(int(lo), int(hi) + 1))
    if isinstance(spec, Mapping) and "vocabulary_domain" in spec:
        return vocabulary_keys(str(spec["vocabulary_domain"]))
    raise ConfigurationError("dp.metadata-invalid", f"cannot read key set {spec!r}")


@cache
def vocabulary_keys(domain: str) -> tuple[int, ...]:
    """Standard concept ids of ``domain`` in the bundled (public) vocabulary subset."""
    text = resources.files("sde.omop").joinpath("data/concepts.csv").read_text("utf-8")
    return tuple(
        sorted(
            int(r["concept_id"])
            for r in csv.DictReader(text.splitlines())
            if r["domain_id"] == domain and r["standard_concept"] == "S"
        )
    )
