"""The checks every extract build makes, whatever the engine.

>>> from sde.scope import Scope
>>> from sde.proxy.barrier.plan import ExtractPlan
>>> plan = ExtractPlan.of(Scope.from_dict({"project": "demo", "access": "rows",
...                                        "tables": {"person": ["person_id"]}}))
>>> try:
...     require_source_tables(plan, "lth", {"person"})
... except ConfigurationError as err:
...     err.rule
'nodes.incomplete'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sde.backends.base import Backend
from sde.errors import ConfigurationError
from sde.proxy.barrier.plan import ExtractPlan


def require_source_tables(plan: ExtractPlan, node: str, present: Iterable[str]) -> None:
    """Refuse a node that lacks a table the build reads (``sde_opt_out`` above all):
    an extract built without it would be guessed, not scoped."""
    have = set(present)
    missing = [t for t in plan.required_source_tables() if t not in have]
    if missing:
        raise ConfigurationError(
            "nodes.incomplete",
            f"node {node} has no table {missing[0]}; the project cannot be scoped safely",
            node=node,
        )


def check_pseudonyms(plan: ExtractPlan, backend: Backend, table: Callable[[str], str]) -> None:
    """Refuse an extract in which two rows of a table share a pseudonymised row id.

    63-bit pseudonyms can collide; a collision would merge two persons (or two
    events, clinicians, care sites) in every join. Every keyed table is checked:
    person-level tables and the shared ones whose own id is pseudonymised
    (``provider``, ``care_site``). ``table(name)`` is the extract table's name in SQL.
    """
    for plan_table in (t for t in plan.tables if t.keyed):
        own = plan_table.own_id
        if own not in plan_table.ids:
            continue
        dup = backend.query(
            f"SELECT COUNT({own}) - COUNT(DISTINCT {own}) AS dup FROM {table(plan_table.name)}"
        )["dup"].iloc[0]
        if dup:
            raise ConfigurationError(
                "pseudonym.collision",
                f"two {plan_table.name} rows received the same pseudonym; rotate the project key",
            )
