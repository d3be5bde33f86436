"""Rule ``aggregates.not-total``: in aggregates mode no expression may fail on any data.

Aggregates mode shows only groups of at least ``threshold`` persons, so whether a query
*fails* must not depend on any person either: ``WHERE CASE WHEN <one person's attributes>
THEN 1/0 ELSE 1 END = 1`` fails exactly when that person exists, and a cast, an overflow,
``SQRT``/``LN`` of a negative or a BIGINT ``SUM`` that overflows (Spark's ANSI mode) does
the same for a value. The error is generic, but its presence is one bit per query.

So the DP mode's totality check (:mod:`sde.dp.totality`) runs on every aggregates-mode
query, before the threshold rewrite: each expression (CTEs, derived tables, LATERAL,
subqueries, join conditions, filters, keys, aggregates, HAVING, QUALIFY, windows,
DISTINCT ON, ORDER BY) is typed with a value range and either proven total, rewritten
into a total form (integer arithmetic in BIGINT, ``NULLIF`` on integer divisors, float
operands clamped to ±1e100 and float divisors guarded) or refused, naming the construct.

Aggregates-mode SQL is broader than DP SQL, so :class:`AggregatesChecker` generalises the
DP checker: every clause of a SELECT is checked (an unknown one is refused), later FROM
items see earlier ones (LATERAL), INTERSECT/EXCEPT, FILTER, window frames and a few more
window and aggregate functions are accepted, ``date - date`` counts days; and no later
rewrite guards the outermost aggregates (DP's does), so they are bounded like any other:
a SUM of integers must fit a BIGINT for :data:`MAX_ROWS` rows, float arguments are
clamped. The bound is an assumption, stated here: no group, partition or table has more
than ``MAX_ROWS`` rows within the statement timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from sde.dp.totality import Checker, _binary, _fname, check_frame
from sde.dp.types import BOOL, FLOAT, T
from sde.dp.types import comparable as _comparable
from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext

#: Rows any one group, window partition or table has at most (a stated assumption).
MAX_ROWS = 2.0**31


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """A copy of an aggregates-mode query whose every expression is total, or a refusal."""
    if ctx.scope.access != "aggregates" or not ctx.enforce_access:
        return expression
    if not isinstance(expression, exp.Select):
        return expression  # aggregates.shape refused set operations already
    out = expression.copy()
    AggregatesChecker(out).query(out)
    return out.copy()  # fresh parent links throughout, for the rewrites that follow


class AggregatesChecker(Checker):
    """The DP checker, generalised to aggregates-mode SQL (see the module docstring)."""

    mode = "aggregates"
    set_operations = (exp.SetOperation,)
    max_count = MAX_ROWS
    max_rows = MAX_ROWS
    join_parts = frozenset({"this", "on", "kind", "side", "method"})

    def not_total(self, what: str, why: str) -> ScopeViolation:
        return ScopeViolation(
            "aggregates.not-total",
            f"{what} is not available in aggregates mode: {why}. Whether a query fails "
            "must not depend on any person's data, so every expression must be unable to "
            "fail",
        )

    def handlers(self) -> tuple[tuple[Any, Callable[[Checker, Any], T]], ...]:
        return (*_EXTRA, *super().handlers())

    def guarded(self, agg: exp.Expr, *, windows: bool = True) -> bool:
        return False  # nothing after this rule clamps the outermost aggregates

    def _relation(self, node: exp.Expr) -> dict[str, T]:
        if isinstance(node, exp.Lateral) and isinstance(node.this, exp.Subquery):
            return self.query(node.this.this)
        return super()._relation(node)


# -- handlers for what aggregates mode adds -------------------------------------------


#: ``date +/- n`` is accepted for literal ``n`` up to this many days (about 100 years)...
_DAYS = 36_600
#: ...on dates in this range (others become NULL), so no engine's date range is left.
_DATES = ("0200-01-01", "9800-12-31")


def _date_arithmetic(c: Checker, e: exp.Add | exp.Sub) -> T:
    """``date - date`` (days) and ``date +/- literal days``; anything else as before."""
    if not isinstance(e.this, exp.Column):
        return _binary(c, e)
    a = c.expr(e.this)
    if a.family != "date":
        return _binary(c, e)
    later = e.expression
    if isinstance(e, exp.Sub) and isinstance(later, exp.Column) and c.expr(later).family == "date":
        return T("int", -(2.0**31), 2.0**31)
    n = e.expression
    if isinstance(n, exp.Literal) and n.is_int and abs(int(n.this)) <= _DAYS:
        low, high = (exp.cast(exp.Literal.string(d), exp.DataType.Type.DATE) for d in _DATES)
        inside = exp.Between(this=e.this.copy(), low=low, high=high)
        e.this.replace(exp.Case(ifs=[exp.If(this=inside, true=e.this.copy())]))
        return T("date")
    raise c.not_total(
        f"date arithmetic {e.sql()[:60]}",
        f"only date - date and date +/- a literal number of days (at most {_DAYS})",
    )


def _between(c: Checker, e: exp.Between) -> T:
    """Each side typed once, in place (the DP form re-parents ``this``)."""
    a = c.expr(e.this)
    for side in ("low", "high"):
        b = c.expr(e.args[side])
        if "any" in (a.family, b.family) or not _comparable(a, b):
            raise c.not_total(f"BETWEEN on {e.this.sql()[:40]}", "the bounds have another type")
    return BOOL


def _nullif(c: Checker, e: exp.Nullif) -> T:
    a, b = c.expr(e.this), c.expr(e.expression)
    if "any" in (a.family, b.family) or not _comparable(a, b):
        raise c.not_total(f"NULLIF on {e.this.sql()[:40]}", "the two values have another type")
    return a


def _filter(c: Checker, e: exp.Filter) -> T:
    """``agg FILTER (WHERE cond)``."""
    c.condition(e.expression.this)
    return c.expr(e.this)


def _count_if(c: Checker, e: exp.Expr) -> T:
    c.condition(e.this)
    return T("int", 0, c.max_count)


def _distinct_count(c: Checker, e: exp.Expr) -> T:
    c.expr(e.this)
    return T("int", 0, c.max_count)


def _covariance(c: Checker, e: exp.Expr) -> T:
    for arg in (e.this, e.expression):
        c.sanitised(arg, c.numeric(arg, type(e).__name__.upper()))
    return FLOAT  # NaN for no variance on some engines: unbounded, clamped where used


def _window(c: Checker, e: exp.Window) -> T:
    for p in e.args.get("partition_by") or []:
        c.expr(p)
    order = e.args.get("order")
    for o in order.expressions if order is not None else []:
        c.expr(o.this)
    check_frame(c, e)
    fn = e.this
    if isinstance(fn, exp.IgnoreNulls | exp.RespectNulls):
        fn = fn.this
    return _window_function(c, fn)


def _window_function(c: Checker, fn: exp.Expr) -> T:
    if isinstance(fn, exp.Filter):
        c.condition(fn.expression.this)
        fn = fn.this
    if isinstance(fn, exp.RowNumber | exp.Rank | exp.DenseRank):
        return T("int", 0, c.max_count)
    if isinstance(fn, exp.PercentRank | exp.CumeDist):
        return FLOAT.span(0.0, 1.0)
    if isinstance(fn, exp.Ntile):
        n = fn.this
        if not (isinstance(n, exp.Literal) and n.is_int and int(n.this) >= 1):
            raise c.not_total("NTILE", "the number of tiles must be a whole-number literal >= 1")
        return T("int", 0, float(n.this))
    if isinstance(fn, exp.Lag | exp.Lead | exp.FirstValue | exp.LastValue):
        off = fn.args.get("offset")
        if off is not None and not (isinstance(off, exp.Literal) and off.is_int):
            raise c.not_total(_fname(fn), "the offset must be a whole-number literal")
        value, default = c.expr(fn.this), fn.args.get("default")
        if default is not None and not _comparable(value, c.expr(default)):
            raise c.not_total(_fname(fn), "the default has another type than the value")
        return value
    if isinstance(fn, exp.AggFunc):
        return c.expr(fn)
    raise c.not_total(_fname(fn) if isinstance(fn, exp.Func) else "this window", "not checked")


_EXTRA: tuple[tuple[Any, Callable[[Checker, Any], T]], ...] = (
    (exp.Add | exp.Sub, _date_arithmetic),
    (exp.Between, _between),
    (exp.Nullif, _nullif),
    (exp.Filter, _filter),
    (exp.CountIf, _count_if),
    (exp.ApproxDistinct, _distinct_count),
    (exp.Corr | exp.CovarPop | exp.CovarSamp, _covariance),
    (exp.Window, _window),
)
