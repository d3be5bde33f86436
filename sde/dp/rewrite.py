"""Rewrite an analysed aggregate into exact, mergeable per-cell totals (SmartNoise's scheme).

The researcher's FROM/JOIN/WHERE (and CTEs) run unchanged; on the rows they produce:

1. **project**: the person id, each group key, each aggregated value;
2. **truncate per person**: keep at most ``groups`` groups per person and ``rows`` rows per
   person in each group. One ``GROUP BY`` person finds the few persons a cap may cut; all
   others keep every row untouched. Only the persons over a cap are ranked, in the order
   of a salted hash of the person's *own* groups and rows (``DENSE_RANK``/``ROW_NUMBER``
   partitioned by person), so which rows a person keeps never depends on anyone else's
   data, and the same query truncates the same way every time. Counting-only queries
   truncate in the ``GROUP BY`` itself (``LEAST(COUNT(*), rows)``);
3. **clamp and round**: each value is clamped to its bounds and rounded to an integer grid
   (``resolution``), so sums are exact integers: no floating-point summation error can
   exceed the declared sensitivity;
4. **aggregate exactly**: per cell, counts and integer sums (plus a histogram on the
   candidate grid for quantiles, in the same pass when every other statistic is a sum).

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

import pandas as pd
import sqlglot
from sqlglot import exp

from sde.dp.analyse import Aggregate, Analysis
from sde.dp.metadata import Bounds

#: Truncation strategies (:func:`rewrite`): the same truncated relation either way.
METHODS = ("split", "window")


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
    #: With one histogram and statistics that are all sums over rows: one SQL giving the
    #: totals per (cell, bin) and so the histogram too; :meth:`split` separates them.
    combined: str | None = None

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, pd.DataFrame]]:
        """(totals, {slot: histogram}) from the rows of :attr:`combined`.

        The totals come one row per (cell, bin), to be summed per cell by
        :func:`sde.dp.release.merge` like node partials; the histogram is ``keys...,
        _dp_bin, n`` as the separate histogram SQL returns it, without bin -1 (NULL values).
        """
        ((j, _),) = self.histograms.items()
        totals = frame[[*self.key_cols, *self.stats]].reset_index(drop=True)
        rows = frame.loc[frame[f"_dp_b{j}"] != -1]
        hist = pd.DataFrame(
            {
                **{k: rows[k].to_numpy() for k in self.key_cols},
                "_dp_bin": rows[f"_dp_b{j}"].to_numpy(),
                "n": rows["_dp_hn"].to_numpy(),
            }
        )
        return totals, {j: hist}


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
    method: str = "split",
) -> ExactPlan:
    """The exact-totals SQL (in the query's dialect) for ``a`` under the given truncation.

    ``cap_groups=False`` drops the group cap when it cannot bind (no more public cells than
    ``groups``): the bound holds without it. ``method`` is ``"split"`` (persons within the
    caps found by one GROUP BY and kept whole; only the others truncated row by row) or
    ``"window"`` (every row through per-person windows): the same truncated relation, so the
    same totals, at different cost; ``"window"`` is kept as the reference for the tests.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    slots, by_agg = slots_of(a)
    stats = stat_names(a, slots, by_agg, threshold)
    d = a.dialect
    keys = [f"_dp_k{i}" for i in range(len(a.keys))]
    vals = [f"_dp_v{s.index}" for s in slots]
    chain = _chain(
        a,
        slots,
        keys,
        vals,
        rows=rows,
        groups=groups if cap_groups else None,
        salt=salt,
        split=method == "split",
    )

    counted = method == "split" and not slots
    stat_cols = [f"{_stat_sql(n, slots, counted)} AS {n}" for n in stats]
    select = ", ".join([*keys, *stat_cols])
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    sql = _normalise(f"{chain} SELECT {select} FROM _dp_t{group}", d)

    histograms: dict[int, tuple[str, int]] = {}
    bins: dict[int, str] = {}
    for i, agg in enumerate(a.aggregates):
        if agg.kind != "quantile":
            continue
        s = slots[by_agg[i]]
        if s.index in histograms:
            continue
        step = s.step_u(max_candidates)
        bin_ = f"CAST(FLOOR(CAST(_dp_q{s.index} - {s.lo_u} AS DOUBLE) / {step}) AS BIGINT)"
        bins[s.index] = bin_
        cols = ", ".join([*keys, f"{bin_} AS _dp_bin", "COUNT(*) AS n"])
        grp = ", ".join([*keys, bin_])
        histograms[s.index] = (
            _normalise(
                f"{chain} SELECT {cols} FROM _dp_t WHERE _dp_q{s.index} IS NOT NULL GROUP BY {grp}",
                d,
            ),
            step,
        )
    combined = None
    if len(bins) == 1 and not any(n == "n_persons" or n.startswith("np_") for n in stats):
        # One pass for the totals and the histogram: every other statistic is a sum over
        # rows, so it is computed per (cell, bin) and summed over the bins when merged (as
        # node partials are). Values that are NULL go to bin -1, kept out of the histogram.
        ((j, bin_),) = bins.items()
        cols = ", ".join(
            [*keys, f"COALESCE({bin_}, -1) AS _dp_b{j}", *stat_cols, "COUNT(*) AS _dp_hn"]
        )
        grp = ", ".join([*keys, f"COALESCE({bin_}, -1)"])
        combined = _normalise(f"{chain} SELECT {cols} FROM _dp_t GROUP BY {grp}", d)
    return ExactPlan(sql, keys, stats, slots, histograms, combined)


def _chain(
    a: Analysis,
    slots: list[Slot],
    keys: list[str],
    vals: list[str],
    *,
    rows: int,
    groups: int | None,
    salt: str,
    split: bool = True,
) -> str:
    d = a.dialect
    src = a.tree.copy()
    for arg in ("with_", "group", "order", "limit", "having", "distinct"):
        src.set(arg, None)
    projections: list[Any] = [exp.alias_(a.pid.copy(), "_dp_pid")]
    projections += [
        exp.alias_(_key_expr(k.expr, k.family, d), n) for k, n in zip(a.keys, keys, strict=True)
    ]
    projections += [exp.alias_(s.expr.copy(), n) for s, n in zip(slots, vals, strict=True)]
    src.set("expressions", projections)

    user_ctes = ""
    with_ = a.tree.args.get("with_")
    if with_ is not None:
        user_ctes = ", ".join(c.sql(dialect=d) for c in with_.expressions) + ", "

    salt_lit = "'" + salt.replace("'", "") + "'"

    numeric = {n for k, n in zip(a.keys, keys, strict=True) if k.numeric}

    def txt(c: str) -> str:
        if c not in numeric:
            return f"COALESCE(CAST({c} AS TEXT), '')"
        # DECIMAL text is the same on every engine; the cast cannot fail inside +-1e30
        # (NaN, infinities and huge values are hashed as plain text instead).
        return (
            f"COALESCE(CASE WHEN {c} BETWEEN -1e30 AND 1e30 THEN CAST(CAST({c} AS "
            f"DECIMAL(38, 6)) AS TEXT) ELSE CAST({c} AS TEXT) END, '')"
        )

    # Clamp and round first, so the row hash sees grid integers (identical text on every
    # engine) rather than engine-specific renderings of floats.
    cols = ["_dp_pid", *keys]
    hashed: list[str] = []  # person and keys are constant within a truncation partition
    grid: list[str] = []  # grid integers: their text is the same on every engine
    derived = []
    for s, v in zip(slots, vals, strict=True):
        cols.append(v)
        if s.bounds is None:
            hashed.append(v)
            continue
        b = s.bounds
        # Total on every engine: NaN and infinities become NULL (NaN compares above every
        # number), the value is clamped before it is divided and rounded, so the BIGINT
        # cast is within range (|bound| / resolution <= 2^52: sde.dp.arguments.check_grid).
        dbl = f"CAST({v} AS DOUBLE)"
        clamped = f"LEAST(GREATEST({dbl}, {b.lower!r}), {b.upper!r})"
        q = (
            f"LEAST(GREATEST(CAST(ROUND({clamped} / {b.resolution!r}) AS BIGINT), "
            f"{s.lo_u}), {s.hi_u})"
        )
        derived.append(
            f"CASE WHEN {dbl} BETWEEN -1e308 AND 1e308 THEN {q} ELSE NULL END AS _dp_q{s.index}"
        )
        derived.append(
            f"CASE WHEN {v} < {b.lower!r} OR {v} > {b.upper!r} THEN 1 ELSE 0 END AS _dp_c{s.index}"
        )
        cols += [f"_dp_q{s.index}", f"_dp_c{s.index}"]
        # the clamped flag too: rows alike on the grid may differ in it
        grid.append(f"COALESCE(CAST(_dp_q{s.index} AS TEXT), '')")
        grid.append(f"CAST(_dp_c{s.index} AS TEXT)")

    group_hash = f"MD5(CONCAT({salt_lit}, {', '.join(txt(c) for c in ['_dp_pid', *keys])}))"
    values = ", ".join(["_dp_pid", *keys, *vals, *derived])
    out = ", ".join(cols)
    ctes = (
        [f"_dp_src AS ({src.sql(dialect=d)})", f"_dp_v AS (SELECT {values} FROM _dp_src)"]
        if derived
        else [f"_dp_v AS ({src.sql(dialect=d)})"]  # nothing to clamp: the source is _dp_v
    )
    order = _row_order(salt, [txt("_dp_pid"), *(txt(c) for c in hashed), *grid])
    if split and not slots:
        ctes += _counted(keys, rows, groups, group_hash)
        return f"WITH {user_ctes}" + ", ".join(ctes)
    if not split:
        ctes += _truncate("_dp_v", "_dp_t", out, keys, group_hash, order, rows, groups)
        return f"WITH {user_ctes}" + ", ".join(ctes)
    # Split: one GROUP BY finds the persons over a cap (few); everyone else is within both
    # caps and keeps every row, untouched, so only the persons over a cap go through the
    # per-person windows. A person's side depends on their own rows only, and each side
    # truncates exactly as the windows alone would: the same relation, much less work.
    # Rows without a person (NULL) form one partition in the windows: they go there too.
    # EXISTS / NOT EXISTS (not IN): hash semi/anti joins on every engine, NULL-safe.
    match = "SELECT 1 FROM _dp_x WHERE _dp_x._dp_pid = _dp_v._dp_pid"
    ctes.append(f"_dp_x AS ({_over_cap(keys, rows, groups)})")
    ctes.append(
        f"_dp_e AS (SELECT {out} FROM _dp_v WHERE EXISTS ({match}) "
        f"UNION ALL SELECT {out} FROM _dp_v WHERE _dp_pid IS NULL)"
    )
    ctes += _truncate("_dp_e", "_dp_r", out, keys, group_hash, order, rows, groups)
    ctes.append(
        f"_dp_t AS (SELECT {out} FROM _dp_v WHERE _dp_pid IS NOT NULL AND NOT EXISTS ({match}) "
        f"UNION ALL SELECT {out} FROM _dp_r)"
    )
    return f"WITH {user_ctes}" + ", ".join(ctes)


def normalised_key(k: str) -> str:
    """SQL mapping a float key so that the engine's groups are the release's cells.

    The release keys cells by :func:`sde.dp.release.norm_key`, which makes NaN a NULL and
    -0.0 a 0; were they separate groups in the engine, one person could fill both (2x rows
    and persons in one released cell). So before grouping NaN and infinities become NULL
    (NaN orders above every number on every engine) and -0.0 becomes 0: a row belongs to
    exactly one cell, and truncation counts the groups the release sees.
    """
    return f"CASE WHEN {k} BETWEEN -1e308 AND 1e308 THEN CASE WHEN {k} = 0 THEN 0 ELSE {k} END END"


def _key_expr(e: exp.Expression, family: str, dialect: str) -> exp.Expression:
    if family != "float":
        return e.copy()
    return exp.maybe_parse(normalised_key(f"({e.sql(dialect=dialect)})"), dialect=dialect)


def _counted(keys: list[str], rows: int, groups: int | None, group_hash: str) -> list[str]:
    """Counts only (``COUNT(*)``, ``COUNT(DISTINCT person)``): a person's rows in a group are
    interchangeable, so truncating them to ``rows`` is ``LEAST(COUNT(*), rows)`` per person
    and group, in one GROUP BY. ``_dp_t`` then holds one row per kept (person, group) with
    ``_dp_n``, its truncated row count (:func:`_stat_sql` with ``counted=True``). The group
    cap ranks, as :func:`_group_cap` does on rows, the groups of the few persons who may
    have more than ``groups`` of them (and of rows without a person, one partition)."""
    part = ", ".join(["_dp_pid", *keys])
    out = f"{part}, _dp_n"
    n = f"LEAST(COUNT(*), {int(rows)}) AS _dp_n"
    if not keys or groups is None:
        return [
            f"_dp_a AS (SELECT {part}, {n} FROM _dp_v GROUP BY {part})",
            f"_dp_t AS (SELECT {out} FROM _dp_a)",
        ]
    if groups == 1:
        # One GROUP BY person: a person whose keys are constant has one group (its key is
        # MIN(key)) and keeps it; only the others are counted per group and ranked.
        firsts = ", ".join(f"MIN({k}) AS _dp_m{i}" for i, k in enumerate(keys))
        as_keys = ", ".join(f"_dp_m{i} AS {k}" for i, k in enumerate(keys))
        several = "SELECT 1 FROM _dp_p WHERE _dp_p._dp_pid = _dp_v._dp_pid AND _dp_p._dp_s = 1"
        return [
            f"_dp_p AS (SELECT _dp_pid, {firsts}, {n}, CASE WHEN _dp_pid IS NULL OR "
            f"{_several(keys)} THEN 1 ELSE 0 END AS _dp_s FROM _dp_v GROUP BY _dp_pid)",
            f"_dp_a AS (SELECT {part}, {n} FROM (SELECT {part} FROM _dp_v WHERE EXISTS "
            f"({several}) UNION ALL SELECT {part} FROM _dp_v WHERE _dp_pid IS NULL) AS _dp_e "
            f"GROUP BY {part})",
            _rank_groups("_dp_a", out, keys, group_hash, groups),
            f"_dp_t AS (SELECT _dp_pid, {as_keys}, _dp_n FROM _dp_p WHERE _dp_s = 0 "
            f"UNION ALL SELECT {out} FROM _dp_g)",
        ]
    match = "SELECT 1 FROM _dp_x WHERE _dp_x._dp_pid = _dp_a._dp_pid"
    return [
        f"_dp_a AS (SELECT {part}, {n} FROM _dp_v GROUP BY {part})",
        f"_dp_x AS (SELECT _dp_pid FROM _dp_a GROUP BY _dp_pid HAVING COUNT(*) > {int(groups)})",
        f"_dp_e AS (SELECT {out} FROM _dp_a WHERE EXISTS ({match}) "
        f"UNION ALL SELECT {out} FROM _dp_a WHERE _dp_pid IS NULL)",
        _rank_groups("_dp_e", out, keys, group_hash, groups),
        f"_dp_t AS (SELECT {out} FROM _dp_a WHERE _dp_pid IS NOT NULL AND NOT EXISTS ({match}) "
        f"UNION ALL SELECT {out} FROM _dp_g)",
    ]


def _rank_groups(source: str, out: str, keys: list[str], group_hash: str, groups: int) -> str:
    """``_dp_g``: the first ``groups`` groups of each person in ``source``, which holds one
    row per (person, group), in the order of :func:`_group_cap` (a salted hash of person and
    key, then the key): ROW_NUMBER here is DENSE_RANK there, one row being one group."""
    return (
        f"_dp_g AS (SELECT {out} FROM (SELECT {out}, ROW_NUMBER() OVER (PARTITION BY _dp_pid "
        f"ORDER BY {group_hash}, {', '.join(keys)}) AS _dp_gr FROM {source}) AS _dp_y "
        f"WHERE _dp_gr <= {int(groups)})"
    )


def _several(keys: list[str]) -> str:
    """Within a GROUP BY person: true when the person's rows may span several groups (some
    key is not constant, or NULL on some rows only)."""
    return " OR ".join(
        f"NOT ((MIN({k}) = MAX({k}) AND COUNT({k}) = COUNT(*)) OR COUNT({k}) = 0)" for k in keys
    )


def _over_cap(keys: list[str], rows: int, groups: int | None) -> str:
    """The persons whose rows a cap may cut: more than ``rows`` rows in a group, or (with a
    group cap) possibly more than ``groups`` groups. A superset is safe (those persons are
    truncated row by row), a person left out must be within both caps."""
    r = int(rows)
    if not keys:
        return f"SELECT _dp_pid FROM _dp_v GROUP BY _dp_pid HAVING COUNT(*) > {r}"
    part = ", ".join(["_dp_pid", *keys])
    if groups is None:
        return f"SELECT _dp_pid FROM _dp_v GROUP BY {part} HAVING COUNT(*) > {r}"
    if groups == 1:
        # one group: every key constant (or NULL throughout), so rows per person = per group
        return (
            f"SELECT _dp_pid FROM _dp_v GROUP BY _dp_pid HAVING COUNT(*) > {r} OR {_several(keys)}"
        )
    return (
        f"SELECT _dp_pid FROM (SELECT _dp_pid, COUNT(*) AS _dp_n FROM _dp_v GROUP BY {part}) "
        f"AS _dp_pg GROUP BY _dp_pid HAVING COUNT(*) > {int(groups)} OR MAX(_dp_n) > {r}"
    )


def _truncate(
    source: str,
    target: str,
    out: str,
    keys: list[str],
    group_hash: str,
    order: str,
    rows: int,
    groups: int | None,
) -> list[str]:
    """CTEs truncating ``source`` into ``target`` with per-person windows: at most ``groups``
    groups per person (ranked by a salted hash of person and key), then at most ``rows`` rows
    per person and group (ordered by ``order``, a hash of the person and the row's values)."""
    ctes = []
    if keys and groups is not None:
        ctes += _group_cap(source, out, keys, group_hash, groups)
        source = "_dp_g"
    part = ", ".join(["_dp_pid", *keys])
    r = int(rows)
    if not order:  # rows are interchangeable (COUNT(*)): number them in any order, in one pass
        # Spark refuses ROW_NUMBER without ORDER BY; ordering by the partition key is a no-op
        # that every engine accepts.
        ctes.append(
            f"{target} AS (SELECT {out} FROM (SELECT {out}, ROW_NUMBER() OVER (PARTITION BY "
            f"{part} ORDER BY _dp_pid) AS _dp_n FROM {source}) AS _dp_y WHERE _dp_n <= {r})"
        )
    else:
        # Rows: persons with at most ``rows`` rows in a group keep them all; only the others
        # are numbered (a window over few rows instead of a sort of every row).
        ctes.append(
            f"_dp_w AS (SELECT {out}, COUNT(*) OVER (PARTITION BY {part}) AS _dp_n FROM {source})"
        )
        ctes.append(
            f"{target} AS (SELECT {out} FROM _dp_w WHERE _dp_n <= {r} UNION ALL SELECT {out} "
            f"FROM (SELECT {out}, ROW_NUMBER() OVER (PARTITION BY {part}{order}) AS _dp_rn "
            f"FROM _dp_w WHERE _dp_n > {r}) AS _dp_h WHERE _dp_rn <= {r})"
        )
    return ctes


def _group_cap(source: str, out: str, keys: list[str], group_hash: str, groups: int) -> list[str]:
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
        f"_dp_g1 AS (SELECT {out}, {', '.join(stats)} FROM {source})",
        f"_dp_g AS (SELECT {out} FROM _dp_g1 WHERE {one} UNION ALL SELECT {out} FROM "
        f"(SELECT {out}, DENSE_RANK() OVER (PARTITION BY _dp_pid ORDER BY {group_hash}, "
        f"{', '.join(keys)}) AS _dp_gr FROM _dp_g1 WHERE NOT ({one})) AS _dp_x "
        f"WHERE _dp_gr <= {int(groups)})",
    ]


def _row_order(salt: str, parts: list[str]) -> str:
    """ORDER BY of a person's rows within a group: a salted MD5 of the person and the row's
    own values (``parts``: the person id, then each value as text; values after clamping
    and rounding are grid integers, whose text is the same on every engine).

    The person is in the hash so that which values a capped person keeps varies from person
    to person like a random sample: a hash of the values alone (or a linear mix of them)
    prefers the same values for everyone and biases sums and means. Only rows of persons
    over a cap are ordered, so the hash costs little. Rows with equal values are
    interchangeable for every statistic, so ties need no order. With no values at all
    (``COUNT(*)``) any order will do.
    """
    if len(parts) < 2:
        return ""
    salt_lit = "'" + salt.replace("'", "").replace("|", "") + "'"
    joined = ", '|', ".join(parts)  # a separator: ('1', '23') and ('12', '3') differ
    return f" ORDER BY MD5(CONCAT({salt_lit}, {joined}))"


def _stat_sql(name: str, slots: list[Slot], counted: bool = False) -> str:
    """SQL of a statistic over ``_dp_t``: rows, or (``counted``) one row per person and
    group with its truncated row count ``_dp_n``."""
    if name == "n_rows":
        return "SUM(_dp_n)" if counted else "COUNT(*)"
    if name == "n_persons":
        return "COUNT(_dp_pid)" if counted else "COUNT(DISTINCT _dp_pid)"
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
