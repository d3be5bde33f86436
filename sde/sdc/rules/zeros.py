"""``zeros``: an empty cell (zero units) is reported as potentially disclosive.

A zero says that nobody in a group has a characteristic (class disclosure).
Applied to counts, min/max, median and mode, as ACRO does; switched off by
``zeros_are_disclosive: false``.
"""

from __future__ import annotations

import numpy as np

from sde.sdc.config import SDCConfig
from sde.sdc.evidence import Evidence
from sde.sdc.rules.base import Rule


def check(ev: Evidence, cfg: SDCConfig) -> np.ndarray:
    """Cells with no contributing unit (when zeros are disclosive)."""
    if not cfg.zeros_are_disclosive:
        return np.zeros(ev.n.shape, dtype=bool)
    return np.asarray(ev.n == 0)


RULE = Rule(
    id="zeros",
    severity="fail",
    acro_check="PresenceOfZeroCheck",
    explanation="the cell is empty: a zero can reveal that nobody in a group has a trait",
    check=check,
)
