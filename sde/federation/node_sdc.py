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

import pandas as pd
from sqlglot import exp

from sde.errors import InvalidInput, ScopeViolation
from sde.federation.wire import KeyValue, frame_keys, key_of
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


def small_only(prepared: Prepared, threshold: int) -> Prepared:
    """The keys (``f_k0..``) of the node part's small groups only (round 2)."""
    return _restricted(prepared, threshold, small=True)


def _restricted(prepared: Prepared, threshold: int, *, small: bool) -> Prepared:
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
    if with_ is not None:
        outer.set("with_", with_)
    if limit is not None and not small:
        outer.set("limit", limit)
    return Prepared(prepared.original, outer, prepared.threshold)


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


__all__ = ["SMALL", "large_only", "probe", "protect", "small_only"]
