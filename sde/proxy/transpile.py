"""Engine SQL: sqlglot's generator plus the fixes for what it gets wrong on our engines.

This is the one transpiler of the workbench. The proxy calls :func:`for_engine` on
every accepted tree before writing it in the extract's dialect
(:meth:`sde.proxy.pipeline.Prepared.sql`); :func:`transpile` is the same thing for
SQL text (the cross-engine test and :mod:`sde.dp` use it). Each fix was found by
the cross-engine test (``tests/test_engines_agree.py``, see docs/engines.md), is a
pure function of the parsed tree and runs in the order of :data:`FIXES`. The fixes
run on a copy of a tree every rule has accepted; they only change how the same
computation is spelt.

>>> transpile("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS m FROM t", "spark")
'SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY v NULLS LAST) AS m FROM t'
>>> transpile("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS m FROM t", "duckdb")
'SELECT QUANTILE_CONT(v, 0.5 ORDER BY v) AS m FROM t'
>>> transpile("SELECT quantile_disc(v, 0.9) AS m FROM t", "spark", source="duckdb")
'SELECT PERCENTILE_DISC(0.9) WITHIN GROUP (ORDER BY v NULLS LAST) AS m FROM t'
"""

from __future__ import annotations

from collections.abc import Callable

import sqlglot
from sqlglot import exp

from sde.errors import ConfigurationError

#: A fix: the tree (a copy the fix may change in place) and the target dialect.
Fix = Callable[[exp.Expression, str], exp.Expression]

#: The sqlglot dialects of the engines.
DIALECTS = ("duckdb", "postgres", "spark")

_EXACT: dict[type[exp.Expression], str] = {
    exp.PercentileCont: "PERCENTILE_CONT",
    exp.PercentileDisc: "PERCENTILE_DISC",
}


def exact_percentiles_on_spark(tree: exp.Expression, target: str) -> exp.Expression:
    """Exact percentiles stay exact on Spark.

    sqlglot writes ``PERCENTILE_CONT``/``PERCENTILE_DISC`` for Spark as
    ``PERCENTILE_APPROX(x, q)``: approximate, and blind to ``DESC``. Spark 3.4+ has
    the exact ordered-set aggregates in the standard syntax, so every exact
    percentile goes to Spark as ``PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)``,
    whichever form the researcher wrote (``WITHIN GROUP`` as in PostgreSQL,
    ``QUANTILE_CONT(x, q)`` as in DuckDB).
    """
    if target != "spark":
        return tree
    for node in list(tree.find_all(*_EXACT)):
        name = _EXACT[type(node)]
        if isinstance(node.parent, exp.WithinGroup):  # PERCENTILE_CONT(q) WITHIN GROUP (...)
            node.replace(exp.Anonymous(this=name, expressions=[node.this]))
            continue
        level = node.args.get("expression")
        if level is None:
            continue
        # QUANTILE_CONT(x, q) -> PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)
        order = exp.Order(expressions=[exp.Ordered(this=node.this, nulls_first=False)])
        node.replace(
            exp.WithinGroup(this=exp.Anonymous(this=name, expressions=[level]), expression=order)
        )
    return tree


#: The fixes, in the order they run.
FIXES: tuple[Fix, ...] = (exact_percentiles_on_spark,)

#: The dialects some fix changes, and the node types it rewrites: any other tree is
#: written as it is (no walk, no copy).
_FIXED_DIALECTS = frozenset({"spark"})
_FIXED_NODES: tuple[type[exp.Expression], ...] = tuple(_EXACT)


def for_engine(expression: exp.Expression, engine_dialect: str) -> exp.Expression:
    """``expression`` ready to be written in ``engine_dialect`` (the input is not changed)."""
    if engine_dialect not in _FIXED_DIALECTS or expression.find(*_FIXED_NODES) is None:
        return expression
    tree = expression.copy()
    for fix in FIXES:
        tree = fix(tree, engine_dialect)
    return tree


def transpile(sql: str, target: str, source: str = "postgres") -> str:
    """``sql`` (one statement in ``source`` dialect) in the ``target`` dialect."""
    if target not in DIALECTS:
        raise ConfigurationError(
            "dialect.unknown", f"unknown dialect {target!r}; choose one of {', '.join(DIALECTS)}"
        )
    tree = for_engine(exp.maybe_parse(sql, dialect=source), target)
    return tree.sql(dialect=target, unsupported_level=sqlglot.ErrorLevel.RAISE)
