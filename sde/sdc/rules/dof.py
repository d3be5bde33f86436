"""``dof``: residual degrees of freedom under ``dof_threshold`` fail.

For a model, the residual degrees of freedom; for a standard deviation or
variance in a table, the cell's contributing units minus one (as ACRO does).
Too few degrees of freedom make a model or a spread a lookup table.
"""

from __future__ import annotations

import numpy as np

from sde.sdc.config import SDCConfig
from sde.sdc.evidence import Evidence
from sde.sdc.rules.base import Rule


def too_few(dof: float, cfg: SDCConfig) -> bool:
    """Whether ``dof`` residual degrees of freedom are too few.

    >>> too_few(9, SDCConfig()), too_few(10, SDCConfig())
    (True, False)
    """
    return bool(dof < cfg.dof_threshold)


def check(ev: Evidence, cfg: SDCConfig) -> np.ndarray:
    """Cells whose ``n - 1`` is below the threshold."""
    return np.asarray((ev.n - 1) < cfg.dof_threshold)


RULE = Rule(
    id="dof",
    severity="fail",
    acro_check="MinimumDoFCheck",
    explanation="too few residual degrees of freedom",
    check=check,
)
