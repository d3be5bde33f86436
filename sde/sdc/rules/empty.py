"""``empty``: the table has no cells (no record, or none with a label).

An empty output is not approved silently: it says that nobody in the
described group exists (class disclosure), or that the filter was wrong.
"""

from __future__ import annotations

from sde.sdc.rules.base import Rule

RULE = Rule(
    id="empty",
    severity="fail",
    acro_check="none",
    explanation="the table is empty: it says nobody in the described group exists",
    check=None,
)
