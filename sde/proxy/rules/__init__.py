"""The proxy's whole policy, in order: one list of rules.

Each rule is a pure function ``(expression, ctx) -> expression`` in its own
module: it returns the (possibly rewritten) tree or raises
:class:`~sde.errors.ScopeViolation` with its rule id and a sentence naming the
offending thing. Checks that give the most specific message run first; the
rewrites (qualification, person counts, total forms, threshold, row cap) run last, on a tree every
check has accepted.

| order | module | rule ids |
|---|---|---|
| 1 | statement | ``statement.read-only`` |
| 2 | limits | ``limits.query-size``, ``limits.depth``, ``limits.recursive-cte`` |
| 3 | tables | ``tables.not-allowed``, ``.qualified``, ``.catalog``, ``.file``, ``.function`` |
| | | ``tables.clause`` |
| 3b | shorthands | ``syntax.unsupported``, ``columns.not-allowed``: expands DuckDB's |
| | | ``COLUMNS('regex')`` (allowlisted columns only), ``GROUP BY ALL``, ``ORDER BY ALL`` |
| 4 | functions | ``functions.not-allowed``, ``functions.type-not-allowed`` |
| 5 | constructs | ``syntax.unsupported`` |
| 6 | columns | ``columns.not-allowed``, ``.whole-row``, ``.star``, ``.unresolved`` |
| 7 | cross_joins | ``limits.cross-join`` |
| 8 | aggregates | ``aggregates.shape``, ``.not-aggregated``, ``.function``, ``.no-person`` |
| | | ``aggregates.cross-person``, ``.unbound`` |
| 9 | totality | ``aggregates.not-total`` (every expression cannot fail; rewrites the fixable) |
| 10 | threshold | ``aggregates.shape`` (removes groups under the threshold in SQL) |
| 11 | row_cap | ``limits.limit`` (and injects the cap) |
| 12 | recheck | rules 1, 3, 4, 5 again on the rewritten tree |

The parse stage before them (:mod:`sde.proxy.parse`) owns ``parse.*`` and the
barrier after them owns ``limits.timeout`` and ``engine.error``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from sde.proxy.context import RuleContext
from sde.proxy.rules import (
    aggregates,
    columns,
    constructs,
    cross_joins,
    functions,
    limits,
    recheck,
    row_cap,
    shorthands,
    statement,
    tables,
    threshold,
    totality,
)

Rule = Callable[[exp.Expression, RuleContext], exp.Expression]

RULES: tuple[Rule, ...] = (
    statement.check,
    limits.check,
    tables.check,
    shorthands.rewrite,
    functions.check,
    constructs.check,
    columns.qualify,
    cross_joins.check,
    aggregates.rewrite,
    totality.check,
    threshold.rewrite,
    row_cap.rewrite,
    recheck.check,
)

__all__ = ["RULES", "Rule"]
