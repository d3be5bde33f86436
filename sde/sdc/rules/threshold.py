"""``threshold``: a cell describing fewer than ``threshold`` units fails.

Units are records, or distinct persons with ``persons=``. For tables of values
only units with a non-missing value count (they are the ones the statistic
describes). Empty cells count as 0 and fail.
"""

from __future__ import annotations

import numpy as np

from sde.sdc.config import SDCConfig
from sde.sdc.evidence import Evidence
from sde.sdc.rules.base import Rule


def check(ev: Evidence, cfg: SDCConfig) -> np.ndarray:
    """Cells with fewer than ``cfg.threshold`` contributing units.

    >>> from sde.sdc.evidence import group, cell_evidence
    >>> import pandas as pd
    >>> g = group([pd.Series(["a"] * 9 + ["b"] * 10)], [])
    >>> check(cell_evidence(g), SDCConfig()).ravel().tolist()
    [True, False]
    """
    return np.asarray(ev.n < cfg.threshold)


RULE = Rule(
    id="threshold",
    severity="fail",
    acro_check="MinimumThresholdCheck",
    explanation="the cell describes fewer units than the threshold",
    check=check,
)
