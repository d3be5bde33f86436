"""``unprotected``: a hidden cell no suppression pattern can protect.

The interval audit (:mod:`sde.sdc.audit`) hides complementary cells until every
hidden cell's interval is at least the protection width wide. When nothing more
can be hidden and a cell is still narrower, *not* because a total of its own
line is small (the cell then keeps the whole range ``[0, total]``) but because
the known totals of crossing lines pin it (rows totalling 1 and 10, a column
totalling 1: the cell where the 10-row meets the other column is 9 or 10), the
protected table still gives the cell away. The table fails with this reason
and must not be released, not even in its protected form. Set by the audit.
"""

from __future__ import annotations

from sde.sdc.rules.base import Rule

RULE = Rule(
    id="unprotected",
    severity="fail",
    acro_check="none",
    explanation="the table's totals pin this hidden cell whatever else is hidden: "
    "do not release the table, not even its protected form",
    check=None,
)
