"""Shared test set-up.

Heavy fixtures (the synthetic population, the throwaway PostgreSQL server, the
Spark session) live in ``tests/fixtures/<topic>.py`` and start once per test
run; this file loads every module there as a pytest plugin.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import settings

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if not p.stem.startswith("_")
)

# Property tests: the suite (and CI) runs each with a fixed set of examples so a red run can be
# repeated exactly; `pytest --hypothesis-profile=explore` draws fresh, more numerous examples
# to look for new failures (add any it finds as an explicit example or fix the generator).
settings.register_profile("suite", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=1000, print_blob=True)
settings.load_profile("suite")
