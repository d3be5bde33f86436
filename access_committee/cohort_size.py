"""The cohort's size per node, as the committee's review page shows it: rounded to the
nearest 10 and never below 10 ("fewer than 10").

The count means what the project's extract will hold: the persons of
:meth:`sde.proxy.barrier.plan.ExtractPlan.persons_sql` (the cohort, a condition in the
concept set or any descendant by the node's ``concept_ancestor``, minus the National Data
Opt-out), run on each node's own data. Beside it, how many of them have a cohort
condition recorded in the calendar years the period touches (events outside the period are
not in the extract). Whole years, not the period's own days: two applications whose periods
differ by a day would otherwise show, by difference, a group smaller than 10 (the figures
shown are audited by the page as well). Without a cohort the count is everyone in the
node, opt-outs excluded.

The exact counts never leave this module: :class:`NodeSize` holds rounded figures only.

>>> [shown(n) for n in (0, 9, 10, 14, 15, 1234)]
['fewer than 10', 'fewer than 10', 'about 10', 'about 10', 'about 20', 'about 1,230']
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb

from sde.proxy.barrier.plan import ExtractPlan
from sde.scope import Scope

#: Counts below this are never shown.
SMALLEST = 10


def rounded(n: int) -> int | None:
    """``n`` to the nearest 10 (halves up), or None when ``n`` is below :data:`SMALLEST`.

    >>> rounded(9), rounded(10), rounded(14), rounded(15), rounded(25)
    (None, 10, 10, 20, 30)
    """
    if n < SMALLEST:
        return None
    return (n + 5) // 10 * 10


def shown(n: int) -> str:
    """A count as the page shows it."""
    r = rounded(n)
    return "fewer than 10" if r is None else f"about {r:,}"


@dataclass(frozen=True)
class NodeSize:
    """One node's cohort, rounded (``None``: fewer than 10), or why it is not counted."""

    node: str
    persons: str | None = None
    in_period: str | None = None
    missing: str | None = None


def node_files(data_dir: str | None) -> dict[str, Path]:
    """The DuckDB file of each node under ``data_dir`` (a folder of ``<node>.duckdb``, with
    or without ``manifest.json``, or one node file); none for a database URL."""
    if not data_dir or "://" in data_dir:
        return {}
    path = Path(data_dir)
    if path.is_file():
        return {path.stem: path}
    manifest = path / "manifest.json"
    if manifest.is_file():
        nodes = json.loads(manifest.read_text("utf-8")).get("nodes", [])
        return {str(n["name"]): path / str(n["file"]) for n in nodes}
    return {p.stem: p for p in sorted(path.glob("*.duckdb"))}


def period_years(scope: Scope) -> tuple[int | None, int | None] | None:
    """The calendar years the in-period count covers: those ``scope``'s period touches
    (an open end stays open); None without a period.

    >>> period_years(Scope.from_dict({"project": "p", "access": "rows", "tables": {"person":
    ...     ["person_id"]}, "period": {"start": "2020-06-15", "end": "2021-01-01"}}))
    (2020, 2021)
    """
    if scope.period is None:
        return None
    start, end = scope.period.start, scope.period.end
    return (start.year if start else None, end.year if end else None)


def cohort_sizes(scope: Scope, nodes: Sequence[str], data_dir: str | None) -> list[NodeSize]:
    """The size of ``scope``'s cohort on each of ``nodes``, and with a cohort condition in
    the years of its period (:func:`period_years`)."""
    files = node_files(data_dir)
    years = period_years(scope)
    first, last = years if years else (None, None)
    found = []
    for node in nodes:
        path = files.get(node)
        if path is None or not path.is_file():
            found.append(NodeSize(node, missing="this node's data is not readable here"))
            continue
        try:
            persons, in_period = _count(
                str(path),
                path.stat().st_mtime_ns,
                scope.cohort_concepts or (),
                dt.date(first, 1, 1) if first else None,
                dt.date(last, 12, 31) if last else None,
            )
        except duckdb.Error:
            found.append(NodeSize(node, missing="this node's data could not be counted"))
            continue
        found.append(
            NodeSize(node, shown(persons), None if in_period is None else shown(in_period))
        )
    return found


@lru_cache(maxsize=256)
def _count(
    path: str,
    mtime: int,
    concepts: tuple[int, ...],
    start: dt.date | None,
    end: dt.date | None,
) -> tuple[int, int | None]:
    """(persons in the cohort, of whom with a cohort condition in the period) on one node."""
    del mtime  # part of the cache key only: a rewritten node is counted again
    scope = Scope.from_dict(
        {
            "project": "cohort-preview",
            "access": "aggregates",
            "tables": {"person": ["person_id"]},
            "nodes": ["preview"],
            **({"cohort": {"any_condition": list(concepts)}} if concepts else {}),
        }
    )
    persons_sql = ExtractPlan(scope, ()).persons_sql(lambda table: f"src.main.{table}")
    con = duckdb.connect(":memory:")
    try:
        quoted = path.replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS src (READ_ONLY)")
        con.execute("SET enable_external_access = false")
        con.execute(f"CREATE TEMP TABLE persons AS {persons_sql}")
        row = con.execute("SELECT COUNT(*) FROM persons").fetchone()
        persons = int(row[0]) if row else 0
        if not concepts or (start is None and end is None):
            return persons, None
        ids = ", ".join(str(int(c)) for c in concepts)
        where = [
            f"(c.condition_concept_id IN ({ids}) OR c.condition_concept_id IN (SELECT "
            f"a.descendant_concept_id FROM src.main.concept_ancestor a "
            f"WHERE a.ancestor_concept_id IN ({ids})))"
        ]
        if start is not None:
            where.append(f"c.condition_start_date >= DATE '{start.isoformat()}'")
        if end is not None:
            where.append(f"c.condition_start_date <= DATE '{end.isoformat()}'")
        row = con.execute(
            "SELECT COUNT(DISTINCT c.person_id) FROM src.main.condition_occurrence c "
            f"JOIN persons p ON p.person_id = c.person_id WHERE {' AND '.join(where)}"
        ).fetchone()
        return persons, int(row[0]) if row else 0
    finally:
        con.close()
