"""Shared test set-up.

Heavy fixtures (the synthetic population, the throwaway PostgreSQL server, the
Spark session) live in ``tests/fixtures/<topic>.py`` and start once per test
run; this file loads every module there as a pytest plugin.
"""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if not p.stem.startswith("_")
)
