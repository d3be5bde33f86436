"""Rule ``columns.*``: only allowlisted columns are visible, however they are named.

The query is qualified against a schema holding only the project's tables and
columns (sqlglot's ``qualify``): every column is resolved to its source, ``*``
and ``t.*`` (with ``EXCLUDE``/``REPLACE``) expand to allowlisted columns only,
``USING`` becomes explicit. A column that does not resolve (not allowlisted,
never exposed, misspelt) is refused by name. After qualification every column
must carry a source, except an ORDER BY reference to an output alias; a bare
name that is a table alias is a whole-row reference and is refused.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify as sqlglot_qualify

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext
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
    _check_sources(qualified, ctx)
    return qualified


def _refusal(message: str, ctx: RuleContext) -> ScopeViolation:
    match = next((m for p in _UNRESOLVED if (m := p.search(message))), None)
    if match:
        return not_allowed(match.group(1), ctx)
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


def _source_names(expression: exp.Expression) -> set[str]:
    names: set[str] = set()
    for node in expression.find_all(exp.Table, exp.TableAlias, exp.CTE):
        if isinstance(node, exp.Table):
            names.add(node.name)
        names.add(node.alias_or_name if not isinstance(node, exp.TableAlias) else node.name)
    names.discard("")
    return names
