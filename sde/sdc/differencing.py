"""The per-project differencing ledger.

Every released table is recorded as a list of *cells*: each cell says which
units it counts (a constraint per dimension: a set of labels, an interval, or
"any non-missing value") and how many there are. A new cell and an earlier one
over the same population whose groups are nested (one inside the other) give
away the count of their difference by subtraction: a table with one category
or one period more, a total and the total minus one subgroup, a grouping and a
finer one. When that difference is between 1 and ``threshold - 1`` units, the
new cell is flagged ``differencing`` and the earlier release is named.

The comparison is vectorised: for each dimension the few distinct constraints
are compared pairwise, and every (new cell, earlier cell) pair is then decided
by indexing those small tables.

>>> new = [Cell({"sex": In({"F"})}, count=95)]
>>> old = [Cell({}, count=100)]
>>> [f.difference for f in find_differences(new, [("cohort total", old)], threshold=10)]
[5]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sde.errors import InvalidInput
from sde.registry.disclosure import SdcRelease


def _norm_text(text: str) -> Any:
    """A string label: a number or a date when it spells one, else trimmed and case-folded."""
    clean = text.strip()
    try:
        return _norm(float(clean))
    except ValueError:
        pass
    try:
        return _norm(datetime.fromisoformat(clean))
    except ValueError:
        return clean.casefold()


def _norm(label: Any) -> Any:
    """A label in a form that compares across releases, whatever type described it.

    Numbers (and strings that spell one) become floats, dates ISO strings (a
    midnight timestamp is its date), other strings are trimmed and case-folded.

    >>> _norm(2015) == _norm("2015") == _norm(" 2015.0 "), _norm(True), _norm(" HTN ")
    (True, 'true', 'htn')
    """
    if isinstance(label, bool | np.bool_):
        return str(bool(label)).casefold()
    if isinstance(label, int | float | np.integer | np.floating):
        value = float(label)
        return "nan" if math.isnan(value) else value
    if isinstance(label, datetime):
        midnight = label.time() == datetime.min.time() and label.tzinfo is None
        return label.date().isoformat() if midnight else label.isoformat()
    if isinstance(label, date):
        return label.isoformat()
    text = label.isoformat() if hasattr(label, "isoformat") else label
    return _norm_text(str(text))


def _norm_population(name: str) -> str:
    """A population's name as compared across releases (spaces collapsed, case-folded).

    >>> _norm_population("  HTN   Cohort ") == _norm_population("htn cohort")
    True
    """
    return " ".join(str(name).split()).casefold()


def _norm_dim(name: Any) -> str:
    """A dimension's name as compared across releases (trimmed, case-folded)."""
    return str(name).strip().casefold()


@dataclass(frozen=True)
class In:
    """The dimension takes one of these labels."""

    labels: frozenset[Any]

    def __init__(self, labels: Iterable[Any]) -> None:
        object.__setattr__(self, "labels", frozenset(_norm(x) for x in labels))


@dataclass(frozen=True)
class Between:
    """The dimension lies in ``[low, high]`` (dates as ISO strings or numbers)."""

    low: Any
    high: Any

    def __init__(self, low: Any, high: Any) -> None:
        object.__setattr__(self, "low", _norm(low))
        object.__setattr__(self, "high", _norm(high))


@dataclass(frozen=True)
class NotNull:
    """Any non-missing value of the dimension (a margin when missing labels are dropped)."""


Constraint = In | Between | NotNull


def _within(x: Any, low: Any, high: Any) -> bool:
    try:
        return bool(low <= x <= high)
    except TypeError:
        return False


def subset(a: Constraint | None, b: Constraint | None) -> bool:  # noqa: PLR0911
    """Whether every unit allowed by ``a`` is allowed by ``b`` (``None``: unconstrained).

    >>> subset(In({1}), Between(0, 5)), subset(Between(0, 5), In({1})), subset(In({"a"}), None)
    (True, False, True)
    """
    if b is None:
        return True
    if a is None:
        return False
    if isinstance(b, NotNull):
        return not (isinstance(a, In) and "nan" in a.labels)
    if isinstance(a, NotNull):
        return False
    if isinstance(a, In) and isinstance(b, In):
        return a.labels <= b.labels
    if isinstance(a, In) and isinstance(b, Between):
        return all(_within(x, b.low, b.high) for x in a.labels)
    if isinstance(a, Between) and isinstance(b, Between):
        return _within(a.low, b.low, b.high) and _within(a.high, b.low, b.high)
    if isinstance(a, Between) and isinstance(b, In):
        return _whole_range_listed(a, b)
    return False


def _whole_range_listed(a: Between, b: In) -> bool:
    """``Between(2015, 2020)`` lies in ``In({2015, ..., 2020})``: whole-number ranges.

    This assumes the dimension takes whole numbers (years, ages in years). When
    it does not, the answer errs towards "nested", which can only add findings.
    """
    if not all(isinstance(x, float) and x.is_integer() for x in (a.low, a.high)):
        return False
    low, high = int(a.low), int(a.high)
    if high - low > 10_000:
        return False
    return all(float(x) in b.labels for x in range(low, high + 1))


@dataclass(frozen=True)
class Cell:
    """A published number's group: constraints per dimension, and its true unit count."""

    constraints: Mapping[str, Constraint]
    count: int
    published: bool = True
    #: Position in the table it came from ((row, column), margins included).
    position: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        names = {_norm_dim(k): v for k, v in self.constraints.items()}
        object.__setattr__(self, "constraints", names)


@dataclass(frozen=True)
class Finding:
    """A new cell that, with an earlier cell, reveals a group of ``difference`` units."""

    position: tuple[int, int] | None
    release: str
    earlier_position: tuple[int, int] | None
    difference: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": list(self.position) if self.position else None,
            "release": self.release,
            "earlier_cell": list(self.earlier_position) if self.earlier_position else None,
            "difference": self.difference,
        }


def _subset_matrix(new: Sequence[Cell], old: Sequence[Cell]) -> tuple[np.ndarray, np.ndarray]:
    """``new[i] ⊆ old[j]`` and ``old[j] ⊆ new[i]`` for every pair, via per-dimension tables."""
    dims = sorted({d for c in (*new, *old) for d in c.constraints})
    fwd = np.ones((len(new), len(old)), dtype=bool)
    back = np.ones((len(new), len(old)), dtype=bool)
    for dim in dims:
        cn = [c.constraints.get(dim) for c in new]
        co = [c.constraints.get(dim) for c in old]
        uniq = list(dict.fromkeys([*cn, *co]))
        pos = {u: i for i, u in enumerate(uniq)}
        table = np.array([[subset(a, b) for b in uniq] for a in uniq], dtype=bool)
        ni = np.array([pos[x] for x in cn], dtype=np.int64)
        oi = np.array([pos[x] for x in co], dtype=np.int64)
        fwd &= table[ni[:, None], oi[None, :]]
        back &= table[oi[None, :], ni[:, None]]
    return fwd, back


def find_differences(
    new: Sequence[Cell], earlier: Sequence[tuple[str, Sequence[Cell]]], threshold: int
) -> list[Finding]:
    """Published new cells nested with (or equal to) a published earlier cell, 1..threshold-1 apart.

    Equal descriptions with different counts count too: the difference is a
    group some undescribed filter (or another unit) left out.
    """
    findings: list[Finding] = []
    new_pub = [c for c in new if c.published]
    if not new_pub:
        return findings
    new_counts = np.array([c.count for c in new_pub], dtype=np.int64)
    for name, cells in earlier:
        old_pub = [c for c in cells if c.published]
        if not old_pub:
            continue
        old_counts = np.array([c.count for c in old_pub], dtype=np.int64)
        fwd, back = _subset_matrix(new_pub, old_pub)
        nested = fwd | back  # nested one way or the other, or described alike
        diff = np.abs(old_counts[None, :] - new_counts[:, None])
        risky = nested & (diff > 0) & (diff < threshold)
        for i, j in np.argwhere(risky):
            findings.append(
                Finding(new_pub[i].position, name, old_pub[j].position, int(diff[i, j]))
            )
    return findings


def find_known(new: Sequence[Cell], earlier: Sequence[tuple[str, Sequence[Cell]]]) -> list[Cell]:
    """New cells an earlier release already published: same description, same count.

    Hiding such a cell now hides nothing, so the suppression audit treats it as
    published (the same table twice with two suppression patterns).
    """
    if not new:
        return []
    counts = np.array([c.count for c in new], dtype=np.int64)
    seen = np.zeros(len(new), dtype=bool)
    for _, cells in earlier:
        old_pub = [c for c in cells if c.published]
        if not old_pub:
            continue
        fwd, back = _subset_matrix(new, old_pub)
        same = np.array([c.count for c in old_pub], dtype=np.int64)[None, :] == counts[:, None]
        seen |= (fwd & back & same).any(axis=1)
    return [c for c, s in zip(new, seen, strict=True) if s]


def _encode(c: Constraint) -> dict[str, Any]:
    if isinstance(c, In):
        return {"in": sorted(c.labels, key=repr)}
    if isinstance(c, Between):
        return {"between": [c.low, c.high]}
    return {"notnull": True}


def _decode(d: Mapping[str, Any]) -> Constraint:
    if "in" in d:
        return In(d["in"])
    if "between" in d:
        return Between(*d["between"])
    return NotNull()


def cells_to_json(cells: Sequence[Cell]) -> str:
    """The JSON the registry stores for a release."""
    return json.dumps(
        [
            {
                "constraints": {k: _encode(v) for k, v in c.constraints.items()},
                "count": int(c.count),
                "published": bool(c.published),
                "position": list(c.position) if c.position else None,
            }
            for c in cells
        ]
    )


def cells_from_json(text: str) -> list[Cell]:
    """Cells back from the registry's JSON."""
    return [
        Cell(
            {k: _decode(v) for k, v in item["constraints"].items()},
            int(item["count"]),
            bool(item["published"]),
            tuple(item["position"]) if item.get("position") else None,
        )
        for item in json.loads(text)
    ]


@dataclass
class DifferencingLedger:
    """The tables a project has released, in the registry.

    ``check`` compares cells with every earlier release over the same
    population and units; ``record`` adds a release (call it when a table
    actually leaves: the airlock's release, an ``aggregates`` answer).
    """

    engine: Engine
    project: str
    _cache: dict[tuple[str, str], list[tuple[str, list[Cell]]]] = field(
        default_factory=dict, repr=False
    )

    def releases(self, population: str, units: str | None = None) -> list[tuple[str, list[Cell]]]:
        """Earlier releases over ``population`` (counted in ``units`` if given), oldest first."""
        wanted = _norm_population(population)
        with Session(self.engine) as session:
            query = select(SdcRelease).where(SdcRelease.project == self.project)
            if units is not None:
                query = query.where(SdcRelease.units == units)
            rows = session.scalars(query.order_by(SdcRelease.id)).all()
            return [
                (row.name, cells_from_json(row.cells))
                for row in rows
                if _norm_population(row.population) == wanted
            ]

    def check(
        self, cells: Sequence[Cell], population: str, units: str, threshold: int
    ) -> list[Finding]:
        """Findings for ``cells`` against every earlier release over the population.

        Releases in other units are compared too: with one record per person a
        records table and a persons table count the same people, and when
        counts of the same cells differ, the difference is a small group of
        repeated records. ``units`` is kept for the caller's report.
        """
        del units
        from sde.sdc.combinations import find_combinations

        earlier = self.releases(population)
        pairs = find_differences(cells, earlier, threshold)
        flagged = {f.position for f in pairs}
        more = find_combinations(cells, earlier, threshold)
        return pairs + [f for f in more if f.position not in flagged]

    def known(self, cells: Sequence[Cell], population: str) -> list[Cell]:
        """``cells`` that an earlier release already published (see :func:`find_known`)."""
        return find_known(cells, self.releases(population))

    def record(self, name: str, cells: Sequence[Cell], population: str, units: str) -> int:
        """Add a release; returns its id."""
        if not name:
            raise InvalidInput("sdc.release-name", "a release needs a name")
        with Session(self.engine) as session, session.begin():
            row = SdcRelease(
                project=self.project,
                name=name,
                population=population,
                units=units,
                cells=cells_to_json(cells),
            )
            session.add(row)
            session.flush()
            return int(row.id)

    def record_table(self, name: str, table: Any) -> int:
        """Add a :class:`~sde.sdc.checked.CheckedTable` as released (its published cells)."""
        spec = table.release_cells()
        return self.record(name, spec.cells, spec.population, spec.units)


def open_ledger(url: str, project: str) -> DifferencingLedger:
    """The ledger of ``project`` in the registry at ``url`` (tables created if missing)."""
    from sde.registry.db import open_registry

    return DifferencingLedger(open_registry(url), project)
