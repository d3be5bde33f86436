"""``nk-dominance``: the ``n`` largest contributions make up at least ``k`` of the total.

With the defaults (n=2, k=0.9) two contributors who together hold 90% of a sum
could each estimate the other's value. Contributions are per unit (a person's
values in a cell are added up with ``persons=``). Cells with negative
contributions are left to the ``negative`` rule (dominance is undefined there),
as are cells whose total is zero.
"""

from __future__ import annotations

import numpy as np

from sde.sdc.config import RATIO_TOLERANCE, SDCConfig
from sde.sdc.evidence import Evidence
from sde.sdc.rules.base import Rule


def check(ev: Evidence, cfg: SDCConfig) -> np.ndarray:
    """Cells where ``sum(top n) / total >= k``.

    >>> from sde.sdc.evidence import group, cell_evidence
    >>> import pandas as pd
    >>> g = group([pd.Series(["a"] * 3 + ["b"] * 3)], [])
    >>> ev = cell_evidence(g, values=np.array([45.0, 45, 10, 45, 44.9, 10.1]))
    >>> check(ev, SDCConfig()).ravel().tolist()
    [True, False]
    """
    top_n = np.nansum(ev.top[..., : cfg.nk_n], axis=-1)
    total = ev.total
    usable = (ev.n > 0) & (ev.n_negative == 0) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(usable, top_n / np.where(usable, total, 1.0), 0.0)
    return np.asarray(usable & (ratio >= cfg.nk_k - RATIO_TOLERANCE))


RULE = Rule(
    id="nk-dominance",
    severity="fail",
    acro_check="NKCheck",
    explanation="a few contributors dominate the cell total",
    check=check,
)
