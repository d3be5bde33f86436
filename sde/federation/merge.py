"""The merge part: the nodes' parts stacked, then DuckDB SQL over them.

:func:`merge` stacks each node's part (as Arrow, adding ``__sde_node`` and the row's
position ``__sde_row``) into the table ``__sde_parts`` and runs the plan's merge SQL in
a private in-memory DuckDB with its doors closed (no files, no network, no extensions,
configuration locked: :data:`sde.backends.duckdb.HARDENING`). The builders below write
that SQL when the query is planned (:mod:`sde.federation.plan`).

An aggregate merge runs in four steps::

    __sde_w       every part row, with per-group windows: whether any node marked the
                  group small, its summed person counts, the pooled means variances need
    __sde_live    the rows of groups that survive suppression (aggregates projects)
    __sde_groups  one row per group: the keys f_k<i> and the merged units __sde_m<j>
    (final)       the researcher's outputs, HAVING, windows, DISTINCT, ORDER BY, LIMIT

so a group withheld at any node, or under the threshold in all, is gone before the
researcher's HAVING, outputs, windows, ordering and limits see anything (as
:mod:`sde.proxy.rules.threshold` does for one node): the result does not depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from sde.backends.duckdb import HARDENING
from sde.backends.frames import arrow_to_frame, normalise
from sde.errors import QueryFailed
from sde.federation.decompose import GROUPS, Decomposition, NotDecomposable, Unit
from sde.proxy.transpile import for_engine

if TYPE_CHECKING:
    from sde.federation.plan import FederatedPlan

PARTS = "__sde_parts"
NODE_COLUMN = "__sde_node"
ROW_COLUMN = "__sde_row"
PERSONS_PREFIX = "__sde_persons_"
SMALL = "__sde_small"

#: Units merged through pooled moments (each needs the group's pooled means first).
_SPREADS = frozenset({"var_samp", "var_pop", "std_samp", "std_pop"})
_COMOMENTS = frozenset({"corr", "covar_pop", "covar_samp"})

_ARROW_TYPES: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(),
    "INT": pa.int64(),
    "INTEGER": pa.int64(),
    "SMALLINT": pa.int64(),
    "TINYINT": pa.int64(),
    "HUGEINT": pa.float64(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float64(),
    "REAL": pa.float64(),
    "DECIMAL": pa.float64(),
    "VARCHAR": pa.string(),
    "TEXT": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("ns"),
    "BOOLEAN": pa.bool_(),
}


def merge(
    plan: FederatedPlan, parts: Mapping[str, pd.DataFrame], *, threshold: int | None
) -> pd.DataFrame:
    """The researcher's result from each node's part (``{node: frame}``, in node order)."""
    params: dict[str, int] = {}
    if plan.persons:
        if threshold is None:
            raise QueryFailed(
                "federation.threshold",
                "the merge of an aggregates project's parts needs the project's threshold",
            )
        params["threshold"] = int(threshold)
    table = stack(plan, parts)
    con = duckdb.connect(":memory:", config={"python_enable_replacements": False})
    try:
        for statement in HARDENING:
            con.execute(statement)
        con.register(PARTS, table)
        try:
            relation = con.sql(plan.merge_sql, params=params or None)
            result = relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.Error:
            raise QueryFailed(
                "engine.error",
                "the merge of the nodes' parts failed (a conversion, an overflow or a "
                "division by zero in the query's outputs)",
            ) from None
    finally:
        con.close()
    frame = arrow_to_frame(result)
    if len(frame.columns) != len(plan.columns):  # fail closed: never a mislabelled result
        raise QueryFailed("federation.merge", "the merge did not give the query's columns")
    frame.columns = list(plan.columns)
    return frame


def expected_columns(plan: FederatedPlan) -> list[str]:
    """The columns every node's part must have, in order."""
    hidden = [f"{PERSONS_PREFIX}{i}" for i in range(plan.persons)]
    return [*plan.part_columns, *hidden, *([SMALL] if plan.persons else [])]


def stack(plan: FederatedPlan, parts: Mapping[str, pd.DataFrame]) -> pa.Table:
    """``parts`` as one Arrow table with ``__sde_node`` and ``__sde_row``."""
    expected = expected_columns(plan)
    names = expected if plan.kind == "aggregate" else [f"__sde_c{i}" for i in range(len(expected))]
    types = [*plan.part_types, *(["BIGINT"] * plan.persons), *(["BOOLEAN"] if plan.persons else [])]
    tables, start = [], 0
    for node, frame in parts.items():
        _check_shape(plan, node, frame, expected)
        try:
            table = _arrow(normalise(frame).set_axis(names, axis=1), types)
        except (pa.ArrowException, ValueError, TypeError):
            raise _bad_part(node) from None
        rows = pa.array(range(start, start + table.num_rows), pa.int64())
        start += table.num_rows
        table = table.append_column(NODE_COLUMN, pa.array([node] * table.num_rows, pa.string()))
        tables.append(table.append_column(ROW_COLUMN, rows))
    if not tables:
        empty = pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
        table = _arrow(empty, types)
        table = table.append_column(NODE_COLUMN, pa.array([], pa.string()))
        tables.append(table.append_column(ROW_COLUMN, pa.array([], pa.int64())))
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException:
        raise QueryFailed(
            "federation.node-shape",
            "the nodes' parts disagree on the types of their columns",
        ) from None


def _bad_part(node: str) -> QueryFailed:
    return QueryFailed(
        "federation.node-shape",
        f"node {node} answered with values that are not the node part's columns",
        node=node,
    )


def _check_shape(plan: FederatedPlan, node: str, frame: pd.DataFrame, expected: list[str]) -> None:
    columns = [str(c) for c in frame.columns]
    same = columns == expected if plan.kind == "aggregate" else len(columns) == len(expected)
    if not same:
        raise QueryFailed(
            "federation.node-shape",
            f"node {node} answered with columns that are not the node part's "
            f"({len(columns)} columns, expected {len(expected)})",
            node=node,
        )


def _arrow(frame: pd.DataFrame, types: list[str]) -> pa.Table:
    """``frame`` as Arrow, each column in the type the plan expects where it knows it: a
    column of a node with no values gets it, and a DATE (a timestamp in a frame) is a date
    again, so the merge computes on what the pooled engine would."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, name in enumerate(table.column_names):
        wanted = _ARROW_TYPES.get(types[i].split("(", 1)[0].upper()) if i < len(types) else None
        column = table.column(i)
        if wanted is None:
            continue
        if pa.types.is_null(column.type):
            table = table.set_column(i, name, pa.nulls(table.num_rows, wanted))
        elif pa.types.is_date(wanted) and pa.types.is_timestamp(column.type):
            table = table.set_column(i, name, column.cast(wanted))
    return table


# -- the merge SQL of an aggregate plan -------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def aggregate(split: Decomposition, dialect: str, *, persons: int) -> str:
    """The merge SQL of an aggregate plan (``persons``: hidden person counts per node)."""
    keys = [_q(f"f_k{i}") for i in range(len(split.keys))]
    window = f"OVER (PARTITION BY {', '.join(keys)})" if keys else "OVER ()"
    extra = []
    if persons:
        extra.append(f"BOOL_OR(COALESCE({_q(SMALL)}, FALSE)) {window} AS __sde_anysmall")
        extra += [
            f"SUM({_q(PERSONS_PREFIX + str(i))}) {window} AS __sde_tp{i}" for i in range(persons)
        ]
    for j, unit in enumerate(split.units):
        if unit.kind in _SPREADS or unit.kind in _COMOMENTS:
            n, m = (_q(f"f_a{i}") for i in unit.partials[:2])
            extra.append(f"SUM({n} * {m}) {window} / NULLIF(SUM({n}) {window}, 0) AS __sde_gm{j}")
        if unit.kind in _COMOMENTS:
            n, m = _q(f"f_a{unit.partials[0]}"), _q(f"f_a{unit.partials[2]}")
            extra.append(f"SUM({n} * {m}) {window} / NULLIF(SUM({n}) {window}, 0) AS __sde_gn{j}")
    w = f"SELECT *{''.join(', ' + e for e in extra)} FROM {PARTS}"
    live = "SELECT * FROM __sde_w"
    if persons:
        tests = ["NOT __sde_anysmall"]
        tests += [f"COALESCE(__sde_tp{i}, 0) >= $threshold" for i in range(persons)]
        live += " WHERE " + " AND ".join(tests)
    merged = [f"{_merged(u, j)} AS {_q(f'__sde_m{j}')}" for j, u in enumerate(split.units)]
    groups = f"SELECT {', '.join([*keys, *merged]) or 'COUNT(*) AS __sde_n'} FROM __sde_live"
    if keys:
        groups += f" GROUP BY {', '.join(keys)}"
    elif persons:
        groups += " HAVING COUNT(*) > 0"
    final = _final_sql(split, dialect)
    return f"WITH __sde_w AS ({w}), __sde_live AS ({live}), {GROUPS} AS ({groups}) {final}"


def _merged(unit: Unit, j: int) -> str:
    cols = [_q(f"f_a{i}") for i in unit.partials]
    if unit.kind == "count":
        return f"CAST(COALESCE(SUM({cols[0]}), 0) AS BIGINT)"
    if unit.kind in ("sum", "min", "max"):
        return f"{unit.kind.upper()}({cols[0]})"
    if unit.kind == "avg":
        return f"CAST(SUM({cols[0]}) AS DOUBLE) / NULLIF(SUM({cols[1]}), 0)"
    if unit.kind in _COMOMENTS:
        return _comoment(cols, j, unit.kind)
    n, m, v = cols
    total = f"SUM({n})"
    m2 = f"SUM({v} * {n} + {n} * ({m} - __sde_gm{j}) * ({m} - __sde_gm{j}))"
    value = (
        f"CASE WHEN {total} > 1 THEN {m2} / ({total} - 1) END"
        if unit.kind.endswith("samp")
        else f"CASE WHEN {total} > 0 THEN {m2} / {total} END"
    )
    return f"SQRT({value})" if unit.kind.startswith("std") else value


def _comoment(cols: list[str], j: int, kind: str) -> str:
    """CORR and covariances from each node's pairs: the pooled co-moment is the nodes'
    co-moments plus ``n_i (mean_x_i - mean_x)(mean_y_i - mean_y)``."""
    n, mx, my, c, vx, vy = cols
    dx, dy = f"({mx} - __sde_gm{j})", f"({my} - __sde_gn{j})"
    total, moment = f"SUM({n})", f"SUM({c} * {n} + {n} * {dx} * {dy})"
    if kind == "covar_pop":
        return f"CASE WHEN {total} > 0 THEN {moment} / {total} END"
    if kind == "covar_samp":
        return f"CASE WHEN {total} > 1 THEN {moment} / ({total} - 1) END"
    sx, sy = f"SUM({vx} * {n} + {n} * {dx} * {dx})", f"SUM({vy} * {n} + {n} * {dy} * {dy})"
    return f"CASE WHEN {sx} > 0 AND {sy} > 0 THEN {moment} / SQRT({sx} * {sy}) END"


def _final_sql(split: Decomposition, dialect: str) -> str:
    if split.final is None:
        raise NotDecomposable("the outermost SELECT could not be lifted onto the merged groups")
    schema: dict[str, str] = {}
    for i, kind in enumerate(split.key_types):
        if kind:
            schema[f"f_k{i}"] = kind
    for j, unit in enumerate(split.units):
        if unit.type:
            schema[f"__sde_m{j}"] = unit.type
    typed = annotate_types(split.final.copy(), schema={GROUPS: schema}, dialect=dialect)
    return for_engine(typed, "duckdb").sql(dialect="duckdb", identify=True)


# -- rows and per-node merges -------------------------------------------------------------------


def rows(select: exp.Select, dialect: str) -> tuple[exp.Select, str, list[str]]:
    """The node part of a rows plan (top-n pushed down), its merge SQL and output names."""
    names = list(select.named_selects)
    node = select.copy()
    node.set("offset", None)
    limit, offset = select.args.get("limit"), select.args.get("offset")
    if limit is not None:
        total = _number(limit.expression) if isinstance(limit, exp.Limit) else None
        skip = _number(offset.expression) if offset is not None else 0
        if total is None or skip is None:
            node.set("limit", None)
        else:
            node.set("limit", exp.Limit(expression=exp.Literal.number(total + skip)))
    order = select.args.get("order")
    merged_order = _merge_order(order, node, names) if order is not None else None
    columns = [
        exp.alias_(exp.column(f"__sde_c{i}", quoted=True), name, quoted=True)
        for i, name in enumerate(names)
    ]
    columns.append(exp.alias_(exp.column(NODE_COLUMN, quoted=True), "node", quoted=True))
    merge = exp.Select(expressions=columns).from_(exp.to_table(PARTS, quoted=True))
    if merged_order is not None:
        merge.set("order", merged_order)
    else:
        merge.set("order", exp.Order(expressions=[exp.Ordered(this=exp.column(ROW_COLUMN))]))
    for arg in ("limit", "offset"):
        value = select.args.get(arg)
        if value is not None:
            merge.set(arg, value.copy())
    return node, merge.sql(dialect="duckdb", identify=True), names


def _merge_order(order: exp.Order, node: exp.Select, names: list[str]) -> exp.Order:
    """ORDER BY over the stacked parts: each item as an output column (hidden sort
    columns ``f_o<i>`` added to the node part when an item is not an output)."""
    values = [p.unalias() for p in node.expressions[: len(names)]]
    items = []
    for ordered in order.expressions:
        this = ordered.this
        index = None
        if isinstance(this, exp.Literal) and not this.is_string and this.this.isdigit():
            index = int(this.this) - 1
        elif isinstance(this, exp.Column) and not this.table and this.name in names:
            index = names.index(this.name)
        else:
            index = next((i for i, v in enumerate(values) if v == this), None)
        if index is None:
            index = len(node.expressions)
            node.select(exp.alias_(this.copy(), f"f_o{index}", quoted=True), copy=False)
        item = ordered.copy()
        item.set("this", exp.column(f"__sde_c{index}", quoted=True))
        items.append(item)
    items.append(exp.Ordered(this=exp.column(ROW_COLUMN, quoted=True)))
    return exp.Order(expressions=items)


def _number(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


def stacked(width: int) -> str:
    """The merge SQL of a per-node plan: every node's rows, in node order, with ``node``."""
    columns = [f"{_q(f'__sde_c{i}')}" for i in range(width)]
    return f"SELECT {', '.join([*columns, _q(NODE_COLUMN)])} FROM {PARTS} ORDER BY {_q(ROW_COLUMN)}"
