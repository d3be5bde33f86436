"""Window functions of a rows query that run across persons, computed over all nodes' rows.

``RANK() OVER (ORDER BY year_of_birth)`` at the outermost level of a record-level query
ranks every row of every node, so no node can compute it. The node part sends, instead of
each output that holds such a window, the columns that output reads (``f_w<i>``), and the
merge evaluates the output over the stacked rows of all nodes, then orders and limits them:
the pooled query's window, over the pooled rows. Nothing is pushed down as a top-n (the
window needs every row). Not split this way (per node instead): QUALIFY, DISTINCT, and an
output holding both a window and a subquery.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from sde.federation.decompose import NotDecomposable
from sde.proxy.transpile import for_engine

PARTS = "__sde_parts"
NODE_COLUMN = "__sde_node"
ROW_COLUMN = "__sde_row"


def across(select: exp.Select) -> list[exp.Window]:
    """The window functions of the outermost SELECT itself (not of its subqueries)."""
    return [w for w in select.find_all(exp.Window) if w.find_ancestor(exp.Query) is select]


def split(select: exp.Select, dialect: str) -> tuple[exp.Select, str, list[str]]:
    """The node part, the merge SQL and the output names of a rows query whose windows
    run over all nodes' rows (``select`` typed, so the merge keeps the dialect's meaning)."""
    for arg in ("qualify", "distinct"):
        if select.args.get(arg) is not None:
            raise NotDecomposable(
                f"{arg.upper()} with a window function across persons at the outermost level"
            )
    names = list(select.named_selects)
    sent: list[exp.Expression] = []  # what the node part outputs, in order
    merged: list[exp.Expression] = []  # each output of the merge
    hidden: dict[str, int] = {}  # column SQL -> position among sent
    windowed = [bool(_windows(p, select)) for p in select.expressions]
    for projection, has_window in zip(select.expressions, windowed, strict=True):
        if not has_window:
            merged.append(_part(len(sent)))
            sent.append(projection.copy())
    lift = _Lift(sent, hidden)
    for i, (projection, has_window) in enumerate(zip(select.expressions, windowed, strict=True)):
        if has_window:
            if projection.find(exp.Query) is not None:
                raise NotDecomposable(f"output {names[i]} holds a window and a subquery")
            merged.insert(i, lift(projection.unalias()))
    order = select.args.get("order")
    merge_order = lift(order, keep=set(names)) if order is not None else None
    if not sent:  # COUNT(*) OVER () alone reads no column; a node part needs one row each
        sent.append(exp.Alias(this=exp.Literal.number(1), alias=exp.to_identifier("f_w0")))
    node = select.copy()
    node.set("expressions", sent)
    for arg in ("order", "limit", "offset"):
        node.set(arg, None)
    merge = exp.Select(
        expressions=[
            *(exp.alias_(e, n, quoted=True) for e, n in zip(merged, names, strict=True)),
            exp.alias_(exp.column(NODE_COLUMN, quoted=True), "node", quoted=True),
        ]
    ).from_(exp.to_table(PARTS, quoted=True))
    items = [*(merge_order.expressions if isinstance(merge_order, exp.Order) else [])]
    items.append(exp.Ordered(this=exp.column(ROW_COLUMN, quoted=True)))
    merge.set("order", exp.Order(expressions=items))
    for arg in ("limit", "offset"):
        if select.args.get(arg) is not None:
            merge.set(arg, select.args[arg].copy())
    return node, _duckdb(merge, sent, dialect), names


def _windows(projection: exp.Expression, select: exp.Select) -> list[exp.Window]:
    return [w for w in projection.find_all(exp.Window) if w.find_ancestor(exp.Query) is select]


def _part(index: int) -> exp.Column:
    return exp.column(f"__sde_c{index}", quoted=True)


class _Lift:
    """An expression reading the node part's columns: each column it names is sent once
    as ``f_w<i>`` (or is an output the node sends anyway)."""

    def __init__(self, sent: list[exp.Expression], hidden: dict[str, int]) -> None:
        self.sent = sent
        self.hidden = hidden

    def __call__(self, node: exp.Expression, keep: set[str] | None = None) -> exp.Expression:
        def swap(n: exp.Expression) -> exp.Expression:
            if not isinstance(n, exp.Column):
                return n
            if not n.table and keep is not None and n.name in keep:
                return n  # ORDER BY an output name: the merge's own output
            return _part(self._index(n))

        return node.copy().transform(swap)

    def _index(self, column: exp.Column) -> int:
        key = column.sql()
        if key not in self.hidden:
            self.hidden[key] = len(self.sent)
            alias = exp.Alias(
                this=column.copy(),
                alias=exp.to_identifier(f"f_w{len(self.hidden) - 1}", quoted=True),
            )
            self.sent.append(alias)
        return self.hidden[key]


def _duckdb(merge: exp.Select, sent: list[exp.Expression], dialect: str) -> str:
    """The merge in DuckDB, typed from what the node part sends (integer division and
    the like keep the researcher's dialect's meaning)."""
    columns: dict[str, str] = {}
    for i, output in enumerate(sent):
        kind = output.unalias().type
        if isinstance(kind, exp.DataType) and kind.this not in (
            exp.DataType.Type.UNKNOWN,
            exp.DataType.Type.NULL,
        ):
            columns[f"__sde_c{i}"] = kind.sql("duckdb")
    typed = annotate_types(merge, schema={PARTS: columns} if columns else None, dialect=dialect)
    return for_engine(typed, "duckdb").sql(dialect="duckdb", identify=True)
