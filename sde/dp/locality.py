"""Person-locality: every row the aggregate sees must belong to exactly one person.

Differential privacy here protects a *person* (all of their rows). Truncating each person's
contribution after the joins bounds what one person can change only if (a) every row of
the joined relation belongs to one person, and (b) whether a row of person p is present,
and what it holds, depends on p's own data and public data only. Otherwise adding one
person could move other persons' rows (a filter on ``AVG(x)`` over everyone, a ``LIMIT``,
a join of two persons' rows) and no truncation would bound the change.

This module checks (a) and (b) structurally and refuses what it cannot prove:

* person tables (OMOP tables with ``person_id``) are joined with each other only on
  ``person_id`` equality (INNER or LEFT joins; RIGHT/FULL refused);
* public tables (vocabulary, care sites...) join freely: they only multiply a person's rows,
  which the truncation bounds;
* a CTE or derived table over person data keeps ``person_id`` in its output, aggregates or
  windows only per person (``GROUP BY``/``PARTITION BY`` include it), and has no
  ``LIMIT``/``OFFSET``;
* a subquery in a predicate is public (vocabulary only), or a person set tested by the
  row's own person (``person_id IN (SELECT person_id ...)``), or an ``EXISTS`` correlated on
  ``person_id``.

Which tables are person data (:func:`~sde.proxy.persons.table_class`) and which relations
are joined on their person columns (:class:`~sde.proxy.persons.PersonLinks`) are the facts
of :mod:`sde.proxy.persons`, shared with the proxy's aggregates mode; the refusals are DP's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from sqlglot import exp

from sde.errors import DPRefusal
from sde.omop.cdm import CDM
from sde.proxy.persons import OUTER, PersonLinks, table_class


@dataclass
class Relation:
    """What a FROM item contributes: whether it is person data, and its person column."""

    alias: str
    person: bool
    pid_col: str | None = None
    columns: tuple[str, ...] | None = None
    #: Base tables it reads (for default contribution bounds and metadata look-ups).
    tables: set[str] = field(default_factory=set)
    #: The single base table it passes through, when there is one (for metadata).
    origin: str | None = None
    #: On the NULL-extended side of a LEFT JOIN: its person column may be NULL.
    nullable: bool = False


def refuse(rule: str, message: str) -> DPRefusal:
    return DPRefusal(f"dp.{rule}", message)


def _output_name(e: exp.Expression) -> str:
    return e.alias_or_name


class QueryLevel:
    """The relations of one SELECT (one level of a query), by alias, with column resolution."""

    def __init__(self, relations: list[Relation]) -> None:
        self.relations = relations
        self.by_alias = {r.alias: r for r in relations}

    @property
    def persons(self) -> list[Relation]:
        return [r for r in self.relations if r.person]

    @property
    def root(self) -> Relation | None:
        """The first person relation whose person column is never NULL (in FROM or
        INNER-joined): the person every row belongs to. Person tables LEFT-joined to it
        hold rows of that person."""
        return next((r for r in self.relations if r.person and not r.nullable), None)

    def resolve(self, col: exp.Column) -> Relation | None:
        """The relation a column belongs to, or None (an outer reference or unknown)."""
        if col.table:
            return self.by_alias.get(col.table)
        owners = [r for r in self.relations if r.columns is not None and col.name in r.columns]
        if len(owners) == 1:
            return owners[0]
        if len(self.relations) == 1:
            return self.relations[0]
        return None

    def person_of(self, col: exp.Column) -> str | None:
        """The alias of the person relation whose person column ``col`` is, if any."""
        rel = self.resolve(col)
        return rel.alias if rel is not None and rel.person and col.name == rel.pid_col else None

    def is_pid(self, e: exp.Expression) -> bool:
        """True when ``e`` is the person column of a person relation of this level."""
        return isinstance(e, exp.Column) and self.person_of(e) is not None

    def is_key(self, e: exp.Expression) -> bool:
        """True when ``e`` is a person column that is never NULL: the person a row belongs
        to. A LEFT-joined relation's is NULL on unmatched rows, which would pool rows of
        many persons under one NULL "person" (outputs, GROUP BY, PARTITION BY)."""
        rel = self.resolve(e) if isinstance(e, exp.Column) else None
        return self.is_pid(e) and rel is not None and not rel.nullable


class Locality:
    """Checks queries for person-locality and describes their relations."""

    def __init__(self) -> None:
        self.ctes: dict[str, Relation] = {}

    # -- FROM items --------------------------------------------------------------------

    def relation(self, node: exp.Expression) -> Relation:
        alias = node.alias_or_name
        if isinstance(node, exp.Table):
            name = node.name
            if node.args.get("db") or node.args.get("catalog"):
                raise refuse("unknown-table", f"table {node.sql()} is not an OMOP table")
            if name in self.ctes:
                cte = self.ctes[name]
                return Relation(
                    alias, cte.person, cte.pid_col, cte.columns, set(cte.tables), cte.origin
                )
            if not CDM.has_table(name):
                raise refuse("unknown-table", f"{name} is not an OMOP CDM table")
            kind, pid = table_class(name)
            if kind == "untraced":
                raise refuse(
                    "untraced-table",
                    f"{name} holds data about persons but no column naming the person, so "
                    "one person's rows cannot be traced and bounded; it is not available in "
                    "DP queries",
                )
            person = kind == "person"
            return Relation(
                alias, person, pid, CDM.table(name).column_names, {name} if person else set(), name
            )
        if isinstance(node, exp.Subquery):
            inner = self.query(node.this)
            return Relation(
                alias, inner.person, inner.pid_col, inner.columns, inner.tables, inner.origin
            )
        raise refuse("unsupported-from", f"{node.sql()} cannot be used in FROM here")

    def level_of(self, select: exp.Select) -> QueryLevel:
        from_ = select.args.get("from_")
        if from_ is None:
            raise refuse("no-person", "a DP query must read from a table")
        rels = [self.relation(from_.this)]
        for join in select.args.get("joins") or []:
            rel = self.relation(join.this)
            rel.nullable = (join.side or "").upper() in {"LEFT", "RIGHT", "FULL"}
            rels.append(rel)
        return QueryLevel(rels)

    # -- queries -----------------------------------------------------------------------

    def with_ctes(self, query: exp.Expression) -> None:
        with_ = query.args.get("with_")
        if with_ is None:
            return
        if with_.args.get("recursive"):
            raise refuse("recursive", "recursive CTEs are not available in DP queries")
        for cte in with_.expressions:
            self.ctes[cte.alias_or_name] = self.query(cte.this)

    def query(self, q: exp.Expression, *, need_pid: bool = True) -> Relation:
        """Describe a CTE body, derived table or predicate subquery, refusing non-local ones.

        ``need_pid=False`` for ``EXISTS`` bodies, whose output is not used.
        """
        self.with_ctes(q)
        if isinstance(q, exp.Union):
            left, right = (
                self.query(cast(exp.Expression, q.left)),
                self.query(cast(exp.Expression, q.right)),
            )
            if left.person != right.person or (left.person and _position(left) != _position(right)):
                raise refuse(
                    "subquery-not-person-local",
                    "both sides of a UNION over person data must keep person_id in the same column",
                )
            return Relation("", left.person, left.pid_col, left.columns, left.tables | right.tables)
        if not isinstance(q, exp.Select):
            raise refuse("unsupported-from", f"{type(q).__name__} is not available in DP queries")
        return self._select(q, need_pid)

    def _select(self, select: exp.Select, need_pid: bool = True) -> Relation:
        level = self.level_of(select)
        self.check_joins(select, level)
        self.check_predicates(select, level)
        tables = set().union(*(r.tables for r in level.relations))
        names = self._outputs(select, level)
        if not level.persons:
            return Relation("", False, None, names, tables)
        for key in ("limit", "offset"):
            if select.args.get(key) is not None:
                raise refuse(
                    "subquery-not-person-local",
                    "LIMIT/OFFSET inside a DP query would let one person change which rows "
                    "other persons keep",
                )
        if isinstance(select.args.get("distinct"), exp.Distinct) and select.args[
            "distinct"
        ].args.get("on"):
            raise refuse("subquery-not-person-local", "DISTINCT ON is not available here")
        self._check_per_person(select, level)
        pid_col = self._pid_output(select, level, need_pid)
        if pid_col is None and need_pid:
            raise refuse(
                "no-person-column",
                "a subquery or CTE over person data must keep person_id in its output, so "
                "that each row still belongs to one person",
            )
        origin = level.persons[0].origin if len(level.relations) == 1 else None
        return Relation("", True, pid_col, names, tables, origin)

    def _outputs(self, select: exp.Select, level: QueryLevel) -> tuple[str, ...] | None:
        names: list[str] = []
        for e in select.expressions:
            if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and e.is_star):
                rels = level.relations
                if isinstance(e, exp.Column) and e.table:
                    rels = [level.by_alias[e.table]] if e.table in level.by_alias else []
                for r in rels:
                    if r.columns is None:
                        return None
                    names.extend(r.columns)
            else:
                names.append(_output_name(e))
        return tuple(names)

    def _pid_output(
        self, select: exp.Select, level: QueryLevel, need_pid: bool = True
    ) -> str | None:
        """The output column naming each row's person: a person column never NULL.

        A LEFT-joined relation's person column is NULL on unmatched rows and is never the
        person; if it is output under the same name as the person, the name is ambiguous
        and the query is refused.
        """
        found: list[tuple[str | None, bool]] = []
        for e in select.expressions:
            if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and e.is_star):
                rels = level.persons
                if isinstance(e, exp.Column) and e.table:
                    rels = [r for r in rels if r.alias == e.table]
                found += [(r.pid_col, r.nullable) for r in rels]
            elif level.is_pid(e.unalias()):
                found.append((_output_name(e), not level.is_key(e.unalias())))
        pid = next((name for name, nullable in found if not nullable), None)
        if pid is not None and any(name == pid and nullable for name, nullable in found):
            raise _outer_join_person()
        if pid is None and need_pid and found:
            raise _outer_join_person()
        return pid

    def _check_per_person(self, select: exp.Select, level: QueryLevel) -> None:
        group = select.args.get("group")
        has_agg = any(
            not agg.find_ancestor(exp.Window)
            for e in select.expressions
            for agg in e.find_all(exp.AggFunc)
        )
        if group is not None or has_agg:
            keys = group.expressions if group is not None else []
            if not any(level.is_key(k) for k in keys):
                raise refuse(
                    "cross-person-aggregate",
                    "a subquery over person data may aggregate only per person "
                    "(GROUP BY person_id); aggregate across persons in the outer query",
                )
        for win in select.find_all(exp.Window):
            if not any(level.is_key(p) for p in win.args.get("partition_by") or []):
                raise refuse(
                    "cross-person-window",
                    "window functions over person data must be PARTITION BY person_id",
                )

    # -- joins and predicates ------------------------------------------------------------

    def check_joins(self, select: exp.Select, level: QueryLevel) -> None:
        persons = level.persons
        links = PersonLinks(select, [r.alias for r in persons], level.person_of)
        joins = select.args.get("joins") or []
        for join, rel in zip(joins, level.relations[1:], strict=True):
            side = (join.side or "").upper()
            if side in {"RIGHT", "FULL"} or (join.kind or "").upper() in {"SEMI", "ANTI"}:
                raise refuse(
                    "join-type",
                    f"{side or join.kind} JOIN is not available in DP queries; use INNER or LEFT",
                )
            names = {i.name for i in join.args.get("using") or []}
            if rel.person and rel.pid_col in names:
                other = next((o for o in persons if o is not rel and o.pid_col in names), None)
                links.union(rel.alias, other.alias if other is not None else None)
        if persons and level.root is None:
            # In ``concept c LEFT JOIN person p`` each unmatched row has a NULL person, and
            # whether a concept row is unmatched depends on every person's data: such rows
            # are nobody's, so truncating per person would not bound what one person changes.
            raise refuse(
                "outer-join-person",
                "a LEFT JOIN to person data from a table that is not person data gives rows "
                "with no person (NULL person_id), which truncation cannot bound; start FROM "
                "the person table or use an INNER JOIN",
            )
        if links.components(r.alias for r in persons) > 1:
            raise refuse(
                "join-not-on-person",
                "tables of person data must be joined on person_id (a.person_id = b.person_id) "
                "so that every row belongs to one person",
            )

    def check_predicates(self, select: exp.Select, level: QueryLevel) -> None:
        """Subqueries anywhere in the SELECT (not FROM items) must be public or person-tied."""
        for sub in _subqueries(select):
            self._check_subquery(sub, level)

    def _check_subquery(self, node: exp.Expression, level: QueryLevel) -> None:
        query = node.this if isinstance(node, exp.Subquery | exp.Exists) else node
        inner_locality = Locality()
        inner_locality.ctes = dict(self.ctes)
        try:
            described = inner_locality.query(query, need_pid=not isinstance(node, exp.Exists))
        except DPRefusal as err:
            if err.rule != "dp.no-person-column":
                raise
            raise refuse("subquery-not-person-local", _SUBQUERY_RULE) from None
        if _scalar(node) and not _one_row(query):
            raise refuse(
                "scalar-subquery",
                "a subquery used as a value must return at most one row on any data "
                "(an aggregate without GROUP BY, or LIMIT 1): with more rows the engine "
                "fails, and a failure that depends on data would reveal it",
            )
        if not described.person:
            return
        parent = node.parent
        if isinstance(node, exp.Exists):
            if isinstance(query, exp.Select) and _correlated_on_person(
                query, inner_locality.level_of(query), level
            ):
                return
        elif (
            isinstance(parent, exp.In)
            and parent.args.get("query") is node
            and level.is_pid(parent.this)
            and isinstance(query, exp.Select | exp.Union)
            and len(query.selects) == 1
            and _output_name(cast(exp.Expression, query.selects[0])) == described.pid_col
        ):
            return
        raise refuse("subquery-not-person-local", _SUBQUERY_RULE)


def _outer_join_person() -> DPRefusal:
    return refuse(
        "outer-join-person",
        "the person_id of a LEFT-joined table is NULL on unmatched rows, which would pool "
        "the rows of many persons under one NULL person; keep (or group or partition by) "
        "the person_id of the table in FROM or an INNER-joined one",
    )


_SUBQUERY_RULE = (
    "a subquery over person data may only test the row's own person: person_id IN (SELECT "
    "person_id FROM ...) or EXISTS (... WHERE x.person_id = outer.person_id); other "
    "subqueries let one person change other persons' rows"
)


def _scalar(node: exp.Expression) -> bool:
    """A subquery used as a value (not the list of ``IN (SELECT ...)``, not ``EXISTS``)."""
    if isinstance(node, exp.Exists):
        return False
    parent = node.parent
    return not (isinstance(parent, exp.In) and parent.args.get("query") is node)


def _one_row(query: exp.Expression) -> bool:
    """Whether ``query`` returns at most one row on any data, from its text alone."""
    if not isinstance(query, exp.Select):
        return False  # UNION and others: one row per branch at least
    limit = query.args.get("limit")
    if limit is not None:
        value = limit.expression
        if isinstance(value, exp.Literal) and not value.is_string and value.this in {"0", "1"}:
            return True
    if query.args.get("group") is not None:
        return False
    return any(
        agg.find_ancestor(exp.Window) is None
        for e in query.expressions
        for agg in e.find_all(exp.AggFunc)
    )


def _position(rel: Relation) -> int | None:
    if rel.columns is None or rel.pid_col is None:
        return None
    return rel.columns.index(rel.pid_col) if rel.pid_col in rel.columns else None


def _subqueries(select: exp.Select) -> list[exp.Expression]:
    """Maximal subqueries of ``select`` outside its FROM items and CTEs."""
    found: list[exp.Expression] = []
    skip = {id(select.args.get("from_"))} | {id(j) for j in select.args.get("joins") or []}
    skip.add(id(select.args.get("with_")))

    def walk(node: exp.Expression) -> None:
        for child in node.iter_expressions():
            if id(child) in skip:
                continue
            if isinstance(child, (exp.Subquery | exp.Exists, exp.Select | exp.Union)):
                found.append(child)
                continue
            walk(child)

    walk(select)
    for join in select.args.get("joins") or []:
        if join.args.get("on") is not None:
            walk(join.args["on"])
    return found


def _correlated_on_person(query: exp.Select, inner: QueryLevel, outer: QueryLevel) -> bool:
    """Every person relation of ``query`` holds the enclosing row's person.

    An unqualified column is the enclosing query's only when no relation of ``query`` can
    have it: SQL resolves it in the innermost query first (``WHERE person_id = person_id``
    inside the subquery compares the subquery's own column with itself).
    """

    def node_of(col: exp.Column) -> str | None:
        if col.table:
            inside = col.table in inner.by_alias
        else:
            inside = any(r.columns is None or col.name in r.columns for r in inner.relations)
        if inside:
            return inner.person_of(col)
        return OUTER if outer.is_pid(col) else None

    links = PersonLinks(query, [r.alias for r in inner.persons], node_of)
    return all(links.connected(r.alias, OUTER) for r in inner.persons)
