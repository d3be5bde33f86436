"""Totality: in DP mode no expression may fail on any data (rule ``dp.not-total``).

An engine error that depends on one person's data is an exact, deterministic bit that no
epsilon covers: ``CAST(CASE WHEN <target> AND x > T THEN 'x' ELSE '1' END AS INTEGER)``
fails or not with the target's value, and a binary search on ``T`` reads it. So before
anything runs, every expression of a DP query (CTEs, subqueries, joins, filters, keys and
aggregated values) is checked against a whitelist of constructs that cannot fail, decided
from the SQL text and the CDM's column types alone, and the few partial constructs that
can be made total are rewritten:

* integer arithmetic runs in BIGINT (operands widened) and is refused when the static
  range of its result could overflow BIGINT;
* float operands of arithmetic and functions are clamped to ``±1e100`` first (NaN and
  infinities included: NaN orders above every number on every engine), so products,
  sums and quotients stay finite; divisors are ``NULL`` unless ``|d| >= 1e-100``
  (integer divisors: ``NULLIF(d, 0)``);
* casts are allowed only where they cannot fail (numbers to DOUBLE/BIGINT within range,
  anything to TEXT, dates to dates, string literals checked here);
* comparisons only between values of one family (a string literal compared with a
  number or a date is checked here), LIKE only with a literal pattern;
* functions not proven total (LN, SQRT, POWER, regular expressions, date arithmetic,
  string-to-date parsing...) are refused, naming the function.

The DP rewrite adds its own guards (NaN and infinities to NULL before clamping, grid
values and sums bounded statically: :mod:`sde.dp.rewrite`, :func:`check_sums`); an error
that still happens is charged and reported with a fixed message (:mod:`sde.dp.engine`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from sde.dp.locality import refuse
from sde.dp.types import (
    ANY,
    BIGINT_MAX,
    BOOL,
    FLOAT,
    MAX_CHARS,
    NULL,
    SCALAR_CHARS,
    TEXT,
    T,
    cdm_column,
    literal,
    unify,
)
from sde.dp.types import comparable as _comparable
from sde.errors import DPRefusal, SDEError

#: Float operands are clamped to [-BIG, BIG]; divisors must be at least TINY in size.
BIG = 1e100
TINY = 1e-100
#: FLOOR/CEIL return BIGINT on Spark: their float operand is clamped to +-2^52 first.
EXACT = 2.0**52
#: At most this many rows per person (a per-person SUM in a CTE is bounded with it).
ROWS_PER_PERSON = 2.0**31

Env = dict[str, dict[str, T]]

#: Clauses of a SELECT the checker looks into; any other clause is refused.
_CLAUSES = frozenset(
    {"expressions", "distinct", "from_", "joins", "where", "group", "having", "qualify"}
    | {"order", "limit", "offset", "with_"}
)
#: Frame bounds that are words, not offsets.
_FRAME_WORDS = {"UNBOUNDED", "CURRENT ROW"}


def not_total(what: str, why: str) -> DPRefusal:
    """A ``dp.not-total`` refusal (see :meth:`Checker.not_total` for other modes)."""
    return refuse(
        "not-total",
        f"{what} is not available in DP mode: {why}. An error that depends on data would "
        "reveal it exactly, so every expression of a DP query must be unable to fail",
    )


def make_total(tree: exp.Select) -> exp.Select:
    """A copy of ``tree`` whose every expression is total, or a ``dp.not-total`` refusal."""
    out = tree.copy()
    Checker(out).query(out)
    return out


class Checker:
    """Types every expression (with ranges), refusing or rewriting what could fail.

    This is the DP mode's checker; a subclass generalises it to the broader SQL of
    another mode (:mod:`sde.proxy.rules.totality` for aggregates mode) through the hooks
    below: ``mode`` (the rule id prefix), :meth:`handlers`, :meth:`guarded`,
    ``set_operations``, ``max_count`` and ``max_rows``.
    """

    #: Prefix of the refusal's rule id (``dp.not-total``).
    mode = "dp"
    #: Set operations whose branches are checked (any other is refused).
    set_operations: tuple[type[exp.SetOperation], ...] = (exp.Union,)
    #: Largest value of a COUNT.
    max_count = 2.0**62
    #: Rows one SUM inside a subquery adds up at most (a per-person SUM in a CTE).
    max_rows = ROWS_PER_PERSON
    #: Parts of a JOIN that are checked (any other is refused).
    join_parts: frozenset[str] = frozenset({"this", "on", "using", "kind", "side", "method"})
    #: Longest text a concatenation may produce.
    max_chars = MAX_CHARS

    def __init__(self, top: exp.Select) -> None:
        self.top = top
        self.ctes: dict[str, dict[str, T]] = {}
        self.envs: list[Env] = []
        self.outputs: list[dict[str, T]] = []
        #: The type of every expression checked, by node id (for the group keys' types).
        self.types: dict[int, T] = {}

    def not_total(self, what: str, why: str) -> SDEError:
        return not_total(what, why)

    def handlers(self) -> tuple[tuple[Any, Callable[[Checker, Any], T]], ...]:
        """(node classes, handler) pairs, first match wins."""
        return _HANDLERS

    def guarded(self, agg: exp.Expr, *, windows: bool = True) -> bool:
        """Whether a later rewrite guards this aggregate's value itself (DP: the outermost
        query's aggregates, which :mod:`sde.dp.rewrite` clamps)."""
        top = agg.find_ancestor(exp.Select) is self.top
        return top and (not windows or agg.find_ancestor(exp.Window) is None)

    # -- queries and relations ------------------------------------------------------------

    def query(self, q: exp.Expr) -> dict[str, T]:
        """Output columns (name -> type) of a SELECT, UNION or subquery, checked."""
        if isinstance(q, exp.Subquery):
            return self.query(q.this)
        self._ctes(q)
        if isinstance(q, self.set_operations):
            left, right = self.query(q.left), self.query(q.right)
            out = {}
            for (name, a), b in zip(left.items(), right.values(), strict=False):
                u = unify(a, b)
                if u is None:
                    raise self.not_total("UNION of different types", "the engine would cast one")
                out[name] = u
            return out
        if not isinstance(q, exp.Select):
            raise self.not_total(type(q).__name__, "only SELECT queries are checked")
        return self._select(q)

    def _ctes(self, q: exp.Expr) -> None:
        with_ = q.args.get("with_")
        for cte in with_.expressions if with_ is not None else []:
            self.ctes[cte.alias_or_name] = self.query(cte.this)

    def _relation(self, node: exp.Expr) -> dict[str, T]:
        if isinstance(node, exp.Table):
            if node.name in self.ctes:
                return self.ctes[node.name]
            from sde.omop.cdm import CDM

            if not CDM.has_table(node.name):
                return {}
            table = CDM.table(node.name)
            return {c: cdm_column(node.name, c) or ANY for c in table.column_names}
        if isinstance(node, exp.Subquery):
            return self.query(node.this)
        raise self.not_total(node.sql()[:60], "only tables and subqueries can be read")

    def _select(self, sel: exp.Select) -> dict[str, T]:
        """Every clause of ``sel`` (an unknown clause is refused): HAVING and QUALIFY of a
        subquery filter rows like WHERE, and can fail like it."""
        for arg, value in sel.args.items():
            if value and arg not in _CLAUSES:
                raise self.not_total(f"the {arg.upper()} clause", "it is not checked")
        env: Env = {}
        outputs: dict[str, T] = {}
        self.envs.append(env)
        self.outputs.append(outputs)
        try:
            self._sources(sel, env)
            self._clauses(sel, env)
        finally:
            self.envs.pop()
            self.outputs.pop()
        return outputs

    def _sources(self, sel: exp.Select, env: Env) -> None:
        """FROM and JOIN items in order; each sees the ones before it (LATERAL)."""
        from_ = sel.args.get("from_")
        if from_ is not None:
            env[from_.this.alias_or_name] = self._relation(from_.this)
        for join in sel.args.get("joins") or []:
            unknown = [k for k, v in join.args.items() if v and k not in self.join_parts]
            if unknown:
                raise self.not_total(f"JOIN ... {unknown[0].upper()}", "write JOIN ... ON")
            env[join.this.alias_or_name] = self._relation(join.this)
            if join.args.get("on") is not None:
                self.condition(join.args["on"])

    def _clauses(self, sel: exp.Select, env: Env) -> None:
        if sel.args.get("where") is not None:
            self.condition(sel.args["where"].this)
        group = sel.args.get("group")
        if group is not None and any(v for k, v in group.args.items() if k != "expressions"):
            raise self.not_total("ROLLUP, CUBE or GROUPING SETS", "it is not checked")
        for g in group.expressions if group is not None else []:
            if not (isinstance(g, exp.Literal) and not g.is_string):
                self.expr(g)
        for p in sel.expressions:
            self.outputs[-1].update(self._projection(p, env))
        distinct = sel.args.get("distinct")
        on = distinct.args.get("on") if isinstance(distinct, exp.Distinct) else None
        for e in on.expressions if isinstance(on, exp.Tuple) else [on] if on else []:
            self.expr(e)
        for clause in ("having", "qualify"):
            if sel.args.get(clause) is not None:
                self.condition(sel.args[clause].this)
        self._order(sel)

    def _projection(self, p: exp.Expr, env: Env) -> dict[str, T]:
        if isinstance(p, exp.Star) or (isinstance(p, exp.Column) and p.is_star):
            rels = [env[p.table]] if isinstance(p, exp.Column) and p.table in env else env.values()
            return {k: v for r in rels for k, v in r.items()}
        return {p.alias_or_name: self.expr(p.unalias())}

    def _order(self, sel: exp.Select) -> None:
        order = sel.args.get("order")
        for o in order.expressions if order is not None else []:
            if not isinstance(o.this, exp.Column | exp.Literal):
                self.expr(o.this)

    # -- expressions ----------------------------------------------------------------------

    def condition(self, e: exp.Expr) -> None:
        t = self.expr(e)
        if t.family not in {"bool", "null"}:
            raise self.not_total(e.sql()[:80], "a condition must be a comparison or a boolean")

    def expr(self, e: exp.Expr) -> T:
        for kinds, handler in self.handlers():
            if isinstance(e, kinds):
                t = self.types[id(e)] = handler(self, e)
                return t
        name = _fname(e)
        raise self.not_total(name.upper(), "it is not on the list of constructs that cannot fail")

    def column(self, c: exp.Column) -> T:
        for env, outputs in zip(reversed(self.envs), reversed(self.outputs), strict=True):
            if c.table:
                if c.table in env:
                    return env[c.table].get(c.name, ANY)
                continue
            found = [r[c.name] for r in env.values() if c.name in r]
            if len(found) == 1 or (found and all(f == found[0] for f in found)):
                return found[0]
            if c.name in outputs:  # an output alias (GROUP BY / ORDER BY name)
                return outputs[c.name]
        return ANY

    # -- rewrites -------------------------------------------------------------------------

    def numeric(self, e: exp.Expr, what: str) -> T:
        t = self.expr(e)
        if not t.numeric and t.family != "null":
            raise self.not_total(what, f"it needs numbers, and {e.sql()[:60]} is not a number")
        return t

    def sanitised(self, e: exp.Expr, t: T, limit: float = BIG) -> T:
        """A float operand clamped to [-limit, limit] (NaN to limit); ints are left alone."""
        if t.family != "float" or t.within(-limit, limit):
            return t
        lim = exp.Literal.number(repr(limit))
        neg = exp.Neg(this=lim.copy())
        clamp = exp.Least(
            this=exp.Greatest(this=e.copy(), expressions=[neg]), expressions=[lim.copy()]
        )
        e.replace(clamp)
        return FLOAT.span(max(t.lo, -limit), min(t.hi, limit))

    def widened(self, e: exp.Expr, t: T) -> T:
        """An integer operand computed in BIGINT (literals are left alone)."""
        if t.family == "int" and not isinstance(e, exp.Literal):
            e.replace(exp.Cast(this=e.copy(), to=exp.DataType.build("BIGINT")))
        return t


def _binary(c: Checker, e: exp.Binary) -> T:
    a = c.numeric(e.this, f"{e.key.upper()} ({e.sql()[:40]})")
    b = c.numeric(e.expression, f"{e.key.upper()} ({e.sql()[:40]})")
    if NULL in (a, b):
        return NULL
    if a.family == b.family == "int":
        return _int_arith(c, e, a, b)
    if isinstance(e, exp.Mod | exp.IntDiv):
        raise c.not_total("% on non-integers", "use integers")
    a = c.sanitised(e.this, a)
    if isinstance(e, exp.Div):
        return _float_div(c, e, a, b)
    b = c.sanitised(e.expression, b)
    lo, hi = _interval(e, a, b)
    return FLOAT.span(lo, hi)


def _interval(e: exp.Expr, a: T, b: T) -> tuple[float, float]:
    if isinstance(e, exp.Add):
        return a.lo + b.lo, a.hi + b.hi
    if isinstance(e, exp.Sub):
        return a.lo - b.hi, a.hi - b.lo
    products = [x * y for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    return min(products), max(products)


def _int_arith(c: Checker, e: exp.Binary, a: T, b: T) -> T:
    if isinstance(e, exp.Div | exp.Mod | exp.IntDiv):
        c.widened(e.this, a)
        d = e.expression
        if not (isinstance(d, exp.Literal) and float(d.this) != 0):
            d.replace(
                exp.Nullif(
                    this=exp.Cast(this=d.copy(), to=exp.DataType.build("BIGINT")),
                    expression=exp.Literal.number(0),
                )
            )
        return T("int", -a.mag, a.mag)
    lo, hi = _interval(e, a, b)
    if max(abs(lo), abs(hi)) > BIGINT_MAX:
        raise c.not_total(
            f"integer arithmetic {e.sql()[:60]}",
            "its result could overflow; compute it in DOUBLE (CAST(x AS DOUBLE)) instead",
        )
    c.widened(e.this, a)
    c.widened(e.expression, b)
    return T("int", lo, hi)


def _float_div(c: Checker, e: exp.Div, a: T, b: T) -> T:
    d = e.expression
    if isinstance(d, exp.Literal) and abs(float(d.this)) >= TINY and b.finite:
        m = a.mag / abs(float(d.this))
        return FLOAT.span(-m, m)
    b = c.sanitised(d, b)
    d = e.expression
    guard = exp.If(
        this=exp.GTE(this=exp.Abs(this=d.copy()), expression=exp.Literal.number(repr(TINY))),
        true=d.copy(),
    )
    d.replace(exp.Case(ifs=[guard]))
    m = a.mag / TINY
    return FLOAT.span(-m, m)


def _neg(c: Checker, e: exp.Neg) -> T:
    t = c.numeric(e.this, "unary minus")
    c.widened(e.this, t)
    return t.span(-t.hi, -t.lo) if t.numeric else t


def _comparison(c: Checker, e: exp.Binary) -> T:
    a, b = c.expr(e.this), c.expr(e.expression)
    if "any" in (a.family, b.family) or not _comparable(a, b):
        raise c.not_total(
            f"comparing {e.this.sql()[:40]} with {e.expression.sql()[:40]}",
            "the two sides have different types, so the engine would cast one (which can fail)",
        )
    return BOOL


def _logical(c: Checker, e: exp.Expr) -> T:
    for child in (e.this, e.args.get("expression")):
        if child is not None:
            c.condition(child)
    return BOOL


def _between(c: Checker, e: exp.Between) -> T:
    for side in ("low", "high"):
        _comparison(c, exp.EQ(this=e.this, expression=e.args[side]))
    return BOOL


def _in(c: Checker, e: exp.In) -> T:
    a = c.expr(e.this)
    query = e.args.get("query")
    options = list(c.query(query).values())[:1] if query is not None else []
    options += [c.expr(x) for x in e.expressions]
    for b in options:
        if "any" in (a.family, b.family) or not _comparable(a, b):
            raise c.not_total(f"IN on {e.this.sql()[:40]}", "the values have a different type")
    if e.args.get("unnest") is not None or e.args.get("field") is not None:
        raise c.not_total("IN UNNEST", "only lists and subqueries are checked")
    return BOOL


def _like(c: Checker, e: exp.Binary) -> T:
    pattern = e.expression
    if c.expr(e.this).family not in {"text", "null"}:
        raise c.not_total("LIKE", "it needs text")
    if not (isinstance(pattern, exp.Literal) and pattern.is_string) or "\\" in pattern.this:
        raise c.not_total("LIKE", "the pattern must be a string literal without backslashes")
    return BOOL


def _case(c: Checker, e: exp.Expr) -> T:
    branches: list[Any] = []
    if isinstance(e, exp.If):
        c.condition(e.this)
        branches = [e.args["true"], e.args.get("false")]
    else:
        if e.this is not None:
            raise c.not_total("CASE x WHEN ...", "write CASE WHEN x = ... THEN")
        for i in e.args.get("ifs") or []:
            c.condition(i.this)
            branches.append(i.args["true"])
        branches.append(e.args.get("default"))
    return _unify_all(c, [b for b in branches if b is not None], "CASE branches")


def _unify_all(c: Checker, nodes: list[exp.Expr], what: str) -> T:
    out = NULL
    for n in nodes:
        u = unify(out, c.expr(n))
        if u is None or u.family == "any":
            raise c.not_total(what, "values of different types would be cast by the engine")
        out = u
    return out


def _coalesce(c: Checker, e: exp.Expr) -> T:
    return _unify_all(c, [e.this, *e.expressions], _fname(e))


def _nullif(c: Checker, e: exp.Nullif) -> T:
    _comparison(c, exp.EQ(this=e.this, expression=e.expression))
    return c.expr(e.this)


def _extreme(c: Checker, e: exp.Expr) -> T:
    args = [e.this, *e.expressions]
    ts = [c.expr(a) for a in args]
    out = _unify_all(c, args, _fname(e))
    if not out.numeric:
        return out
    pick = max if isinstance(e, exp.Greatest) else min
    return out.span(pick(t.lo for t in ts), pick(t.hi for t in ts))


def _cast(c: Checker, e: exp.Cast) -> T:
    t = c.expr(e.this)
    to = e.to
    target = _cast_target(to)
    if target is None:
        raise c.not_total(f"CAST to {to.sql()}", "only DOUBLE, BIGINT, INTEGER, TEXT, DATE casts")
    if target.family == "text" and t.family != "any":
        return _as_text(t)
    if t.family == "null":
        return target
    if (
        target.numeric
        and t.numeric
        and (target.family == "float" or t.within(target.lo, target.hi))
    ):
        return target.span(t.lo, t.hi) if t.finite or target.family == "int" else target
    if target.family in {"date", "timestamp"} and t.family in {"date", "timestamp"}:
        return target
    if t.literal is not None and _fits(t.literal, target):
        return target
    raise c.not_total(
        f"CAST({e.this.sql()[:40]} AS {to.sql()})",
        "this cast can fail on some values (only numbers to DOUBLE, numbers within range to "
        "integers, anything to TEXT and dates to dates cannot)",
    )


def _as_text(t: T) -> T:
    """The type of ``CAST(x AS TEXT)``: text keeps its length, anything else is short."""
    return T("text", chars=t.chars if t.family == "text" else SCALAR_CHARS)


def _fits(text: str, target: T) -> bool:
    from sde.dp.types import literal_fits

    return literal_fits(text, target)


_CASTS: dict[Any, T] = {
    exp.DataType.Type.DOUBLE: FLOAT,
    exp.DataType.Type.FLOAT: FLOAT,
    exp.DataType.Type.BIGINT: T("int", -BIGINT_MAX, BIGINT_MAX),
    exp.DataType.Type.INT: T("int", -(2.0**31), 2.0**31 - 1),
    exp.DataType.Type.TEXT: TEXT,
    exp.DataType.Type.DATE: T("date"),
    exp.DataType.Type.TIMESTAMP: T("timestamp"),
}


def _cast_target(to: exp.DataType) -> T | None:
    if to.this == exp.DataType.Type.VARCHAR and not to.expressions:
        return TEXT
    return None if to.expressions else _CASTS.get(to.this)


def _abs(c: Checker, e: exp.Abs) -> T:
    t = c.numeric(e.this, "ABS")
    c.widened(e.this, t)
    return t.span(0.0, t.mag) if t.numeric else t


def _rounding(c: Checker, e: exp.Expr) -> T:
    t = c.numeric(e.this, _fname(e))
    digits = e.args.get("decimals") or e.args.get("expression")
    if digits is not None and not (isinstance(digits, exp.Literal) and not digits.is_string):
        raise c.not_total(_fname(e), "the number of digits must be a literal")
    if t.family == "float":
        t = c.sanitised(e.this, t, EXACT)
    return t.span(t.lo - 1, t.hi + 1) if t.numeric else t


def _text_fn(c: Checker, e: exp.Expr) -> T:
    chars = 0.0
    for arg in [e.this, *e.expressions]:
        t = c.expr(arg)
        if t.family not in {"text", "null"}:
            raise c.not_total(_fname(e), "it needs text")
        chars = max(chars, t.chars if t.family == "text" else 0.0)
    for name in ("start", "length", "expression"):
        v = e.args.get(name)
        if v is not None and not (isinstance(v, exp.Literal) and v.is_int and int(v.this) >= 0):
            raise c.not_total(_fname(e), "positions and lengths must be non-negative literals")
    if isinstance(e, exp.Length):
        return T("int", 0, 2.0**31)
    return T("text", chars=_text_chars(e, chars))


def _text_chars(e: exp.Expr, chars: float) -> float:
    """The most characters a text function returns, from its argument's."""
    if isinstance(e, exp.MD5):
        return 32.0
    if isinstance(e, exp.Lower | exp.Upper | exp.Initcap):
        return 3.0 * chars  # full case mapping (Spark's Java) can triple a character
    cut = (
        e.args.get("length")
        if isinstance(e, exp.Substring)
        else e.args.get("expression")
        if isinstance(e, exp.Left | exp.Right)
        else None
    )
    if isinstance(cut, exp.Literal) and cut.is_int:
        return min(chars, float(cut.this))
    return chars


def _concat(c: Checker, e: exp.Expr) -> T:
    chars = 0.0
    for arg in e.expressions if not isinstance(e, exp.DPipe) else [e.this, e.expression]:
        t = c.expr(arg)
        if t.family == "any":
            raise c.not_total("concatenation", f"the type of {arg.sql()[:40]} is unknown")
        chars += t.chars if t.family == "text" else SCALAR_CHARS if t.family != "null" else 0.0
    if chars > c.max_chars:
        raise c.not_total(
            f"concatenation {e.sql()[:40]}",
            f"its result could hold {chars:.3g} characters, more than {c.max_chars:,.0f}: "
            "text that grows only on some rows would make the run's time and memory "
            "depend on them",
        )
    return T("text", chars=chars)


def _date_part(c: Checker, e: exp.Expr) -> T:
    arg = e.expression if isinstance(e, exp.Extract) else e.this
    if c.expr(arg).family not in {"date", "timestamp", "null"}:
        raise c.not_total(_fname(e), "it needs a date or timestamp")
    if isinstance(e, exp.Extract) and e.this.name.lower() == "epoch":
        return FLOAT.span(-1e12, 1e12)
    return T("int", -1e6, 1e6)


def _trunc(c: Checker, e: exp.Expr) -> T:
    if c.expr(e.this).family not in {"date", "timestamp", "null"}:
        raise c.not_total(_fname(e), "it needs a date or timestamp")
    return T("timestamp")


def _aggregate(c: Checker, e: exp.AggFunc) -> T:
    if isinstance(e, exp.Count):
        if e.this is not None and not isinstance(e.this, exp.Star):
            c.expr(e.this)
        return T("int", 0, c.max_count)
    t = c.expr(e.this)
    if isinstance(e, exp.Min | exp.Max):
        return t
    if not t.numeric and t.family != "null":
        raise c.not_total(_fname(e), f"{e.this.sql()[:40]} is not a number")
    if c.guarded(e):  # the DP rewrite guards the aggregated value itself
        return FLOAT
    if t.family == "int" and isinstance(e, exp.Sum):
        m = t.mag * c.max_rows
        if m > BIGINT_MAX:
            raise c.not_total("SUM of these integers", "it could overflow; SUM(CAST(x AS DOUBLE))")
        return T("int", -m, m)
    t = c.sanitised(e.this, t)
    return FLOAT.span(-t.mag * c.max_rows, t.mag * c.max_rows)


def _percentile(c: Checker, e: exp.Expr) -> T:
    fn = e.this
    if isinstance(e, exp.WithinGroup):
        q = fn.this if isinstance(fn, exp.PercentileCont | exp.PercentileDisc) else None
        value = e.expression.expressions[0].this if e.expression.expressions else None
    else:
        q, value = e.args.get("expression"), e.this
    if not (isinstance(q, exp.Literal) and not q.is_string and 0 <= float(q.this) <= 1):
        raise c.not_total("a percentile", "its fraction must be a literal between 0 and 1")
    if value is None:
        raise c.not_total("a percentile", "it needs one ORDER BY value")
    t = c.numeric(value, "a percentile")
    if not c.guarded(e, windows=False):
        c.sanitised(value, t)
    return FLOAT


def check_frame(c: Checker, e: exp.Window) -> None:
    """Window frame bounds must be whole-number literals (an offset can fail, e.g. < 0)."""
    spec = e.args.get("spec")
    for bound in (spec.args.get("start"), spec.args.get("end")) if spec is not None else ():
        literal = isinstance(bound, exp.Literal) and bound.is_int
        if bound is not None and not literal and str(bound).upper() not in _FRAME_WORDS:
            raise c.not_total("this window frame", "frame bounds must be whole-number literals")


def _window(c: Checker, e: exp.Window) -> T:
    for p in e.args.get("partition_by") or []:
        c.expr(p)
    order = e.args.get("order")
    for o in order.expressions if order is not None else []:
        c.expr(o.this)
    check_frame(c, e)
    fn = e.this
    if isinstance(fn, exp.RowNumber | exp.Rank | exp.DenseRank):
        return T("int", 0, c.max_count)
    if isinstance(fn, exp.Lag | exp.Lead | exp.FirstValue | exp.LastValue):
        off = fn.args.get("offset")
        if off is not None and not (isinstance(off, exp.Literal) and off.is_int):
            raise c.not_total(_fname(fn), "the offset must be a literal")
        return c.expr(fn.this)
    if isinstance(fn, exp.AggFunc):
        return _aggregate(c, fn)
    raise c.not_total(_fname(fn) if isinstance(fn, exp.Func) else "this window", "not checked")


def _scalar_subquery(c: Checker, e: exp.Subquery) -> T:
    outs = list(c.query(e.this).values())
    return outs[0] if len(outs) == 1 else ANY


def _exists(c: Checker, e: exp.Exists) -> T:
    c.query(e.this)
    return BOOL


def _is(c: Checker, e: exp.Is) -> T:
    c.expr(e.this)
    if not isinstance(e.expression, exp.Null | exp.Boolean):
        raise c.not_total("IS", "only IS [NOT] NULL / TRUE / FALSE")
    return BOOL


def _distinct(c: Checker, e: exp.Distinct) -> T:
    ts = [c.expr(x) for x in e.expressions]
    return ts[0] if len(ts) == 1 else ANY


def _sign(c: Checker, e: exp.Expr) -> T:
    c.numeric(e.this, _fname(e))
    return T("int", -1, 1)


def _fname(e: Any) -> str:
    """The SQL name of a function node (its class name otherwise)."""
    return str(e.sql_name()) if isinstance(e, exp.Func) else type(e).__name__


def _leaf(t: T) -> Callable[[Checker, Any], T]:
    return lambda c, e: t


_HANDLERS: tuple[tuple[Any, Callable[[Checker, Any], T]], ...] = (
    (exp.Paren, lambda c, e: c.expr(e.this)),
    (exp.Literal, lambda c, e: literal(e)),
    (exp.Boolean, _leaf(BOOL)),
    (exp.Null, _leaf(NULL)),
    (exp.Column, lambda c, e: c.column(e)),
    (exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod | exp.IntDiv, _binary),
    (exp.Neg, _neg),
    (exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE, _comparison),
    (exp.NullSafeEQ | exp.NullSafeNEQ, _comparison),
    (exp.And | exp.Or | exp.Not, _logical),
    (exp.Between, _between),
    (exp.In, _in),
    (exp.Like | exp.ILike, _like),
    (exp.Is, _is),
    (exp.Case | exp.If, _case),
    (exp.Coalesce, _coalesce),
    (exp.Nullif, _nullif),
    (exp.Greatest | exp.Least, _extreme),
    (exp.Cast, _cast),  # TryCast is a Cast: the same rules (then it cannot fail either)
    (exp.Abs, _abs),
    (exp.Sign, _sign),
    (exp.Round | exp.Floor | exp.Ceil, _rounding),
    (exp.Lower | exp.Upper | exp.Trim | exp.Length | exp.Initcap | exp.MD5, _text_fn),
    (exp.Substring | exp.Left | exp.Right, _text_fn),
    (exp.Concat | exp.DPipe, _concat),
    (exp.Extract | exp.Year | exp.Month | exp.Day | exp.Quarter, _date_part),
    (exp.DayOfWeek | exp.DayOfMonth | exp.DayOfYear | exp.WeekOfYear, _date_part),
    (exp.DateTrunc | exp.TimestampTrunc, _trunc),
    (exp.CurrentDate, _leaf(T("date"))),
    (exp.CurrentTimestamp, _leaf(T("timestamp"))),
    (exp.WithinGroup | exp.PercentileCont | exp.PercentileDisc | exp.Quantile, _percentile),
    (exp.Median, _aggregate),
    (exp.Window, _window),
    (exp.Count | exp.Sum | exp.Avg | exp.Min | exp.Max, _aggregate),
    (exp.Stddev | exp.StddevPop | exp.StddevSamp | exp.Variance | exp.VariancePop, _aggregate),
    (exp.Subquery, _scalar_subquery),
    (exp.Exists, _exists),
    (exp.Distinct, _distinct),
    (exp.Star, _leaf(ANY)),
)

__all__ = ["BIG", "TINY", "Checker", "Env", "check_frame", "make_total", "math", "not_total"]
