"""Differencing through linear combinations of released cells, across any number of releases.

:func:`~sde.sdc.differencing.find_differences` compares a new cell with one earlier cell at
a time. Three releases can do what no pair does: a ward's total (100), its women (55) and,
now, its men (40) give away the 5 people of another sex although no two of those cells are
nested with a small difference. This module finds such groups.

Every published cell counts the units of a region: a box with one constraint per dimension.
Cutting each dimension at every label and interval end the cells use gives *atoms*; each
cell is then a sum of atoms, and the cells' counts are linear equations in the atoms'
unknown counts. Atoms that every cell treats alike are merged into *classes*. A class is
**determined** when its indicator vector lies in the row space of the cells' incidence
matrix: then some signed sum of released counts equals exactly its count, whatever the
undetermined classes hold. A class that the new table makes determined (it was not from the
earlier releases alone) and that holds 1 to ``threshold - 1`` units is a finding, on every
new cell the combination uses.

This catches every single class the releases pin down, whichever and however many cells it
takes. It does not search unions of undetermined classes (the pairwise check covers the
nested pairs among them); and when the atoms would be too many to enumerate
(:data:`MAX_ATOMS`) it says so in the log and leaves the pairwise check alone in charge.

>>> from sde.sdc.differencing import Cell, In
>>> total = [Cell({"ward": In({"A"})}, 100, position=(0, 0))]
>>> women = [Cell({"ward": In({"A"}), "sex": In({"F"})}, 55, position=(0, 0))]
>>> men = [Cell({"ward": In({"A"}), "sex": In({"M"})}, 40, position=(0, 0))]
>>> [f.difference for f in find_combinations(men, [("total", total), ("women", women)], 10)]
[5]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from sde.sdc.differencing import Between, Cell, Constraint, Finding, In, NotNull, _within

log = logging.getLogger(__name__)

#: Atoms (the product of every dimension's regions) enumerated at most.
MAX_ATOMS = 200_000
#: The factorisation's cost (min(cells, classes)^2 x max(...)) at most: about two seconds.
MAX_WORK = 2e9
#: Numerical tolerance of the rank and projection tests.
_TOL = 1e-8


class _Mark:
    """A part of a dimension no label names: missing values, or values nobody listed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_MISSING = _Mark("missing")
_OTHER = _Mark("other")


@dataclass(frozen=True)
class _Point:
    """One label."""

    value: Any


@dataclass(frozen=True)
class _Gap:
    """The values strictly between two consecutive points (``None``: unbounded)."""

    low: Any
    high: Any


def _points(constraints: Sequence[Constraint | None]) -> list[Any]:
    found: set[Any] = set()
    for c in constraints:
        if isinstance(c, In):
            found |= {x for x in c.labels if x != "nan"}
        elif isinstance(c, Between):
            found |= {c.low, c.high}
    return list(found)


def _elements(points: list[Any]) -> list[Any]:
    """A dimension's elementary parts: missing, other, each point, and the gaps between
    consecutive points of one type (numbers, texts)."""
    out: list[Any] = [_MISSING, _OTHER, *(_Point(p) for p in points)]
    for kind in (float, str):
        ordered = sorted(p for p in points if isinstance(p, kind))
        if not ordered:
            continue
        out.append(_Gap(None, ordered[0]))
        out.extend(_Gap(a, b) for a, b in pairwise(ordered))
        out.append(_Gap(ordered[-1], None))
    return out


def _covers(c: Constraint | None, element: Any) -> bool:  # noqa: PLR0911
    if c is None:
        return True
    if element is _MISSING:
        return isinstance(c, In) and "nan" in c.labels
    if isinstance(c, NotNull):
        return True
    if element is _OTHER:
        return False
    if isinstance(element, _Gap):
        if not isinstance(c, Between) or element.low is None or element.high is None:
            return False
        return _within(element.low, c.low, c.high) and _within(element.high, c.low, c.high)
    if isinstance(c, In):
        return bool(element.value in c.labels)
    return _within(element.value, c.low, c.high)


def _regions(constraints: list[Constraint | None]) -> np.ndarray:
    """(distinct constraint x region) coverage: elements any constraint tells apart."""
    elements = _elements(_points(constraints))
    cover = np.array([[_covers(c, e) for e in elements] for c in constraints], dtype=bool)
    return np.unique(cover, axis=1)


def _incidence(cells: Sequence[Cell]) -> np.ndarray | None:
    """(cell x class) incidence, or None when the atoms are too many."""
    dims = sorted({d for c in cells for d in c.constraints})
    per_dim: list[tuple[np.ndarray, np.ndarray]] = []
    atoms = 1
    for dim in dims:
        used = [c.constraints.get(dim) for c in cells]
        distinct = list(dict.fromkeys(used))
        cover = _regions(distinct)
        index = {c: i for i, c in enumerate(distinct)}
        per_dim.append((cover, np.array([index[c] for c in used], dtype=np.int64)))
        atoms *= cover.shape[1]
        if atoms > MAX_ATOMS:
            log.warning("differencing: %d+ atoms, combinations not checked", atoms)
            return None
    inc = np.ones((len(cells), 1), dtype=bool)
    for cover, which in per_dim:
        inc = (inc[:, :, None] & cover[which][:, None, :]).reshape(len(cells), -1)
    classes = np.unique(inc, axis=1)
    return classes[:, classes.any(axis=0)]


@dataclass(frozen=True)
class _Solved:
    """What one SVD of the incidence matrix gives: which classes the cells determine, and
    the counts of those classes (exact for determined classes, whatever the others hold)."""

    determined: np.ndarray
    values: np.ndarray


def _solve(a: np.ndarray, counts: np.ndarray | None = None) -> _Solved:
    if a.shape[0] == 0:
        return _Solved(np.zeros(a.shape[1], dtype=bool), np.zeros(a.shape[1]))
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    rank = int((s > _TOL * max(a.shape) * (s[0] if s.size else 1.0)).sum())
    basis = vt[:rank]
    determined = np.abs((basis**2).sum(axis=0) - 1.0) < 1e-6
    values = np.zeros(a.shape[1])
    if counts is not None:  # the least-norm solution, through the same factorisation
        values = basis.T @ ((u[:, :rank].T @ counts) / s[:rank])
    return _Solved(np.asarray(determined), values)


def find_combinations(
    new: Sequence[Cell], earlier: Sequence[tuple[str, Sequence[Cell]]], threshold: int
) -> list[Finding]:
    """New published cells that, with earlier releases, pin down a group of 1..threshold-1."""
    new_pub = [c for c in new if c.published]
    old = [(name, c) for name, cells in earlier for c in cells if c.published]
    if not new_pub or not old:
        return []
    cells = [*new_pub, *(c for _, c in old)]
    inc = _incidence(cells)
    if inc is None:
        return []
    rows, classes = inc.shape
    if float(min(rows, classes)) ** 2 * max(rows, classes) > MAX_WORK:
        log.warning("differencing: %d cells x %d classes, combinations not checked", rows, classes)
        return []
    a = inc.astype(float)
    solved = _solve(a, np.array([c.count for c in cells], dtype=float))
    values = solved.values
    small = solved.determined & (values >= 0.5) & (values < threshold - 0.5)
    if small.any():  # only then: which of them the earlier releases pinned down already
        small &= ~_solve(a[len(new_pub) :]).determined
    return [
        finding
        for k in np.flatnonzero(small)
        for finding in _attribute(a, int(k), round(float(values[k])), new_pub, [n for n, _ in old])
    ]


def _attribute(
    a: np.ndarray, k: int, count: int, new: Sequence[Cell], old_names: Sequence[str]
) -> list[Finding]:
    """One finding per new cell the combination giving class ``k`` uses."""
    target = np.zeros(a.shape[1])
    target[k] = 1.0
    weights = np.linalg.lstsq(a.T, target, rcond=None)[0]
    used = np.abs(weights) > 1e-9
    releases = list(dict.fromkeys(n for n, u in zip(old_names, used[len(new) :], strict=True) if u))
    named = " + ".join(releases) if releases else "this table"
    return [
        Finding(cell.position, named, None, count)
        for cell, u in zip(new, used[: len(new)], strict=True)
        if u
    ]


__all__ = ["MAX_ATOMS", "find_combinations"]
