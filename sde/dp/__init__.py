"""Differentially private aggregates on OpenDP, with a budget that can never be overspent.

The researcher-facing entry is ``conn.sql_dp(...)`` / ``conn.budget()`` on a connection,
which delegate to :class:`DPEngine`. See ``docs/dp.md`` for the tour and the privacy notes.
Submodules load on first use (OpenDP is heavy): ``from sde.dp.engine import DPEngine``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DPEngine", "Ledger", "Metadata", "Quote"]


def __getattr__(name: str) -> Any:
    if name in {"DPEngine", "Quote"}:
        from sde.dp import engine

        return getattr(engine, name)
    if name == "Ledger":
        from sde.dp.ledger import Ledger

        return Ledger
    if name == "Metadata":
        from sde.dp.metadata import Metadata

        return Metadata
    raise AttributeError(f"module 'sde.dp' has no attribute {name!r}")
