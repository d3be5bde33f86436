"""Transpile SQL between the engines with sqlglot, plus fixes for known mistakes.

Researchers write PostgreSQL; each engine receives its own dialect. sqlglot does
almost all of the work. The fixes below correct what it gets wrong for our
engines (each found by the cross-engine test, see docs/engines.md); each is a
pure function of the parsed tree, applied in the order of :data:`FIXES`.

>>> transpile("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS m FROM t", "spark")
'SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY v NULLS LAST) AS m FROM t'
>>> transpile("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS m FROM t", "duckdb")
'SELECT QUANTILE_CONT(v, 0.5 ORDER BY v) AS m FROM t'
"""

from __future__ import annotations

from collections.abc import Callable

import sqlglot
from sqlglot import exp

from sde.errors import ConfigurationError

Fix = Callable[[exp.Expr, str], exp.Expr]


def exact_percentiles_on_spark(tree: exp.Expr, target: str) -> exp.Expr:
    """Keep ``percentile_cont/disc(q) WITHIN GROUP (ORDER BY x)`` on Spark.

    sqlglot writes both as ``PERCENTILE_APPROX(x, q)``: approximate, and blind to
    ``DESC``. Spark 3.3+ has the exact ordered-set forms, so keep them.
    """
    if target != "spark":
        return tree

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.WithinGroup) and isinstance(
            node.this, exp.PercentileCont | exp.PercentileDisc
        ):
            name = (
                "PERCENTILE_CONT"
                if isinstance(node.this, exp.PercentileCont)
                else "PERCENTILE_DISC"
            )
            function = exp.Anonymous(this=name, expressions=[node.this.this.copy()])
            return exp.WithinGroup(this=function, expression=node.expression.copy())
        return node

    return tree.transform(fix)


#: The fixes, in the order they run.
FIXES: tuple[Fix, ...] = (exact_percentiles_on_spark,)

DIALECTS = ("duckdb", "postgres", "spark")


def transpile(sql: str, target: str, source: str = "postgres") -> str:
    """``sql`` (one statement in ``source`` dialect) in the ``target`` dialect."""
    if target not in DIALECTS:
        raise ConfigurationError(
            "dialect.unknown", f"unknown dialect {target!r}; choose one of {', '.join(DIALECTS)}"
        )
    tree = sqlglot.parse_one(sql, read=source)
    for fix in FIXES:
        tree = fix(tree, target)
    return tree.sql(dialect=target, unsupported_level=sqlglot.ErrorLevel.RAISE)
