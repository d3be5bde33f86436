"""Rule ``recheck``: the checks again, on the tree the rewrites produced.

Qualification and the injected person counts and row cap change the tree; the
statement, table, function and syntax checks run once more so that nothing a
rewrite introduced (or a check missed before qualification) reaches an engine.
"""

from __future__ import annotations

from sqlglot import exp

from sde.proxy.context import RuleContext
from sde.proxy.rules import constructs, functions, statement, tables


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Re-run the non-rewriting checks on the final tree."""
    for rule in (statement.check, tables.check, functions.check, constructs.check):
        expression = rule(expression, ctx)
    return expression
