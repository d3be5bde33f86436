"""Node-locality: does running a query's inner parts at each node give the pooled rows?

A person's data lives on one node. Below the outermost SELECT, a part of a query is
*node-local* when, computed on each node's data separately, the union of what the nodes
get equals what the pooled data gives: it handles one person at a time. That holds for
a derived table, CTE or ``IN`` subquery that groups, windows and de-duplicates only per
person (a bare ``person_id`` key) and keeps no top rows (``LIMIT``/``OFFSET``), for a
subquery correlated with a counted person (``t.person_id = p.person_id``), and for
anything reading reference data only (the same at every node). Person-level sources of
one query level must be joined on ``person_id`` (else a row pairs persons who may live
on different nodes). The outermost SELECT itself must read person-level data: reference
data alone would be answered once by every node.

The facts (which tables are person data, which relations are joined on their person
columns) are :mod:`sde.proxy.persons`'s, as for the aggregates mode and DP; unlike the
aggregates mode, a person column may be renamed on its way out of a CTE (the DP engine's
exact SQL passes ``person_id AS _dp_pid``).

>>> import sqlglot
>>> check(sqlglot.parse_one("SELECT COUNT(*) FROM person p WHERE p.year_of_birth > "
...                         "(SELECT AVG(q.year_of_birth) FROM person q)"))
Traceback (most recent call last):
...
sde.federation.locality.NotLocal: the subquery in WHERE reads person-level data across persons
(AVG over everybody), which differs per node
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType, build_scope

from sde.proxy.allowlists import function_name
from sde.proxy.persons import OUTER, PID, PersonLinks, person_equalities, table_class
from sde.pseudonym import NAMESPACES, SHARED_NAMESPACES

#: Untraced tables every node holds whole (the same rows): read like reference data.
REPLICATED = frozenset({"location"})


class NotLocal(Exception):
    """A part of the query is not node-local; the message says which and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check(tree: exp.Expression) -> None:
    """Raise :class:`NotLocal` unless every part below the outermost SELECT is node-local
    and the outermost SELECT's person-level sources are joined on ``person_id``."""
    root = build_scope(tree)
    if root is None or not isinstance(root.expression, exp.Select):
        raise NotLocal("a set operation (UNION, INTERSECT, EXCEPT) at the outermost level")
    facts = _Facts()
    for scope in root.traverse():  # inner parts first: their reasons are the more specific
        _check_traced(scope)
        if scope is not root:
            facts.nested(scope)
    facts.top(root)


def person_column(scope: Scope, column: exp.Column) -> bool:
    """True when ``column`` names the person of a source of ``scope``."""
    return _Facts().is_person(scope, column)


def per_person(select: exp.Select, keys: list[exp.Expression]) -> bool:
    """True when one of ``keys`` (PARTITION BY, DISTINCT ON or the outputs of a DISTINCT of
    the outermost SELECT) is a bare person column: what it separates never spans nodes."""
    root = build_scope(select)
    return root is not None and _Facts()._person_key(root, keys)


class _Facts:
    def __init__(self) -> None:
        self._reads: dict[int, bool] = {}
        self._outputs: dict[int, set[str]] = {}

    # -- the checks ---------------------------------------------------------------------

    def top(self, root: Scope) -> None:
        persons = self.persons(root)
        if not persons:
            raise NotLocal(
                "the query reads no person-level table: reference data is the same at every "
                "node, so each node would answer it once"
            )
        self._joined(root, persons, "the outermost SELECT")

    def nested(self, scope: Scope) -> None:
        select = scope.expression
        if isinstance(select, exp.SetOperation):
            self._set_operation(scope)
            return
        if not isinstance(select, exp.Select) or not self.reads_persons(scope):
            return
        persons = self.persons(scope)
        where = _where(scope)
        links = self._joined(scope, persons, where)
        if any(links.connected(a, OUTER) for a in persons):
            return  # correlated on a person: each evaluation sees one person's rows
        top = _set_top(scope)  # a branch of a set operation is checked as that operation
        if top.scope_type == ScopeType.SUBQUERY and not self._in_person_set(scope, top):
            raise NotLocal(
                f"the subquery in {_clause(scope)} reads person-level data across persons "
                f"({_what(scope)}), which differs per node"
            )
        self._per_person(scope, persons, where)

    def _per_person(self, scope: Scope, persons: list[str], where: str) -> None:
        select = scope.expression
        for arg in ("limit", "offset"):
            if select.args.get(arg) is not None:
                raise NotLocal(
                    f"{arg.upper()} in {where} keeps the top rows across persons, which "
                    "differ per node"
                )
        group = select.args.get("group")
        aggregates = [a for a in scope.find_all(exp.AggFunc) if not a.find_ancestor(exp.Window)]
        if (aggregates or group) and not self._person_key(scope, _keys(group)):
            name = function_name(aggregates[0]).upper() if aggregates else "GROUP BY"
            raise NotLocal(
                f"{name} in {where} combines several persons' rows (group it by person_id), "
                "which differs per node"
            )
        for window in scope.find_all(exp.Window):
            if not self._person_key(scope, window.args.get("partition_by") or []):
                raise NotLocal(
                    f"the window function in {where} runs across persons (add PARTITION BY "
                    "person_id), which differs per node"
                )
        distinct = select.args.get("distinct")
        if isinstance(distinct, exp.Distinct):
            on = distinct.args.get("on")
            keys = (on.expressions if isinstance(on, exp.Tuple) else [on]) if on else None
            if not self._person_key(scope, keys or [p.unalias() for p in select.expressions]):
                raise NotLocal(
                    f"DISTINCT in {where} removes duplicates across persons (keep person_id), "
                    "which differs per node"
                )
        del persons

    def _set_operation(self, scope: Scope) -> None:
        operation = scope.expression
        if isinstance(operation, exp.Union) and not operation.args.get("distinct"):
            return  # UNION ALL: the branches are checked as scopes of their own
        if self.reads_persons(scope) and not self.outputs(scope):
            name = type(operation).__name__.upper()
            raise NotLocal(
                f"{name} in {_where(scope)} removes duplicates across persons (keep person_id "
                "in both sides), which differs per node"
            )

    def _joined(self, scope: Scope, persons: list[str], where: str) -> PersonLinks:
        links = PersonLinks(scope.expression, persons, lambda c: self._node(scope, c))
        _link_records(scope, links)
        if links.components(persons) > 1:
            names = ", ".join(persons)
            raise NotLocal(
                f"the person-level sources {names} of {where} are not all joined on "
                "person_id, so a row could pair persons of different nodes"
            )
        return links

    def _in_person_set(self, scope: Scope, top: Scope) -> bool:
        """``outer.person_id IN (SELECT t.person_id ...)``: a person set tested by the row's
        own person (what each node holds of it is that node's persons). ``top`` is the
        subquery (``scope`` itself, or the set operation ``scope`` is a branch of)."""
        parent = top.expression.parent
        while isinstance(parent, exp.Subquery | exp.Paren):
            parent = parent.parent
        if not isinstance(parent, exp.In) or top.parent is None:
            return False
        left, select = parent.this, scope.expression
        if not isinstance(left, exp.Column) or not self.is_person(top.parent, left):
            return False
        outputs = select.expressions if isinstance(select, exp.Select) else []
        value = outputs[0].unalias() if len(outputs) == 1 else None
        return isinstance(value, exp.Column) and self.is_person(scope, value)

    def _person_key(self, scope: Scope, keys: list[exp.Expression]) -> bool:
        for key in keys:
            bare = key
            while isinstance(bare, exp.Paren):
                bare = bare.this
            if isinstance(bare, exp.Column) and self.is_person(scope, bare):
                return True
        return False

    # -- facts ----------------------------------------------------------------------------

    def reads_persons(self, scope: Scope) -> bool:
        key = id(scope)
        if key not in self._reads:
            self._reads[key] = False  # a cycle reads nothing new
            children = [
                *scope.subquery_scopes,
                *scope.set_operation_scopes,
                *scope.udtf_scopes,
                *(s for s in scope.sources.values() if isinstance(s, Scope)),
            ]
            self._reads[key] = any(
                isinstance(s, exp.Table) and table_class(s.name)[0] == "person"
                for s in scope.sources.values()
            ) or any(self.reads_persons(c) for c in children)
        return self._reads[key]

    def persons(self, scope: Scope) -> list[str]:
        """Aliases of the person-level sources of ``scope`` (its own FROM and joins)."""
        out = []
        for alias in scope.selected_sources:
            source = _selected(scope, alias)
            table = isinstance(source, exp.Table) and table_class(source.name)[0] == "person"
            if table or (isinstance(source, Scope) and self.reads_persons(source)):
                out.append(alias)
        return out

    def outputs(self, scope: Scope) -> set[str]:
        """Output names of ``scope`` that name each row's person."""
        key = id(scope)
        if key not in self._outputs:
            self._outputs[key] = set()
            self._outputs[key] = self._find_outputs(scope)
        return self._outputs[key]

    def _find_outputs(self, scope: Scope) -> set[str]:
        select = scope.expression
        if isinstance(select, exp.SetOperation):
            branches = scope.set_operation_scopes
            if not branches:
                return set()
            first = branches[0].expression
            names = first.named_selects if isinstance(first, exp.Query) else []
            kept = [
                i for i, name in enumerate(names) if all(self._output_at(b, i) for b in branches)
            ]
            return {names[i] for i in kept}
        if not isinstance(select, exp.Select):
            return set()
        out = set()
        for projection in select.expressions:
            value = projection.unalias()
            if isinstance(value, exp.Column) and self.is_person(scope, value):
                out.add(projection.alias_or_name)
        return out

    def _output_at(self, branch: Scope, index: int) -> bool:
        select = branch.expression
        if isinstance(select, exp.Select) and index < len(select.expressions):
            return select.expressions[index].alias_or_name in self.outputs(branch)
        return False

    def is_person(self, scope: Scope, column: exp.Column) -> bool:
        source = _selected(scope, column.table)
        if isinstance(source, exp.Table):
            return table_class(source.name)[1] == column.name
        if isinstance(source, Scope):
            return column.name in self.outputs(source)
        return False

    def _node(self, scope: Scope, column: exp.Column) -> str | None:
        """The person node a column names: a source of ``scope`` in its FROM or joins,
        :data:`OUTER` for one of an enclosing query's (a correlation), else ``None``."""
        if column.table in scope.selected_sources:
            return column.table if self.is_person(scope, column) else None
        parent = scope.parent
        while parent is not None:
            if column.table in parent.selected_sources:
                return OUTER if self.is_person(parent, column) else None
            parent = parent.parent
        return None


def _selected(scope: Scope, alias: str) -> exp.Table | Scope | None:
    """The source ``alias`` names in the FROM or joins of ``scope`` (not a CTE that is
    merely visible from it)."""
    entry = scope.selected_sources.get(alias)
    source = entry[1] if entry is not None else None
    return source if isinstance(source, exp.Table | Scope) else None


def _link_records(scope: Scope, links: PersonLinks) -> None:
    """Also link two sources joined on a record id of one person-level namespace
    (``c.visit_occurrence_id = v.visit_occurrence_id``): the record belongs to one person,
    so both rows are that person's, on one node. (Record ids are pseudonymised with each
    node's own subkey, so ids of different nodes never meet either.)"""

    def namespaced(column: exp.Column) -> str | None:
        source = _selected(scope, column.table)
        namespace = NAMESPACES.get(column.name)
        if not isinstance(source, exp.Table) or namespace is None or column.name == PID:
            return None
        if namespace in SHARED_NAMESPACES or table_class(namespace)[0] != "person":
            return None
        return f"{column.table}\0{namespace}"

    for left, right, padded in person_equalities(scope.expression, namespaced):
        (a, space_a), (b, space_b) = left.split("\0"), right.split("\0")
        if space_a != space_b:
            continue
        if padded is None or (a in padded) != (b in padded):
            links.union(a, b)


def _check_traced(scope: Scope) -> None:
    """Refuse person data that names no person (``note_nlp``, ``cost``...): which node holds
    which of its rows cannot be told, so no part reading it is known to be node-local.
    ``location`` is the exception: every node holds the same places (one id space)."""
    for source in scope.sources.values():
        if not isinstance(source, exp.Table) or source.name in REPLICATED:
            continue
        if table_class(source.name)[0] == "untraced":
            raise NotLocal(
                f"table {source.name} holds person data that names no person, so its rows "
                "cannot be placed on one node"
            )


def _set_top(scope: Scope) -> Scope:
    """The set operation a branch belongs to (through nested ones), or ``scope`` itself."""
    while scope.scope_type == ScopeType.SET_OPERATION and scope.parent is not None:
        scope = scope.parent
    return scope


def _keys(group: exp.Group | None) -> list[exp.Expression]:
    return list(group.expressions) if group is not None else []


def _clause(scope: Scope) -> str:
    node = scope.expression.parent
    while node is not None and not isinstance(node, exp.Select):
        if isinstance(node, exp.Where | exp.Having | exp.Join | exp.Order):
            return {exp.Where: "WHERE", exp.Having: "HAVING", exp.Join: "a join's ON"}.get(
                type(node), "ORDER BY"
            )
        node = node.parent
    return "the outputs"


def _what(scope: Scope) -> str:
    aggregates = [a for a in scope.find_all(exp.AggFunc) if not a.find_ancestor(exp.Window)]
    if aggregates:
        return f"{function_name(aggregates[0]).upper()} over everybody"
    return "not tied to the row's person"


def _where(scope: Scope) -> str:
    if scope.scope_type == ScopeType.CTE:
        parent = scope.expression.parent
        name = parent.alias_or_name if isinstance(parent, exp.CTE) else ""
        return f"the CTE {name}" if name else "a CTE"
    if scope.scope_type == ScopeType.DERIVED_TABLE:
        parent = scope.expression.parent
        name = parent.alias_or_name if isinstance(parent, exp.Subquery) else ""
        return f"the derived table {name}" if name else "a derived table"
    if scope.scope_type == ScopeType.SUBQUERY:
        return f"the subquery in {_clause(scope)}"
    if scope.scope_type == ScopeType.SET_OPERATION:
        return "a branch of a set operation"
    return "a part of the query"
