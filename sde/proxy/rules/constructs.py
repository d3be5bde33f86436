"""Rule ``syntax.unsupported``: only syntax the proxy knows to be safe.

Every node of the tree must be a syntax node of
:data:`sde.proxy.allowlists.SYNTAX` or a function (functions have their own
rule). This refuses, by default, constructs such as DuckDB's ``COLUMNS()``,
struct and ``->`` access, ``PIVOT``, ``TABLESAMPLE``, parameters, optimizer
hints, ``COLLATE`` and object identifiers (``::regclass``); and bare words other
than date parts (:data:`sde.proxy.allowlists.DATE_PARTS`), which the engine would
read as written.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.allowlists import DATE_PARTS, SYNTAX
from sde.proxy.context import RuleContext


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Refuse any node that is neither allowlisted syntax nor a function."""
    for node in expression.walk():
        if (
            isinstance(node, exp.Func)
            and not isinstance(node, exp.Columns)
            and type(node) not in SYNTAX
        ):
            continue
        if type(node) not in SYNTAX:
            name = _name(node)
            raise ScopeViolation(
                "syntax.unsupported",
                f"{name} is not allowed in queries of project {ctx.project}",
                construct=name,
            )
        if (
            isinstance(node, exp.Var)
            and node.name.upper() not in DATE_PARTS
            and not isinstance(node.parent, exp.Limit | exp.Offset)  # LIMIT ALL: the row cap rule
        ):
            word = node.name or "(none)"
            raise ScopeViolation(
                "syntax.unsupported",
                f"the bare word {word} is not allowed here; only date parts such as "
                "YEAR, MONTH or DAY may be written without quotes",
                construct=word,
            )
        if isinstance(node, exp.Pivot):
            _check_pivot(node, ctx)
        if isinstance(node, exp.Join) and node.args.get("method"):
            method = str(node.args["method"]).upper()
            raise ScopeViolation(
                "syntax.unsupported",
                f"{method} JOIN is not allowed; name the join columns with ON",
                construct=f"{method} JOIN",
            )
    return expression


#: What a ``PIVOT (agg FOR col IN (...))`` may hold besides its aggregates and fields.
_PIVOT_ARGS = frozenset(
    {"expressions", "fields", "columns", "alias", "pivot_column_naming"}
    | {"identify_pivot_strings", "prefixed_pivot_columns"}  # how sqlglot names outputs
)


def _check_pivot(pivot: exp.Pivot, ctx: RuleContext) -> None:
    """``t PIVOT (agg FOR col IN (literals))`` in rows mode; nothing else of PIVOT.

    The pivot groups by every other column of its source *as the engine holds it*;
    in rows mode that is the allowlist, but an aggregates or DP extract also holds
    ``person_id``, so there PIVOT is refused (write conditional aggregates).
    """
    if ctx.scope.access != "rows" or not ctx.enforce_access:
        raise ScopeViolation(
            "syntax.unsupported",
            f"PIVOT is available in rows mode only (project {ctx.project} is "
            f"{ctx.scope.access}); write COUNT(CASE WHEN col = v THEN 1 END) AS v, ...",
            construct="PIVOT",
        )
    extra = sorted(k for k, v in pivot.args.items() if v and k not in _PIVOT_ARGS)
    values = [v for f in pivot.args.get("fields") or [] for v in f.expressions]
    literal = all(isinstance(v.unalias(), exp.Literal) for v in values) and values
    if pivot.args.get("unpivot") or extra or not literal:
        raise ScopeViolation(
            "syntax.unsupported",
            "only PIVOT (aggregate FOR column IN (constant, ...)) is allowed",
            construct="PIVOT",
        )


def _name(node: exp.Expr) -> str:
    if isinstance(node, exp.Columns):
        return "COLUMNS(...)"
    if isinstance(node, exp.Hint):
        return "an optimizer hint /*+ ... */"
    return node.key.upper()
