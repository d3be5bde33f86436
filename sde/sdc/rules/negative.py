"""``negative``: negative contributions make dominance unreliable: review.

The dominance rules assume non-negative contributions; with negatives a
large contributor can hide behind a small total.
"""

from __future__ import annotations

import numpy as np

from sde.sdc.config import SDCConfig
from sde.sdc.evidence import Evidence
from sde.sdc.rules.base import Rule


def check(ev: Evidence, cfg: SDCConfig) -> np.ndarray:
    """Cells with at least one negative value."""
    del cfg
    return np.asarray(ev.n_negative > 0)


RULE = Rule(
    id="negative",
    severity="review",
    acro_check="NegativeValuesCheck",
    explanation="negative values in the cell make the dominance rules unreliable",
    check=check,
)
