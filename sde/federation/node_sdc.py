"""Node-level disclosure control on an aggregate node part (``aggregates`` projects).

The stated rule of docs/federation.md: a merged cell is shown only when every node with
persons in it has at least ``threshold`` of them. A group of this node is *small* when some
hidden person count (``__sde_persons_*``, added by its own proxy) is 1 to ``threshold - 1``
(a NULL count, which no engine gives, counts as small: fail closed). A small group's keys
never leave the node on their own; the rule is kept in two rounds:

- round 1 (:func:`large_only`, then :func:`protect`): the node runs its part keeping only
  the groups that are not small, so its group cap counts those only, and sends them with
  ``__sde_small`` false;
- round 2 (:func:`small_only`, then :func:`probe`): for group keys some other node sent at
  full size, the coordinator asks "which of these are small at you?"; the node answers one
  boolean per probed key and nothing else (absent and large are both "not small": it sent
  its large groups in round 1).

>>> import pandas as pd
>>> part = pd.DataFrame({"f_k0": [1, 2], "f_a0": [3, 40], "__sde_persons_0": [3, 40]})
>>> protect(part, 10).to_dict("list")
{'f_k0': [2], 'f_a0': [40], '__sde_persons_0': [40], '__sde_small': [False]}
>>> small = pd.DataFrame({"f_k0": [1, 7]})
>>> probe(small, [[1], [2], [3]], keys_count=1)
[True, False, False]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd
from sqlglot import exp

from sde.errors import InvalidInput, ScopeViolation
from sde.federation.wire import KeyValue, frame_keys, key_of, key_value
from sde.proxy.pipeline import Prepared
from sde.proxy.rules.aggregates import HIDDEN_PREFIX

#: The column saying a group is small on this node (false on every row round 1 sends).
SMALL = "__sde_small"
KEY = re.compile(r"^f_k[0-9]+$")
PARTIAL = re.compile(r"^f_a[0-9]+$")
#: Alias of the node part inside the query that keeps its large (or small) groups.
PART = "__sde_part"


def protect(part: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """``part`` without its small groups, with ``__sde_small`` (false) added.

    The query of :func:`large_only` already kept the large groups only; this checks the
    columns and drops any small group again, so nothing small leaves whatever the engine did.
    """
    names = _checked_names(part)
    small = _small(part, [n for n in names if n.startswith(HIDDEN_PREFIX)], threshold)
    out = part.loc[~small.to_numpy()].reset_index(drop=True)
    out[SMALL] = pd.array([False] * len(out), dtype="boolean")
    return out


def probe(small: pd.DataFrame, keys: list[list[KeyValue]], *, keys_count: int) -> list[bool]:
    """For each probed key, whether it is among ``small`` (this node's small groups, keys
    ``f_k0..`` only). A probed key of another width is refused."""
    if any(len(key) != keys_count for key in keys):
        raise InvalidInput(
            "federation.bad-request",
            f"bad request: probe_keys must each have {keys_count} values (the part's keys)",
        )
    mine = set(frame_keys(small, keys_count))
    return [key_of(key) in mine for key in keys]


# -- the node part's query, restricted ------------------------------------------------------


def large_only(prepared: Prepared, threshold: int) -> Prepared:
    """The node part keeping only its groups that are not small (round 1)."""
    return _restricted(prepared, threshold, small=False)


def small_only(
    prepared: Prepared, threshold: int, probe_keys: list[list[KeyValue]] | None = None
) -> Prepared:
    """The keys (``f_k0..``) of the node part's small groups only (round 2); with
    ``probe_keys``, only those whose every key value is among the probed values of its
    column (:func:`probe_filter`), so what the node reads depends on the probe, not on
    how many other small groups it has."""
    return _restricted(prepared, threshold, small=True, probe_keys=probe_keys)


def _restricted(
    prepared: Prepared,
    threshold: int,
    *,
    small: bool,
    probe_keys: list[list[KeyValue]] | None = None,
) -> Prepared:
    tree = prepared.expression
    if not isinstance(tree, exp.Select):
        raise ScopeViolation("federation.node-shape", "a node part is one SELECT")
    names = list(tree.named_selects)
    counts = [n for n in names if n.startswith(HIDDEN_PREFIX)]
    shown = [n for n in names if KEY.match(n)] if small else names
    inner = tree.copy()
    # The proxy's row cap (LIMIT cap + 1: a part has no LIMIT of its own) counts the groups
    # sent, so it moves outside; a probe reads every small group.
    with_, limit = inner.args.get("with_"), inner.args.get("limit")
    inner.set("with_", None)
    inner.set("limit", None)
    columns: list[exp.Expr] = [exp.column(n, table=PART, quoted=True) for n in shown]
    if not columns:  # the small global cell of a part with no keys: one row says it is there
        columns = [exp.alias_(exp.Literal.number(1), "__sde_one", quoted=True)]
    outer = exp.select(*columns).from_(inner.subquery(PART, copy=False), copy=False)
    if counts:
        test = exp.or_(*(_is_small(n, threshold) for n in counts))
        outer = outer.where(test if small else exp.not_(exp.paren(test)), copy=False)
    elif small:  # nothing is counted: nothing is small
        outer = outer.where(exp.false(), copy=False)
    if small and probe_keys is not None:
        types = [p.type for p in tree.expressions if KEY.match(p.alias_or_name)]
        narrowed = probe_filter(types, probe_keys)
        if narrowed is not None:
            outer = outer.where(narrowed, copy=False)
    if with_ is not None:
        outer.set("with_", with_)
    if limit is not None and not small:
        outer.set("limit", limit)
    return Prepared(prepared.original, outer, prepared.threshold)


def probe_filter(
    types: list[exp.DataType | None], probe_keys: list[list[KeyValue]]
) -> exp.Condition | None:
    """``f_k<i> IN (<the probed values of column i>)`` (``OR f_k<i> IS NULL`` for a NULL
    one) for each key column of a type whose literals are written exactly (numbers,
    dates, timestamps without a zone, text, booleans); ``None`` when no column is.

    It only narrows what the node reads: a group it keeps is matched exactly afterwards
    (:func:`probe`), and it never leaves out a group :func:`probe` would match (values
    that cannot be of the column's type cannot match either)."""
    tests = []
    for i, kind in enumerate(_kind(t) for t in types):
        if kind is None:
            continue
        values = {key_value(key[i]) for key in probe_keys if i < len(key)}
        literals = [lit for v in values if (lit := _literal(v, kind)) is not None]
        column = exp.column(f"f_k{i}", table=PART, quoted=True)
        either: list[exp.Expression] = []
        if literals:
            either.append(exp.In(this=column.copy(), expressions=literals))
        if None in values:
            either.append(exp.Is(this=column.copy(), expression=exp.null()))
        tests.append(exp.paren(exp.or_(*either)) if either else exp.false())
    return exp.and_(*tests) if tests else None


_KINDS: tuple[tuple[str, frozenset[Any]], ...] = (
    ("number", frozenset(exp.DataType.INTEGER_TYPES | exp.DataType.REAL_TYPES)),
    ("date", frozenset({exp.DataType.Type.DATE, exp.DataType.Type.DATE32})),
    (
        "timestamp",
        frozenset(
            {
                exp.DataType.Type.TIMESTAMP,
                exp.DataType.Type.TIMESTAMPNTZ,
                exp.DataType.Type.DATETIME,
            }
        ),
    ),
    ("text", frozenset(exp.DataType.TEXT_TYPES)),
    ("boolean", frozenset({exp.DataType.Type.BOOLEAN})),
)
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _kind(dtype: exp.DataType | None) -> str | None:
    if dtype is None:
        return None
    return next((kind for kind, types in _KINDS if dtype.this in types), None)


def _literal(value: KeyValue, kind: str) -> exp.Expression | None:
    """``value`` as a literal of a ``kind`` column, or None when no value of that column
    can read as it (:func:`sde.federation.wire.key_value`)."""
    return None if value is None else _LITERALS[kind](value)


def _number(value: KeyValue) -> exp.Expression | None:
    if isinstance(value, bool | int):
        return exp.Literal.number(int(value))
    if isinstance(value, float):
        return exp.Literal.number(repr(value))
    if value in ("Infinity", "-Infinity"):
        return exp.cast(exp.Literal.string(str(value)), exp.DataType.Type.DOUBLE)
    return None


def _boolean(value: KeyValue) -> exp.Expression | None:
    return exp.Boolean(this=bool(value)) if value in (True, False, 0, 1) else None


def _text_value(value: KeyValue) -> exp.Expression | None:
    return exp.Literal.string(value) if isinstance(value, str) else None


def _date(value: KeyValue) -> exp.Expression | None:
    if not (isinstance(value, str) and _DAY.match(value)):
        return None
    return exp.cast(exp.Literal.string(value), exp.DataType.Type.DATE)


def _timestamp(value: KeyValue) -> exp.Expression | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if pd.isna(stamp) or stamp.tzinfo is not None:
        return None
    text = stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
    return exp.cast(exp.Literal.string(text), exp.DataType.Type.TIMESTAMP)


_LITERALS: dict[str, Callable[[KeyValue], exp.Expression | None]] = {
    "number": _number,
    "boolean": _boolean,
    "text": _text_value,
    "date": _date,
    "timestamp": _timestamp,
}


def _is_small(name: str, threshold: int) -> exp.Expression:
    count = exp.column(name, table=PART, quoted=True)
    between = exp.and_(
        exp.GTE(this=count.copy(), expression=exp.Literal.number(1)),
        exp.LT(this=count.copy(), expression=exp.Literal.number(threshold)),
    )
    return exp.paren(exp.or_(exp.Is(this=count, expression=exp.null()), exp.paren(between)))


# -- checks --------------------------------------------------------------------------------


def _checked_names(part: pd.DataFrame) -> list[str]:
    names = [str(c) for c in part.columns]
    odd = [
        n for n in names if not (KEY.match(n) or PARTIAL.match(n) or n.startswith(HIDDEN_PREFIX))
    ]
    if odd or len(set(names)) != len(names):
        raise ScopeViolation(
            "federation.node-shape",
            f"a node part's columns are f_k*, f_a* and the node's person counts; "
            f"{(odd or names)[0]!r} is not one of them, or is repeated",
        )
    return names


def _small(part: pd.DataFrame, counts: list[str], threshold: int) -> pd.Series:
    small = pd.Series(False, index=part.index)
    for name in counts:
        count = pd.to_numeric(part[name], errors="coerce")
        small |= (count.isna() | ((count >= 1) & (count < threshold))).astype(bool)
    return small


__all__ = ["SMALL", "large_only", "probe", "probe_filter", "protect", "small_only"]
