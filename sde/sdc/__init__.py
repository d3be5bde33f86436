"""Output checking (Five Safes: safe outputs): statistical disclosure control.

The researcher's surface mirrors pandas::

    t = sde.sdc.crosstab(df.sex, df.ward)                       # counts
    t = sde.sdc.pivot_table(df, values="bmi", index="sex", columns="ward", aggfunc="mean")
    t.status, t.flags, t.safe, t.report                          # verdict and protection

Rules (:mod:`sde.sdc.rules`) follow ACRO/SACRO defaults; beyond ACRO, tables are
protected by secondary suppression (:mod:`sde.sdc.suppression`) or rounding
(:mod:`sde.sdc.rounding`), and checked against a per-project differencing
ledger (:mod:`sde.sdc.differencing`). Models, histograms, bar charts and
survival tables are checked by :mod:`sde.sdc.outputs`. Reports are ACRO's
``results.json`` plus Markdown/HTML (:mod:`sde.sdc.report`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sde.sdc.checked import CheckedTable, ReleaseSpec
    from sde.sdc.config import SDCConfig
    from sde.sdc.differencing import (
        Between,
        Cell,
        DifferencingLedger,
        In,
        NotNull,
        open_ledger,
    )
    from sde.sdc.outputs import (
        CheckedOutput,
        check_counts,
        check_figure,
        check_histogram,
        check_regression,
        check_survival,
    )
    from sde.sdc.report import results_document, write_outputs
    from sde.sdc.rounding import POLICIES, BaseRounding, Midpoint6, RedactThenRound, shares
    from sde.sdc.rules import APPLIES, RULES
    from sde.sdc.tables import crosstab, pivot_table

#: Where each public name lives. Imported on first use, so that ``sde.sdc.config``
#: (read by every scope file) does not pull in pandas tables, scipy and the ledger.
_HOME = {
    "CheckedTable": "checked",
    "ReleaseSpec": "checked",
    "SDCConfig": "config",
    "Between": "differencing",
    "Cell": "differencing",
    "DifferencingLedger": "differencing",
    "In": "differencing",
    "NotNull": "differencing",
    "open_ledger": "differencing",
    "CheckedOutput": "outputs",
    "check_counts": "outputs",
    "check_figure": "outputs",
    "check_histogram": "outputs",
    "check_regression": "outputs",
    "check_survival": "outputs",
    "results_document": "report",
    "write_outputs": "report",
    "POLICIES": "rounding",
    "BaseRounding": "rounding",
    "Midpoint6": "rounding",
    "RedactThenRound": "rounding",
    "shares": "rounding",
    "APPLIES": "rules",
    "RULES": "rules",
    "crosstab": "tables",
    "pivot_table": "tables",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'sde.sdc' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sde.sdc.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "APPLIES",
    "POLICIES",
    "RULES",
    "BaseRounding",
    "Between",
    "Cell",
    "CheckedOutput",
    "CheckedTable",
    "DifferencingLedger",
    "In",
    "Midpoint6",
    "NotNull",
    "RedactThenRound",
    "ReleaseSpec",
    "SDCConfig",
    "check_counts",
    "check_figure",
    "check_histogram",
    "check_regression",
    "check_survival",
    "crosstab",
    "open_ledger",
    "pivot_table",
    "results_document",
    "shares",
    "write_outputs",
]
