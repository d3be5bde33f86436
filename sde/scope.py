"""The scope of one approved project: what its researchers may see, as data.

The access committee writes a scope file (YAML); :class:`Scope` loads and
validates it against the OMOP CDM v5.4 field list, and every query the proxy
runs is held to it. The contract is in ``ARCHITECTURE.md``; the rules that
enforce it are in :mod:`sde.proxy.rules`.

>>> s = Scope.from_dict({"project": "htn-deprivation", "access": "rows",
...                      "tables": {"person": ["person_id", "year_of_birth"]}})
>>> s.columns("person")
('person_id', 'year_of_birth')
>>> Scope.from_dict({"project": "p", "access": "rows", "tables": {"persons": "*"}})
Traceback (most recent call last):
...
sde.errors.ConfigurationError: scope key tables.persons: persons is not a table of OMOP CDM v5.4

Columns the CDM marks never exposed (``person_source_value``...) may be listed
but are withheld: ``"*"`` never includes them and an explicit listing is
recorded in :attr:`Scope.withheld`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from sde.errors import ConfigurationError
from sde.omop.cdm import CDM
from sde.sdc.config import SDCConfig

_log = logging.getLogger(__name__)

AccessMode = Literal["rows", "aggregates", "dp"]
ACCESS_MODES: tuple[str, ...] = ("rows", "aggregates", "dp")

_KEYS = {"project", "access", "nodes", "tables", "cohort", "period", "sdc", "dp", "expires"}
_COHORT_KEYS = {"any_condition"}
_PERIOD_KEYS = {"start", "end"}
#: Output-checking settings of earlier scope files that are now named otherwise (one name
#: per setting: the rule ``nk-dominance`` and ACRO's ``safe_nk_n``/``safe_nk_k``).
_SDC_RENAMED = {"dominance_n": "nk_n", "dominance_k": "nk_k"}
_DP_KEYS = {"epsilon", "delta"}
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_NODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: CDM tables whose rows cannot be tied to the project's persons by the proxy: they
#: link to persons only through generic event ids. A scope listing one is refused.
UNSCOPABLE_TABLES: frozenset[str] = frozenset(
    {"cost", "fact_relationship", "note_nlp", "episode_event", "cohort", "cohort_definition"}
)

#: Columns holding a generic reference to a row of *some* event table. They cannot be
#: pseudonymised consistently (the table depends on another column), so they are withheld
#: on top of the CDM's never-exposed list.
GENERIC_EVENT_IDS: dict[str, frozenset[str]] = {
    "measurement": frozenset({"measurement_event_id"}),
    "observation": frozenset({"observation_event_id"}),
    "note": frozenset({"note_event_id"}),
}


def withheld_columns(table: str) -> frozenset[str]:
    """Columns of ``table`` no project ever sees."""
    return CDM.NEVER_EXPOSED.get(table, frozenset()) | GENERIC_EVENT_IDS.get(table, frozenset())


def withheld_notice(column: str) -> str:
    """What a scope file listing never-exposed ``column`` (``table.column``) is told."""
    return (
        f"column {column} is withheld by design: it is never exposed, "
        "whatever the scope file lists, and queries naming it are refused"
    )


def _fail(key: str, problem: str) -> ConfigurationError:
    return ConfigurationError("scope.invalid", f"scope key {key}: {problem}", key=key)


def _date(key: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise _fail(key, f"{value!r} is not a date (YYYY-MM-DD)")


def _unknown_keys(key: str, given: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(given) - known)
    if extra:
        where = f"{key}.{extra[0]}" if key else extra[0]
        raise _fail(where, f"unknown key; expected one of {', '.join(sorted(known))}")


@dataclass(frozen=True)
class Period:
    """Closed date interval ``[start, end]``; either bound may be open (``None``)."""

    start: dt.date | None
    end: dt.date | None


@dataclass(frozen=True)
class Scope:
    """One project's approved scope, validated. Build with :meth:`load`."""

    project: str
    access: AccessMode
    tables: Mapping[str, tuple[str, ...]]
    nodes: tuple[str, ...] | None = None
    cohort_concepts: tuple[int, ...] | None = None
    period: Period | None = None
    #: Output-checking settings (``sde.sdc`` rules; ``threshold`` also in aggregates mode).
    sdc: SDCConfig = field(default_factory=SDCConfig)
    dp: Mapping[str, float] | None = None
    expires: dt.date | None = None
    #: Columns the file listed that are never exposed, as ``table.column``; each is
    #: logged at load time (:func:`withheld_notice`) and refused by name in queries.
    withheld: tuple[str, ...] = ()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def load(cls, source: Scope | Mapping[str, Any] | str | Path) -> Scope:
        """A scope from a :class:`Scope`, a dict, a YAML file path, or YAML text."""
        if isinstance(source, Scope):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        text = str(source)
        path = Path(text)
        if "\n" not in text and path.suffix in {".yaml", ".yml", ".json"}:
            if not path.is_file():
                raise ConfigurationError("scope.missing", f"scope file {path} does not exist")
            text = path.read_text("utf-8")
        return cls.from_yaml(text)

    @classmethod
    def from_yaml(cls, text: str) -> Scope:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigurationError(
                "scope.invalid", f"scope file is not valid YAML: {err}"
            ) from None
        if not isinstance(data, Mapping):
            raise ConfigurationError("scope.invalid", "scope file must be a mapping of keys")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scope:
        _unknown_keys("", data, _KEYS)
        for required in ("project", "access", "tables"):
            if required not in data:
                raise _fail(required, "missing")
        project = data["project"]
        if not isinstance(project, str) or not _SLUG.match(project):
            raise _fail("project", f"{project!r} is not a slug (lowercase letters, digits, -)")
        access = data["access"]
        if access not in ACCESS_MODES:
            raise _fail("access", f"{access!r} is not one of {', '.join(ACCESS_MODES)}")
        tables, withheld = _tables(data["tables"])
        for column in withheld:
            _log.warning("scope %s: %s", project, withheld_notice(column))
        return cls(
            project=project,
            access=access,
            tables=tables,
            nodes=_nodes(data.get("nodes")),
            cohort_concepts=_cohort(data.get("cohort")),
            period=_period(data.get("period")),
            sdc=_sdc(data.get("sdc")),
            dp=_dp(data.get("dp")),
            expires=_date("expires", data["expires"]) if data.get("expires") is not None else None,
            withheld=withheld,
        )

    # -- questions ----------------------------------------------------------------------

    @property
    def notices(self) -> tuple[str, ...]:
        """Sentences for whoever loads the scope: the listed columns that are withheld."""
        return tuple(withheld_notice(c) for c in self.withheld)

    def columns(self, table: str) -> tuple[str, ...]:
        """The columns of ``table`` the project may see (empty if the table is not listed)."""
        return self.tables.get(table, ())

    @property
    def threshold(self) -> int:
        """Minimum distinct persons per group in ``aggregates`` mode: ``sdc.threshold``."""
        return self.sdc.threshold

    def to_dict(self) -> dict[str, Any]:
        """A canonical, JSON-friendly form (resolved column lists)."""
        return {
            "project": self.project,
            "access": self.access,
            "nodes": list(self.nodes) if self.nodes is not None else None,
            "tables": {t: list(c) for t, c in sorted(self.tables.items())},
            "cohort": {"any_condition": list(self.cohort_concepts)}
            if self.cohort_concepts is not None
            else None,
            "period": {
                "start": self.period.start.isoformat() if self.period.start else None,
                "end": self.period.end.isoformat() if self.period.end else None,
            }
            if self.period
            else None,
            "sdc": _sdc_dict(self.sdc),
            "dp": dict(self.dp) if self.dp else None,
            "expires": self.expires.isoformat() if self.expires else None,
        }

    @property
    def version(self) -> str:
        """SHA-256 of the canonical form: names this exact scope in audit records."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def is_expired(self, today: dt.date | None = None) -> bool:
        return self.expires is not None and (today or dt.date.today()) > self.expires


def _tables(value: Any) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    if not isinstance(value, Mapping) or not value:
        raise _fail("tables", "must list at least one table")
    tables: dict[str, tuple[str, ...]] = {}
    withheld: list[str] = []
    for name, cols in value.items():
        key = f"tables.{name}"
        if not isinstance(name, str) or not CDM.has_table(name):
            raise _fail(key, f"{name} is not a table of OMOP CDM v5.4")
        if name in UNSCOPABLE_TABLES:
            raise _fail(key, f"{name} links to persons only through generic ids; not supported")
        hidden = withheld_columns(name)
        if cols == "*":
            tables[name] = tuple(c for c in CDM.exposable_columns(name) if c not in hidden)
            continue
        if not isinstance(cols, list | tuple) or not cols:
            raise _fail(key, 'must be "*" or a non-empty list of columns')
        chosen: list[str] = []
        for col in cols:
            if not isinstance(col, str) or not CDM.table(name).has_column(col):
                raise _fail(key, f"table {name} has no column {col} in OMOP CDM v5.4")
            if col in hidden:
                withheld.append(f"{name}.{col}")
            elif col not in chosen:
                chosen.append(col)
        if not chosen:
            raise _fail(key, "lists only columns that are never exposed")
        tables[name] = tuple(c for c in CDM.table(name).column_names if c in chosen)
    return tables, tuple(withheld)


def _nodes(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value:
        raise _fail("nodes", "must be a non-empty list of node names")
    for node in value:
        if not isinstance(node, str) or not _NODE.match(node):
            raise _fail("nodes", f"{node!r} is not a node name")
    return tuple(value)


#: Concepts a cohort may list (descendants are added by the proxy, so this is plenty).
MAX_COHORT_CONCEPTS = 10_000


def _cohort(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail("cohort", "must be a mapping such as {any_condition: [320128]}")
    _unknown_keys("cohort", value, _COHORT_KEYS)
    ids = value.get("any_condition")
    if not isinstance(ids, list | tuple) or not ids:
        raise _fail("cohort.any_condition", "must be a non-empty list of concept ids")
    for cid in ids:
        if isinstance(cid, bool) or not isinstance(cid, int) or not 0 < cid < 2**63:
            raise _fail("cohort.any_condition", f"{cid!r} is not a concept id")
    if len(ids) > MAX_COHORT_CONCEPTS:
        raise _fail("cohort.any_condition", f"at most {MAX_COHORT_CONCEPTS:,} concept ids")
    return tuple(sorted(set(ids)))


def _period(value: Any) -> Period | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail("period", "must be a mapping {start: YYYY-MM-DD, end: YYYY-MM-DD}")
    _unknown_keys("period", value, _PERIOD_KEYS)
    start = _date("period.start", value["start"]) if value.get("start") is not None else None
    end = _date("period.end", value["end"]) if value.get("end") is not None else None
    if start is None and end is None:
        raise _fail("period", "needs a start, an end or both")
    if start and end and start > end:
        raise _fail("period", f"start {start} is after end {end}")
    return Period(start, end)


def _sdc(value: Any) -> SDCConfig:
    """The ``sdc:`` settings as an :class:`SDCConfig`; a key it does not know is refused."""
    if value is None:
        return SDCConfig()
    if not isinstance(value, Mapping):
        raise _fail("sdc", "must be a mapping such as {threshold: 10}")
    for old, new in _SDC_RENAMED.items():
        if old in value:
            raise _fail(f"sdc.{old}", f"renamed {new}: write sdc: {{{new}: {value[old]!r}}}")
    if "rounding" in value:
        raise _fail(
            "sdc.rounding",
            "not a project setting: rounding is chosen per output "
            "(protection='base-5' in sde.sdc, --protection in sde sdc check)",
        )
    _unknown_keys("sdc", value, {f.name for f in fields(SDCConfig)})
    threshold = value.get("threshold", 10)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise _fail("sdc.threshold", f"{threshold!r} is not a positive whole number")
    try:
        return SDCConfig.from_mapping(value)
    except ConfigurationError as err:
        key = err.rule if err.rule.startswith("sdc.") and err.rule[4:] in value else "sdc"
        raise _fail(key, err.message) from None


def _sdc_dict(cfg: SDCConfig) -> dict[str, Any]:
    """The canonical form: ``threshold`` and the settings that differ from the defaults."""
    defaults = asdict(SDCConfig())
    out = {k: v for k, v in asdict(cfg).items() if k == "threshold" or v != defaults[k]}
    return out


def _dp(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail("dp", "must be a mapping {epsilon: ..., delta: ...}")
    _unknown_keys("dp", value, _DP_KEYS)
    if "epsilon" not in value:
        raise _fail("dp.epsilon", "missing: the project's privacy budget is its epsilon")
    out: dict[str, float] = {}
    for key in ("epsilon", "delta"):
        if key in value:
            v = value[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise _fail(f"dp.{key}", f"{v!r} is not a finite number")
            if v < 0:
                raise _fail(f"dp.{key}", f"{v!r} is not a non-negative number")
            out[key] = float(v)
    if out["epsilon"] <= 0:
        raise _fail("dp.epsilon", "must be positive")
    if out.get("delta", 0.0) >= 1:
        raise _fail("dp.delta", "must be below 1 (a delta of 1 promises no privacy)")
    return out
