"""Which rows belong to which person: the facts aggregates mode and DP both build on.

Aggregates mode (:mod:`sde.proxy.rules.aggregates`) must know that every person whose
data shapes a group is counted; DP (:mod:`sde.dp.locality`) that every row belongs to one
person. Both rest on: which tables hold person data and which column names the person
(:func:`table_class`), and which person relations of one query level hold the same person
on every row (:class:`PersonLinks`). What each mode refuses, and why, stays in its module.

>>> table_class("measurement"), table_class("cohort"), table_class("concept")
(('person', 'person_id'), ('person', 'subject_id'), ('public', None))
>>> from sqlglot import parse_one
>>> q = parse_one("SELECT 1 FROM person p JOIN death d ON d.person_id = p.person_id, concept c")
>>> links = PersonLinks(q, ["p", "d"], lambda c: c.table if c.name == PID else None)
>>> links.connected("p", "d"), links.components(["p", "d"])
(True, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlglot import exp

from sde.omop.cdm import CDM
from sde.proxy.resolve import conjuncts

PID = "person_id"

#: The node standing for "a person of an enclosing query" in :class:`PersonLinks`.
OUTER = "\0outer"

#: Tables whose rows are about a person under another column name.
PERSON_COLUMNS = {"cohort": "subject_id"}
#: Tables that are not about persons: reference data, the organisation, definitions.
PUBLIC_TABLES = CDM.VOCABULARY_TABLES | {
    "care_site",
    "provider",
    "cohort_definition",
    "cdm_source",
    "metadata",
}
#: Tables of person data with no column naming the person: traced only through other
#: records (a note, any event, any fact), or places where persons live.
UNTRACED_TABLES = frozenset(
    {"note_nlp", "cost", "fact_relationship", "episode_event", "location", "location_history"}
)


def table_class(name: str) -> tuple[str, str | None]:
    """``("person", person column)``, ``("public", None)`` or ``("untraced", None)``.

    Every CDM table is one of the three: a table with ``person_id`` (or ``cohort``, whose
    ``subject_id`` is a person) is person data; the listed reference tables are public;
    anything else, listed or not, is person data that cannot be traced to one person.
    """
    if name in PERSON_COLUMNS:
        return "person", PERSON_COLUMNS[name]
    if CDM.has_table(name) and CDM.is_person_table(name):
        return "person", PID
    if name in PUBLIC_TABLES:
        return "public", None
    return "untraced", None


def person_column(name: str) -> str | None:
    """The column of table ``name`` naming the person its rows belong to, if any."""
    return table_class(name)[1]


#: Maps a column to the node whose person it names, or ``None`` for any other column.
NodeOf = Callable[[exp.Column], str | None]


class PersonLinks:
    """Union-find over the person relations of one query level (and :data:`OUTER`).

    Two relations are linked when their person columns are equal on every row the level
    keeps: a conjunct of ``WHERE`` or of an inner join's ``ON`` equates them. The ``ON`` of
    an outer join removes no row of the kept side, only NULL-extends the padded side:
    there an equality ties a padded relation to one person of the kept side, never two
    relations of one side to each other (``p CROSS JOIN m LEFT JOIN o ON m.person_id =
    p.person_id`` pairs every person with everyone's rows). The padded side is the joined
    relation of a LEFT JOIN, the relations before the join of a RIGHT JOIN, and both sides
    of a FULL JOIN, whose ``ON`` so links nothing: ``concept c RIGHT JOIN measurement m ON
    m.person_id = p.person_id`` keeps everybody's measurements. ``node_of`` says which
    relation (or :data:`OUTER`) a column is the person column of. Linked relations hold the
    same person on every row.
    """

    def __init__(self, select: exp.Expr, nodes: Iterable[str], node_of: NodeOf) -> None:
        self._parent: dict[str, str] = {n: n for n in nodes}
        self._parent[OUTER] = OUTER
        outer: dict[str, list[str]] = {}
        for left, right, padded in person_equalities(select, node_of):
            if padded is None:
                self.union(left, right)
            elif (left in padded) != (right in padded):
                joined, other = (left, right) if left in padded else (right, left)
                outer.setdefault(joined, []).append(other)
        for joined, others in outer.items():
            if not any(self.connected(joined, o) for o in others):
                self.union(joined, next((o for o in others if o in self._parent), None))

    def find(self, node: str) -> str:
        while self._parent[node] != node:
            self._parent[node] = self._parent[self._parent[node]]
            node = self._parent[node]
        return node

    def union(self, a: str | None, b: str | None) -> None:
        if a is None or b is None or a not in self._parent or b not in self._parent:
            return
        self._parent[self.find(a)] = self.find(b)

    def connected(self, a: str, b: str) -> bool:
        return a in self._parent and b in self._parent and self.find(a) == self.find(b)

    def components(self, nodes: Iterable[str]) -> int:
        """How many separate persons ``nodes`` hold on one row."""
        return len({self.find(n) for n in nodes})


def person_equalities(
    select: exp.Expr, node_of: NodeOf
) -> list[tuple[str, str, frozenset[str] | None]]:
    """``(a, b, padded)`` for each top-level ``x = y`` in WHERE or a join's ON where ``x``
    and ``y`` are person columns of nodes ``a`` and ``b``; ``padded`` names the relations
    an outer join NULL-extends when the equality is in its ON, else ``None``. The ON of a
    FULL join (which pads both sides) gives none."""
    if not isinstance(select, exp.Select):
        return []
    where = select.args.get("where")
    conditions: list[tuple[exp.Expr, frozenset[str] | None]] = [
        (c, None) for c in conjuncts(where.this if where is not None else None)
    ]
    from_ = select.args.get("from_")
    before = [from_.this.alias_or_name] if from_ is not None else []
    for join in select.args.get("joins") or []:
        padded = _padded(join, before)
        before.append(join.this.alias_or_name)
        if padded is not None and not padded:
            continue  # FULL: both sides padded, the ON ties no relation to a kept one
        conditions += [(c, padded) for c in conjuncts(join.args.get("on"))]
    out: list[tuple[str, str, frozenset[str] | None]] = []
    for cond, padded in conditions:
        if not isinstance(cond, exp.EQ):
            continue
        left, right = cond.left, cond.right
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            a, b = node_of(left), node_of(right)
            if a is not None and b is not None:
                out.append((a, b, padded))
    return out


def _padded(join: exp.Join, before: list[str]) -> frozenset[str] | None:
    """The relations ``join`` NULL-extends: ``None`` for a join that keeps only matching
    rows (inner, CROSS, SEMI, ANTI), the joined relation for LEFT, the relations ``before``
    it for RIGHT, and the empty set for FULL (and a bare ``OUTER JOIN``), whose ON can tie
    no relation to a kept one."""
    side, kind = (join.side or "").upper(), (join.kind or "").upper()
    if kind in {"SEMI", "ANTI"}:
        return None
    if side == "LEFT":
        return frozenset({join.this.alias_or_name})
    if side == "RIGHT":
        return frozenset(before)
    if side == "FULL" or kind == "OUTER":
        return frozenset()
    return None
