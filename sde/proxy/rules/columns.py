"""Rule ``columns.*``: only allowlisted columns are visible, however they are named.

The query is qualified against a schema holding only the project's tables and
columns (sqlglot's ``qualify``): every column is resolved to its source, ``*``
and ``t.*`` (with ``EXCLUDE``/``REPLACE``) expand to allowlisted columns only,
``USING`` becomes explicit. A column that does not resolve (not allowlisted,
never exposed, misspelt) is refused by name. After qualification every column
must carry a source, except an ORDER BY reference to an output alias (a
``DISTINCT ON`` one is replaced by the output's expression); a bare name that is
a table alias is a whole-row reference and is refused.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify as sqlglot_qualify

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext
from sde.proxy.resolve import visible_cte
from sde.scope import withheld_columns

_UNRESOLVED = (
    re.compile(r"Column '\"?([^'\"]+)\"?' could not be resolved"),
    re.compile(r"Unknown column: \"?(\w+)"),
    re.compile(r"Cannot automatically join: \"?(\w+)"),
)


def qualify(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Qualify every column against the allowlist; refuse what does not resolve."""
    try:
        qualified = sqlglot_qualify(
            expression,
            dialect=ctx.dialect,
            schema=ctx.schema,
            validate_qualify_columns=True,
            quote_identifiers=True,
            identify=True,
            expand_stars=True,
        )
    except OptimizeError as err:
        raise _refusal(str(err), ctx) from None
    except ScopeViolation:
        raise
    except Exception:
        raise ScopeViolation(
            "columns.unresolved",
            "the columns of this query could not be resolved; name each column's table",
        ) from None
    _resolve_distinct_on(qualified)
    _check_sources(qualified, ctx)
    return qualified


def _resolve_distinct_on(expression: exp.Expression) -> None:
    """``DISTINCT ON (x)`` naming an output column means that output's expression (as
    in ORDER BY); qualification leaves the name bare, so it is spelled out here, and in
    that query's ORDER BY, so every engine reads the same column (Spark rewrites
    DISTINCT ON into a window, where output names are not visible)."""
    for distinct in expression.find_all(exp.Distinct):
        on, select = distinct.args.get("on"), distinct.parent
        if on is None or not isinstance(select, exp.Select):
            continue
        outputs = {s.alias_or_name: s for s in select.expressions}
        order = select.args.get("order")
        columns = [*on.find_all(exp.Column), *(order.find_all(exp.Column) if order else ())]
        for column in columns:
            source = outputs.get(column.name)
            if not column.table and source is not None:
                column.replace(source.unalias().copy())


def _refusal(message: str, ctx: RuleContext) -> ScopeViolation:
    match = next((m for p in _UNRESOLVED if (m := p.search(message))), None)
    if match:
        return not_allowed(match.group(1), ctx)
    ambiguous = re.search(r"Ambiguous column '\"?(\w+)", message)
    if ambiguous and not any(ambiguous.group(1) in c for c in ctx.scope.tables.values()):
        return not_allowed(ambiguous.group(1), ctx)  # no project table has it at all
    first = message.splitlines()[0][:200]
    return ScopeViolation(
        "columns.unresolved", f"the query's columns could not be resolved: {first}"
    )


def not_allowed(name: str, ctx: RuleContext) -> ScopeViolation:
    """The refusal of column ``name``: withheld by design if one of the project's tables
    has a never-exposed column of that name (listing it in a scope file changes nothing),
    else simply not available to the project."""
    withheld = sorted(t for t in ctx.scope.tables if name in withheld_columns(t))
    if withheld:
        message = (
            f"column {name} is withheld by design: no project ever sees "
            f"{withheld[0]}.{name}, whatever its scope file lists"
        )
    else:
        message = ctx.not_available("column", name)
    return ScopeViolation("columns.not-allowed", message, name=name)


def _check_sources(expression: exp.Expression, ctx: RuleContext) -> None:
    sources = _source_names(expression)
    for node in expression.find_all(exp.TableColumn):
        raise ScopeViolation(
            "columns.whole-row",
            f"whole-row reference {node.name} is not allowed; list the columns you need",
            name=node.name,
        )
    for column in expression.find_all(exp.Column):
        if column.table:
            continue  # qualify resolved it against the allowlisted schema
        name = column.name
        if name in sources:
            raise ScopeViolation(
                "columns.whole-row",
                f"whole-row reference {name} is not allowed; list the columns you need",
                name=name,
            )
        pivot = column.find_ancestor(exp.Pivot)
        if pivot is not None and name in _pivoted_columns(pivot, ctx):
            continue  # PIVOT (agg(x) FOR col ...): a column of the pivoted source
        order = column.find_ancestor(exp.Order)
        select = order.parent if order is not None else None
        if isinstance(select, exp.Query) and name in set(select.named_selects):
            continue  # ORDER BY an output alias
        raise not_allowed(name, ctx)
    for star in expression.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            raise ScopeViolation(
                "columns.star",
                "* could not be expanded to the project's columns here; list the columns",
                name="*",
            )


def _pivoted_columns(pivot: exp.Pivot, ctx: RuleContext) -> set[str]:
    """The columns of the source a PIVOT reshapes (the allowlist for a project table)."""
    source = pivot.parent
    if isinstance(source, exp.Table):
        cte = visible_cte(source)
        if cte is None:
            return set(ctx.scope.columns(source.name))
        source = cte
    if isinstance(source, exp.Subquery | exp.CTE) and isinstance(source.this, exp.Query):
        return set(source.this.named_selects)
    return set()


def _source_names(expression: exp.Expression) -> set[str]:
    names: set[str] = set()
    for node in expression.find_all(exp.Table, exp.TableAlias, exp.CTE):
        if isinstance(node, exp.Table):
            names.add(node.name)
        names.add(node.alias_or_name if not isinstance(node, exp.TableAlias) else node.name)
    names.discard("")
    return names
