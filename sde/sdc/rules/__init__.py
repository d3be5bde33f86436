"""The output-checking rules, one module each, listed in order in :data:`RULES`.

The order is the order reports list them in. Which rules apply to which
statistic is :data:`APPLIES`, the table ``docs/sdc.md`` shows.

>>> [r.id for r in RULES][:8]
['threshold', 'nk-dominance', 'p-ratio', 'zeros', 'missing', 'negative', 'dof', 'differencing']
>>> [r.id for r in RULES][8:]   # set by the interval audit, and on a table with no cells
['unprotected', 'empty']
"""

from __future__ import annotations

from sde.sdc.rules import (
    differencing,
    dof,
    empty,
    missing,
    negative,
    nk_dominance,
    p_ratio,
    threshold,
    unprotected,
    zeros,
)
from sde.sdc.rules.base import Rule, Severity

RULES: tuple[Rule, ...] = (
    threshold.RULE,
    nk_dominance.RULE,
    p_ratio.RULE,
    zeros.RULE,
    missing.RULE,
    negative.RULE,
    dof.RULE,
    differencing.RULE,
    unprotected.RULE,
    empty.RULE,
)

BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}

_VALUES = ("missing",)
_LINEAR = ("threshold", "nk-dominance", "p-ratio", "missing", "negative")

#: Rules applied per statistic (the aggfunc of a table; ``None`` is a frequency table).
#: Follows ACRO's ontology, except that ``mode`` also gets ``threshold`` (ACRO checks
#: only zeros there, yet a mode of three records reveals their shared value).
APPLIES: dict[str | None, tuple[str, ...]] = {
    None: ("threshold", "zeros"),
    "count": ("threshold", "zeros", *_VALUES),
    "sum": _LINEAR,
    "mean": _LINEAR,
    "median": ("threshold", "zeros", *_VALUES),
    "min": ("threshold", "zeros", *_VALUES),
    "max": ("threshold", "zeros", *_VALUES),
    "mode": ("threshold", "zeros", *_VALUES),
    "std": ("dof", *_VALUES),
    "var": ("dof", *_VALUES),
}

#: Every table rule is also checked against the differencing ledger when one is given.
LEDGER_RULE = differencing.RULE.id

#: Set by the interval audit on hidden cells no pattern can protect.
AUDIT_RULE = unprotected.RULE.id

#: Set on a table with no cells.
EMPTY_RULE = empty.RULE.id


def rules_for(aggfunc: str | None) -> tuple[Rule, ...]:
    """The rules for a statistic, in registry order."""
    wanted = set(APPLIES[aggfunc])
    return tuple(rule for rule in RULES if rule.id in wanted)


__all__ = ["APPLIES", "BY_ID", "RULES", "Rule", "Severity", "rules_for"]
