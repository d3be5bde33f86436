"""Rule ``shorthands``: DuckDB's shorthands spelled out, so every engine runs them.

- ``COLUMNS('regex')`` as an output: the columns the project may see in that
  query's sources (``*`` expanded against the allowlisted schema only) whose name
  the regular expression matches, in order; a column outside the scope never
  matches because it is not there to match. ``COLUMNS(*)``, lambdas and COLUMNS
  inside an expression are left to the functions and syntax rules, which refuse them.
- ``GROUP BY ALL``: the outputs that hold no aggregate (constants need no group).
  ``GROUP BY ALL a, b`` is PostgreSQL's set quantifier: ``GROUP BY a, b``.
- ``ORDER BY ALL``: every output of the query (a SELECT, or the first SELECT of a
  set operation), left to right, in the direction written. DuckDB and Spark parse
  ``ALL`` as a keyword; PostgreSQL, where ``ALL`` is reserved and ``ORDER BY ALL``
  is not SQL of its own, parses it as an unquoted column named ``all`` (a quoted
  ``"all"`` stays a column). Beside other sort keys, or inside a window or an
  aggregate, it is refused naming itself.

The researcher's dialect decides nothing here: the rewritten tree is plain SQL
that PostgreSQL and Spark run too, and the later rules (aggregates mode included)
check it like any other query.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.optimizer.qualify import qualify

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext

_MARK = "sde_columns_regex"


def rewrite(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Expand COLUMNS('regex'), GROUP BY ALL and ORDER BY ALL in every SELECT."""
    for select in reversed(list(expression.find_all(exp.Select))):  # innermost first
        if any(_regex_of(p) is not None for p in select.expressions):
            _expand_columns(select, expression, ctx)
    for select in expression.find_all(exp.Select):
        group = select.args.get("group")
        if isinstance(group, exp.Group) and group.args.get("all"):
            _group_by_all(select, group)
    for query in list(expression.find_all(exp.Select, exp.SetOperation)):
        order = query.args.get("order")
        if not isinstance(order, exp.Order) or not isinstance(query, exp.Select | exp.SetOperation):
            continue
        if any(_is_all(o.this) for o in order.expressions):
            _order_by_all(query, order)
    for ordered in expression.find_all(exp.Ordered):  # windows, WITHIN GROUP, aggregates
        if _is_all(ordered.this):
            raise _refusal(
                "ORDER BY ALL orders a query's outputs; inside a window or an aggregate "
                "list the sort keys"
            )
    return expression


def _regex_of(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Columns) and isinstance(node.this, exp.Literal):
        return str(node.this.this) if node.this.is_string else None
    return None


def _expand_columns(select: exp.Select, root: exp.Expression, ctx: RuleContext) -> None:
    """Each COLUMNS('regex') output becomes the matching columns of ``*`` here."""
    available = _star_columns(select, root, ctx)
    outputs: list[exp.Expr] = []
    for projection in select.expressions:
        regex = _regex_of(projection)
        if regex is None:
            outputs.append(projection)
            continue
        try:
            pattern = re.compile(regex)
        except re.error:
            raise _refusal(f"COLUMNS('{regex}') is not a regular expression") from None
        matched = [c.copy() for c in available if pattern.search(c.name)]
        if not matched:
            raise ScopeViolation(
                "columns.not-allowed",
                f"COLUMNS('{regex}') matches none of the columns available to project "
                f"{ctx.project} here",
                name=f"COLUMNS('{regex}')",
            )
        outputs.extend(matched)
    select.set("expressions", outputs)


def _star_columns(select: exp.Select, root: exp.Expression, ctx: RuleContext) -> list[exp.Column]:
    """What ``*`` stands for in ``select``: qualified on a copy against the allowlist."""
    select.meta[_MARK] = True
    try:
        copy = root.copy()
    finally:
        select.meta.pop(_MARK, None)
    twin = next(s for s in copy.find_all(exp.Select) if s.meta.get(_MARK))
    twin.set("expressions", [exp.Star()])
    for clause in ("group", "having", "order", "qualify", "distinct"):
        twin.set(clause, None)  # they may name the outputs being expanded
    try:
        qualify(copy, dialect=ctx.dialect, schema=ctx.schema, expand_stars=True)
    except Exception:
        raise _refusal("COLUMNS(...) could not be expanded here; list the columns") from None
    found = []
    for projection in twin.expressions:
        column = projection.unalias()
        if not isinstance(column, exp.Column) or not column.table:
            raise _refusal("COLUMNS(...) could not be expanded here; list the columns")
        found.append(exp.column(column.name, table=column.table))
    return found


def _group_by_all(select: exp.Select, group: exp.Group) -> None:
    if group.expressions:  # GROUP BY ALL a, b: the standard quantifier, GROUP BY a, b
        group.set("all", None)
        return
    keys = []
    for projection in select.expressions:
        _no_star(projection, "GROUP BY ALL")
        value = projection.unalias()
        if _aggregates(value, select) or value.find(exp.Column) is None:
            continue
        keys.append(value.copy())
    select.set("group", exp.Group(expressions=keys) if keys else None)


def _order_by_all(query: exp.Select | exp.SetOperation, order: exp.Order) -> None:
    """``ORDER BY ALL [dir]``: every output by position, each in direction ``dir``."""
    if len(order.expressions) != 1:
        raise _refusal("ORDER BY ALL cannot be combined with other sort keys; list them all")
    (ordered,) = order.expressions
    terms = []
    for position, projection in enumerate(query.selects, start=1):
        _no_star(projection, "ORDER BY ALL")
        term = ordered.copy()
        term.set("this", exp.Literal.number(position))
        terms.append(term)
    order.set("expressions", terms)


def _is_all(key: exp.Expr) -> bool:
    """True if sort key ``key`` is the word ALL: a keyword (DuckDB, Spark), or an
    unquoted, unqualified column named ``all`` (PostgreSQL, where ALL is reserved)."""
    if isinstance(key, exp.Var):
        return key.name.upper() == "ALL"
    return (
        isinstance(key, exp.Column)
        and not key.table
        and isinstance(key.this, exp.Identifier)
        and not key.this.quoted
        and key.name.upper() == "ALL"
    )


def _aggregates(node: exp.Expr, select: exp.Select) -> bool:
    """True if ``node`` holds an aggregate of ``select`` (not of a window or subquery)."""
    return any(
        agg.find_ancestor(exp.Window, exp.Query) is select for agg in node.find_all(exp.AggFunc)
    )


def _no_star(projection: exp.Expr, what: str) -> None:
    if isinstance(projection, exp.Star) or (
        isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
    ):
        raise _refusal(f"{what} cannot be used with *; list the columns")


def _refusal(message: str) -> ScopeViolation:
    return ScopeViolation("syntax.unsupported", message)
