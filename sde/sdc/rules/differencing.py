"""``differencing``: with an earlier release, a published cell reveals a small group.

Two published counts over nested groups (one category or one period more or
less, a total and the total minus one subgroup, nested groupings) give away
the count of their difference. Applied by the project's ledger
(:mod:`sde.sdc.differencing`), which names the earlier release.
"""

from __future__ import annotations

from sde.sdc.rules.base import Rule

RULE = Rule(
    id="differencing",
    severity="fail",
    acro_check="PresenceOfLinkedTableCheck",
    explanation="together with an earlier release this cell reveals a group below the threshold",
    check=None,
)
