"""Node-level disclosure control on an aggregate node part (``aggregates`` projects).

The stated rule of docs/federation.md: a merged cell is shown only when every node with
persons in it has at least ``threshold`` of them. So a node marks each group of its part
where some hidden person count (``__sde_persons_*``, added by its own proxy) is 1 to
``threshold - 1``: ``__sde_small`` is true, and every partial aggregate (``f_a*``) and
every person count of that row is NULL; the group keys (``f_k*``) stay, so the coordinator
can drop the merged group before anything else runs. Other rows get ``__sde_small`` false
and go unchanged. A count that is NULL (no engine gives one for ``COUNT(DISTINCT ...)``)
is treated as small: fail closed.

>>> import pandas as pd
>>> part = pd.DataFrame({"f_k0": [1, 2], "f_a0": [3, 40], "__sde_persons_0": [3, 40]})
>>> protect(part, 10).to_dict("list")
{'f_k0': [1, 2], 'f_a0': [nan, 40.0], '__sde_persons_0': [nan, 40.0], '__sde_small': [True, False]}
"""

from __future__ import annotations

import re

import pandas as pd

from sde.errors import ScopeViolation
from sde.proxy.rules.aggregates import HIDDEN_PREFIX

#: The column saying a group is small on this node.
SMALL = "__sde_small"
KEY = re.compile(r"^f_k[0-9]+$")
PARTIAL = re.compile(r"^f_a[0-9]+$")


def protect(part: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """``part`` with its small groups flagged and emptied, and ``__sde_small`` added."""
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
    counts = [n for n in names if n.startswith(HIDDEN_PREFIX)]
    small = pd.Series(False, index=part.index)
    for name in counts:
        count = pd.to_numeric(part[name], errors="coerce")
        small |= (count.isna() | ((count >= 1) & (count < threshold))).astype(bool)
    out = part.copy()
    for name in names:
        if PARTIAL.match(name) or name in counts:
            out[name] = out[name].mask(small)
    out[SMALL] = pd.array(small.to_numpy(), dtype="boolean")
    return out


__all__ = ["SMALL", "protect"]
