"""The error-probe harness the DP probe tests share (totality and the red-team rounds).

A probe is a query that fails on a raw engine only when one person's value is above ``T``;
the tests run it on each engine just below and just above the largest value and assert
that the outcome (answered, or the error class and rule) is the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sde.backends.base import Backend
from sde.backends.dialect import transpile
from sde.dp.engine import DPEngine
from sde.errors import SDEError
from sde.registry.db import open_registry


def largest_value(backend: Backend) -> float:
    """The largest measurement value: one person's exact value, the attacker's target."""
    return float(backend.query("SELECT MAX(value_as_number) AS v FROM measurement")["v"][0])


def probe_engine(backend: Backend, tmp_path: Path, project: str) -> DPEngine:
    """A DP engine straight over ``backend`` with its own registry and a roomy budget."""

    def run(sql: str, dialect: str) -> Any:
        return backend.query(transpile(sql, backend.dialect, source=dialect))

    registry = open_registry(f"sqlite:///{tmp_path / f'{project}.sqlite'}")
    return DPEngine(run, registry=registry, project=project, budget=(10.0, 1e-6))


def outcome(engine: DPEngine, sql: str, dialect: str | None = None) -> tuple[str, str]:
    """What the researcher sees of one probe: ``answered``, or the error class and rule."""
    try:
        engine.sql_dp(sql, epsilon=0.001, dialect=dialect)
    except SDEError as err:
        return type(err).__name__, err.rule
    return "answered", ""
