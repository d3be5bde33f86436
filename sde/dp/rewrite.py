"""Rewrite an analysed aggregate into exact, mergeable per-cell totals (SmartNoise's scheme).

The researcher's FROM/JOIN/WHERE (and CTEs) run unchanged; on the rows they produce:

1. **project**: the person id, each group key, each aggregated value;
2. **truncate per person**: keep at most ``groups`` groups per person and ``rows`` rows per
   person in each group. The order is a salted hash of the person's *own* rows and groups
   (``ROW_NUMBER``/``DENSE_RANK`` partitioned by person; only persons over the cap are
   numbered), so which rows a person keeps never depends on anyone else's data, and the
   same query truncates the same way every time;
3. **clamp and round**: each value is clamped to its bounds and rounded to an integer grid
   (``resolution``), so sums are exact integers: no floating-point summation error can
   exceed the declared sensitivity;
4. **aggregate exactly**: per cell, counts and integer sums (plus a histogram on the
   candidate grid for quantiles).

Every statistic is a sum over persons, so partial results from several nodes merge by
addition (a person lives on one node): the noise step runs once, on the merged totals.

>>> from sde.dp.analyse import analyse
>>> plan = rewrite(analyse("SELECT COUNT(*) FROM person"), rows=1, groups=1, salt="s")
>>> plan.stats
['n_rows']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from sde.dp.analyse import Aggregate, Analysis
from sde.dp.metadata import Bounds


@dataclass(frozen=True)
class Slot:
    """One value column of the truncated relation."""

    index: int
    expr: exp.Expression
    bounds: Bounds | None

    @property
    def b(self) -> Bounds:
        """The bounds of a bounded slot (COUNT(x) and COUNT(DISTINCT) slots have none)."""
        if self.bounds is None:
            raise ValueError(f"{self.expr.sql()} has no bounds")
        return self.bounds

    @property
    def lo_u(self) -> int:
        return math.ceil(self.b.lower / self.b.resolution - 1e-9)

    @property
    def hi_u(self) -> int:
        return math.floor(self.b.upper / self.b.resolution + 1e-9)

    @property
    def mid_u(self) -> int:
        return (self.lo_u + self.hi_u) // 2

    @property
    def half_u(self) -> int:
        """Largest |q - mid| on the grid: the per-row sensitivity of a centred sum."""
        return max(self.hi_u - self.mid_u, self.mid_u - self.lo_u)

    @property
    def abs_u(self) -> int:
        """Largest |q| on the grid: the per-row sensitivity of a plain sum."""
        return max(abs(self.lo_u), abs(self.hi_u))

    def step_u(self, max_candidates: int) -> int:
        """Grid step (in units) between quantile candidates."""
        span = self.hi_u - self.lo_u
        return max(1, math.ceil(span / max(max_candidates - 1, 1)))

    def candidates(self, max_candidates: int) -> list[float]:
        step = self.step_u(max_candidates)
        return [
            (self.lo_u + j * step) * self.b.resolution
            for j in range((self.hi_u - self.lo_u) // step + 1)
        ]


@dataclass
class ExactPlan:
    """The SQL for exact totals and the names of what it returns."""

    sql: str
    key_cols: list[str]
    stats: list[str]
    slots: list[Slot]
    #: Slot index -> (histogram SQL, step in grid units).
    histograms: dict[int, tuple[str, int]] = field(default_factory=dict)


def slots_of(a: Analysis) -> tuple[list[Slot], dict[int, int]]:
    """Distinct value columns, and for each aggregate (by position) its slot index."""
    slots: list[Slot] = []
    by_agg: dict[int, int] = {}
    for i, agg in enumerate(a.aggregates):
        if agg.value is None or (agg.kind == "count_persons" and _is_root(agg, a)):
            continue
        key = (agg.value.sql(), agg.bounds)
        for s in slots:
            if (s.expr.sql(), s.bounds) == key:
                by_agg[i] = s.index
                break
        else:
            slots.append(Slot(len(slots), agg.value, agg.bounds))
            by_agg[i] = len(slots) - 1
    return slots, by_agg


def _is_root(agg: Aggregate, a: Analysis) -> bool:
    v = agg.value
    return isinstance(v, exp.Column) and v.name == a.pid.name and v.table in {"", a.pid.table}


def stat_names(
    a: Analysis, slots: list[Slot], by_agg: dict[int, int], threshold: bool
) -> list[str]:
    names: list[str] = []

    def add(n: str) -> None:
        if n not in names:
            names.append(n)

    for i, agg in enumerate(a.aggregates):
        j = by_agg.get(i)
        if agg.kind == "count":
            add("n_rows")
        elif agg.kind == "count_persons":
            add("n_persons" if j is None else f"np_{j}")
        elif agg.kind == "count_value":
            add(f"cnt_{j}")
        elif agg.kind == "sum":
            add(f"s_{j}")
        elif agg.kind == "avg":
            add(f"n_{j}")
            add(f"cs_{j}")
        elif agg.kind in {"var", "std"}:
            add(f"n_{j}")
            add(f"cs_{j}")
            add(f"css_{j}")
    for s in slots:
        if s.bounds is not None:
            add(f"n_{s.index}")
            add(f"clamped_{s.index}")
    if threshold:
        add("n_persons")
    return names


def rewrite(
    a: Analysis,
    *,
    rows: int,
    groups: int,
    salt: str,
    threshold: bool = False,
    max_candidates: int = 1000,
    cap_groups: bool = True,
) -> ExactPlan:
    """The exact-totals SQL (in the query's dialect) for ``a`` under the given truncation.

    ``cap_groups=False`` drops the group cap when it cannot bind (no more public cells than
    ``groups``): the bound holds without it.
    """
    slots, by_agg = slots_of(a)
    stats = stat_names(a, slots, by_agg, threshold)
    d = a.dialect
    keys = [f"_dp_k{i}" for i in range(len(a.keys))]
    vals = [f"_dp_v{s.index}" for s in slots]
    chain = _chain(
        a, slots, keys, vals, rows=rows, groups=groups if cap_groups else None, salt=salt
    )

    select = ", ".join([*keys, *(f"{_stat_sql(n, slots)} AS {n}" for n in stats)])
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    sql = _normalise(f"{chain} SELECT {select} FROM _dp_t{group}", d)

    histograms: dict[int, tuple[str, int]] = {}
    for i, agg in enumerate(a.aggregates):
        if agg.kind != "quantile":
            continue
        s = slots[by_agg[i]]
        if s.index in histograms:
            continue
        step = s.step_u(max_candidates)
        bin_ = f"CAST(FLOOR(CAST(_dp_q{s.index} - {s.lo_u} AS DOUBLE) / {step}) AS BIGINT)"
        cols = ", ".join([*keys, f"{bin_} AS _dp_bin", "COUNT(*) AS n"])
        grp = ", ".join([*keys, bin_])
        histograms[s.index] = (
            _normalise(
                f"{chain} SELECT {cols} FROM _dp_t WHERE _dp_q{s.index} IS NOT NULL GROUP BY {grp}",
                d,
            ),
            step,
        )
    return ExactPlan(sql, keys, stats, slots, histograms)


def _chain(
    a: Analysis,
    slots: list[Slot],
    keys: list[str],
    vals: list[str],
    *,
    rows: int,
    groups: int | None,
    salt: str,
) -> str:
    d = a.dialect
    src = a.tree.copy()
    for arg in ("with_", "group", "order", "limit", "having", "distinct"):
        src.set(arg, None)
    projections: list[Any] = [exp.alias_(a.pid.copy(), "_dp_pid")]
    projections += [exp.alias_(k.expr.copy(), n) for k, n in zip(a.keys, keys, strict=True)]
    projections += [exp.alias_(s.expr.copy(), n) for s, n in zip(slots, vals, strict=True)]
    src.set("expressions", projections)

    user_ctes = ""
    with_ = a.tree.args.get("with_")
    if with_ is not None:
        user_ctes = ", ".join(c.sql(dialect=d) for c in with_.expressions) + ", "

    salt_lit = "'" + salt.replace("'", "") + "'"

    numeric = {n for k, n in zip(a.keys, keys, strict=True) if k.numeric}

    def txt(c: str) -> str:
        inner = f"CAST({c} AS DECIMAL(38, 6))" if c in numeric else c
        return f"COALESCE(CAST({inner} AS TEXT), '')"

    # Clamp and round first, so the row hash sees grid integers (identical text on every
    # engine) rather than engine-specific renderings of floats.
    cols = ["_dp_pid", *keys]
    hashed: list[str] = []  # person and keys are constant within a truncation partition
    mixed: list[str] = []  # grid integers, hashed arithmetically (cheap, same on all engines)
    derived = []
    for s, v in zip(slots, vals, strict=True):
        cols.append(v)
        if s.bounds is None:
            hashed.append(v)
            continue
        b = s.bounds
        q = (
            f"LEAST(GREATEST(CAST(ROUND(CAST({v} AS DOUBLE) / {b.resolution!r}) AS BIGINT), "
            f"{s.lo_u}), {s.hi_u})"
        )
        derived.append(f"CASE WHEN {v} IS NULL THEN NULL ELSE {q} END AS _dp_q{s.index}")
        derived.append(
            f"CASE WHEN {v} < {b.lower!r} OR {v} > {b.upper!r} THEN 1 ELSE 0 END AS _dp_c{s.index}"
        )
        cols += [f"_dp_q{s.index}", f"_dp_c{s.index}"]
        mixed.append(f"COALESCE(_dp_q{s.index} - {s.lo_u} + 1, 0)")

    group_hash = f"MD5(CONCAT({salt_lit}, {', '.join(txt(c) for c in ['_dp_pid', *keys])}))"
    part = ", ".join(["_dp_pid", *keys])
    values = ", ".join(["_dp_pid", *keys, *vals, *derived])
    out = ", ".join(cols)
    ctes = [f"_dp_src AS ({src.sql(dialect=d)})", f"_dp_v AS (SELECT {values} FROM _dp_src)"]
    source = "_dp_v"
    if keys and groups is not None:
        ctes += _group_cap(out, keys, group_hash, groups)
        source = "_dp_g"
    r = int(rows)
    order = _row_order(salt, hashed, mixed, txt)
    if not order:  # rows are interchangeable (COUNT(*)): number them in any order, in one pass
        # Spark refuses ROW_NUMBER without ORDER BY; ordering by the partition key is a no-op
        # that every engine accepts.
        ctes.append(
            f"_dp_t AS (SELECT {out} FROM (SELECT {out}, ROW_NUMBER() OVER (PARTITION BY {part} "
            f"ORDER BY _dp_pid) AS _dp_n FROM {source}) AS _dp_y WHERE _dp_n <= {r})"
        )
    else:
        # Rows: persons with at most ``rows`` rows in a group keep them all; only the others
        # are numbered (a window over few rows instead of a sort of every row).
        ctes.append(
            f"_dp_w AS (SELECT {out}, COUNT(*) OVER (PARTITION BY {part}) AS _dp_n FROM {source})"
        )
        ctes.append(
            f"_dp_t AS (SELECT {out} FROM _dp_w WHERE _dp_n <= {r} UNION ALL SELECT {out} FROM "
            f"(SELECT {out}, ROW_NUMBER() OVER (PARTITION BY {part}{order}) AS _dp_rn FROM _dp_w "
            f"WHERE _dp_n > {r}) AS _dp_h WHERE _dp_rn <= {r})"
        )
    return f"WITH {user_ctes}" + ", ".join(ctes)


def _group_cap(out: str, keys: list[str], group_hash: str, groups: int) -> list[str]:
    """CTEs keeping at most ``groups`` groups per person.

    A person whose keys are constant has one group and keeps it; only persons with several
    groups are ranked (by a salted hash of person and key).
    """
    by_person = "OVER (PARTITION BY _dp_pid)"
    stats = [f"COUNT(*) {by_person} AS _dp_np"]
    single = []
    for i, k in enumerate(keys):
        stats += [
            f"MIN({k}) {by_person} AS _dp_mn{i}",
            f"MAX({k}) {by_person} AS _dp_mx{i}",
            f"COUNT({k}) {by_person} AS _dp_kc{i}",
        ]
        single.append(f"((_dp_mn{i} = _dp_mx{i} AND _dp_kc{i} = _dp_np) OR _dp_kc{i} = 0)")
    one = " AND ".join(single)
    return [
        f"_dp_g1 AS (SELECT {out}, {', '.join(stats)} FROM _dp_v)",
        f"_dp_g AS (SELECT {out} FROM _dp_g1 WHERE {one} UNION ALL SELECT {out} FROM "
        f"(SELECT {out}, DENSE_RANK() OVER (PARTITION BY _dp_pid ORDER BY {group_hash}, "
        f"{', '.join(keys)}) AS _dp_gr FROM _dp_g1 WHERE NOT ({one})) AS _dp_x "
        f"WHERE _dp_gr <= {int(groups)})",
    ]


_M = 2147483647  # 2^31 - 1, prime
_A = 1103515245


def _row_order(salt: str, hashed: list[str], mixed: list[str], txt: Any) -> str:
    """ORDER BY of a person's rows within a group: a hash of the row's own values only.

    Grid integers are mixed arithmetically (``h = (h * A + x) * A mod M``: every product stays
    below 2^62, and ``%`` of non-negative numbers agrees across engines); other values fall
    back to MD5 of their text. Rows with equal values are interchangeable for every
    statistic, so ties need no order. With no values at all (``COUNT(*)``) any order will do.
    """
    if hashed:
        salt_lit = "'" + salt.replace("'", "") + "'"
        md5 = f"MD5(CONCAT({salt_lit}, {', '.join(txt(c) for c in hashed)}))"
        return f" ORDER BY {md5}" + (f", {_mix(salt, mixed)}" if mixed else "")
    if mixed:
        return f" ORDER BY {_mix(salt, mixed)}"
    return ""


def _mix(salt: str, parts: list[str]) -> str:
    h = f"CAST({int.from_bytes(salt.encode()[:8].ljust(8, b'0'), 'big') % _M} AS BIGINT)"
    for p in parts:
        h = f"(((({h}) * {_A} + {p}) % {_M}) * {_A}) % {_M}"
    return h


def _stat_sql(name: str, slots: list[Slot]) -> str:
    if name == "n_rows":
        return "COUNT(*)"
    if name == "n_persons":
        return "COUNT(DISTINCT _dp_pid)"
    kind, _, idx = name.rpartition("_")
    s = slots[int(idx)]
    q = f"_dp_q{s.index}"
    centred = f"({q} - {s.mid_u if s.bounds else 0})"
    return {
        "np": f"COUNT(DISTINCT _dp_v{s.index})",
        "cnt": f"COUNT(_dp_v{s.index})",
        "n": f"COUNT({q})",
        "s": f"SUM({q})",
        "cs": f"SUM({centred})",
        "css": f"SUM({centred} * {centred})",
        "clamped": f"SUM(_dp_c{s.index})",
    }[kind]


def _normalise(sql: str, dialect: str) -> str:
    """Parse and regenerate: the rewrite is valid SQL of the dialect or it fails here."""
    return sqlglot.transpile(sql, read=dialect, write=dialect)[0]
