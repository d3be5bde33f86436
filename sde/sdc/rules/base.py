"""What a rule is: a stable id, a severity, and a vectorised check over cell evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sde.sdc.config import SDCConfig
from sde.sdc.evidence import Evidence

Severity = Literal["fail", "review"]
CellCheck = Callable[[Evidence, SDCConfig], np.ndarray]


@dataclass(frozen=True)
class Rule:
    """One output-checking rule.

    ``check`` maps the evidence of a grid of cells to a boolean mask of the
    cells the rule flags; it is ``None`` for rules applied to other evidence
    (the differencing ledger).
    """

    id: str
    severity: Severity
    #: The name of the nearest ACRO check (results.json readers know these).
    acro_check: str
    #: One sentence a researcher understands, used in reports.
    explanation: str
    check: CellCheck | None
