"""Engine forms sqlglot does not produce faithfully: the last step before an engine.

sqlglot writes ``PERCENTILE_CONT``/``PERCENTILE_DISC`` for Spark as
``PERCENTILE_APPROX``, an approximation that gives other answers than the exact
percentile the researcher asked for (PostgreSQL and DuckDB compute it exactly).
Spark 3.4+ has the exact ordered-set aggregates with the standard syntax, so
every exact percentile goes to Spark as ``PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY
x)`` (or ``PERCENTILE_DISC``), whichever form the researcher wrote
(``WITHIN GROUP`` as in PostgreSQL, ``QUANTILE_CONT(x, q)`` as in DuckDB).

These rewrites run on a copy of a tree every rule has accepted; they only change
how the same computation is spelt.
"""

from __future__ import annotations

from sqlglot import exp

_EXACT: dict[type[exp.Expr], str] = {
    exp.PercentileCont: "PERCENTILE_CONT",
    exp.PercentileDisc: "PERCENTILE_DISC",
}


def for_engine(expression: exp.Expression, engine_dialect: str) -> exp.Expression:
    """``expression`` ready to be written in ``engine_dialect``."""
    if engine_dialect != "spark" or expression.find(*_EXACT) is None:
        return expression
    tree = expression.copy()
    for node in list(tree.find_all(*_EXACT)):
        _spark_percentile(node)
    return tree


def _spark_percentile(node: exp.Expr) -> None:
    name = _EXACT[type(node)]
    within = node.parent if isinstance(node.parent, exp.WithinGroup) else None
    if within is not None:  # PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)
        node.replace(exp.Anonymous(this=name, expressions=[node.this]))
        return
    level = node.args.get("expression")
    if level is None:
        return
    # QUANTILE_CONT(x, q) -> PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)
    order = exp.Order(expressions=[exp.Ordered(this=node.this, nulls_first=False)])
    node.replace(
        exp.WithinGroup(this=exp.Anonymous(this=name, expressions=[level]), expression=order)
    )
