"""``p-ratio``: (total - top1 - top2) / top1 < p.

If what the others contribute is less than ``p`` of the largest contribution,
the second-largest contributor can estimate the largest within ``p``. A cell
whose contributions are all zero fails too: each of them is then known
exactly (as in ACRO). Cells with negative contributions are left to the
``negative`` rule.
"""

from __future__ import annotations

import numpy as np

from sde.sdc.config import RATIO_TOLERANCE, SDCConfig
from sde.sdc.evidence import Evidence
from sde.sdc.rules.base import Rule


def check(ev: Evidence, cfg: SDCConfig) -> np.ndarray:
    """Cells where the rest is under ``p`` of the largest contribution.

    >>> from sde.sdc.evidence import group, cell_evidence
    >>> import pandas as pd
    >>> g = group([pd.Series(["a"] * 3 + ["b"] * 3)], [])
    >>> ev = cell_evidence(g, values=np.array([100.0, 50, 10, 100, 50, 9]))
    >>> check(ev, SDCConfig()).ravel().tolist()
    [False, True]
    """
    top1 = np.nan_to_num(ev.top[..., 0], nan=0.0)
    top2 = np.nan_to_num(ev.top[..., 1], nan=0.0)
    rest = ev.total - top1 - top2
    usable = (ev.n > 0) & (ev.n_negative == 0)
    positive = usable & (top1 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(positive, rest / np.where(positive, top1, 1.0), np.inf)
    all_zero = usable & (top1 == 0)
    return np.asarray((positive & (ratio < cfg.p_ratio - RATIO_TOLERANCE)) | all_zero)


RULE = Rule(
    id="p-ratio",
    severity="fail",
    acro_check="PPercentCheck",
    explanation="the largest contribution can be estimated closely by the second largest",
    check=check,
)
