"""``missing``: missing values inside a cell: review.

The statistic was computed without them; a checker confirms that this is what
the researcher meant and that the missingness itself reveals nothing.
"""

from __future__ import annotations

import numpy as np

from sde.sdc.config import SDCConfig
from sde.sdc.evidence import Evidence
from sde.sdc.rules.base import Rule


def check(ev: Evidence, cfg: SDCConfig) -> np.ndarray:
    """Cells with at least one missing value (when the check is on)."""
    if not cfg.check_missing_values:
        return np.zeros(ev.n.shape, dtype=bool)
    return np.asarray(ev.n_missing > 0)


RULE = Rule(
    id="missing",
    severity="review",
    acro_check="MissingCheck",
    explanation="some values in the cell are missing and were left out",
    check=check,
)
