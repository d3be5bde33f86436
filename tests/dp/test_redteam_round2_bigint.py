"""Red team, round 2: integer overflow at the BIGINT edge (found open, now closed).

``BIGINT_MAX`` was ``2.0**63 - 1``, which as a float is 2^63: a cast of 2^63 to BIGINT, or
``9223372036854775807 + <0 or 1>``, passed the static range check and failed on the engine
only for the target's rows. The bound is now 2^62, exact, and every case here must give the
same outcome on both sides of the target's value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sde.backends.base import Backend
from tests.dp.probes import largest_value, outcome, probe_engine

pytestmark = [pytest.mark.postgres, pytest.mark.spark]

ENGINES = ("duckdb", "postgresql", "spark")

JOINED = (
    "FROM person p JOIN measurement m ON m.person_id = p.person_id "
    "JOIN concept c ON c.concept_id = m.measurement_concept_id "
)

_TIMES_TEN = "CONCAT(s, s, s, s, s, s, s, s, s, s)"


def _concat_chain(levels: int) -> str:
    ctes = [
        "a0 AS (SELECT m.person_id, CASE WHEN m.value_as_number > {T} THEN 'xxxxxxxxxx' "
        "ELSE '' END AS s FROM measurement m)"
    ]
    for i in range(1, levels + 1):
        ctes.append(f"a{i} AS (SELECT person_id, {_TIMES_TEN} AS s FROM a{i - 1})")
    return (
        "WITH "
        + ", ".join(ctes)
        + f" SELECT COUNT(*) AS n FROM a{levels} x JOIN person p ON p.person_id = x.person_id "
        "WHERE LENGTH(x.s) >= 0"
    )


#: Each probe fails on a raw engine exactly when some value is > {T}, and passes the
#: totality checker today.
PROBES = {
    # BIGINT_MAX = 2.0**63 - 1 is 2.0**63 as a float: 2^63 passes "within range".
    "cast-double-2^63-to-bigint": "SELECT COUNT(*) AS n " + JOINED + "WHERE CAST(CASE WHEN "
    "m.value_as_number > {T} THEN 9.2233720368547758e18 ELSE 0.0 END AS BIGINT) >= 0",
    "bigint-add-at-2^63": "SELECT COUNT(*) AS n " + JOINED + "WHERE 9223372036854775807 + "
    "CASE WHEN m.value_as_number > {T} THEN 1 ELSE 0 END > 0",
    "bigint-negate-min": "SELECT COUNT(*) AS n " + JOINED + "WHERE -(CASE WHEN "
    "m.value_as_number > {T} THEN -9223372036854775807 - 1 ELSE 0 END) >= 0",
}


@pytest.fixture(scope="module")
def known_value(engines: dict[str, Backend]) -> float:
    return largest_value(engines["duckdb"])


@pytest.mark.parametrize("probe", sorted(PROBES))
@pytest.mark.parametrize("name", ENGINES)
def test_open_probe_outcome_does_not_depend_on_the_threshold(
    engines: dict[str, Backend], known_value: float, tmp_path: Path, name: str, probe: str
) -> None:
    outcomes = {}
    for label, t in (("below", known_value - 0.5), ("above", known_value + 0.5)):
        engine = probe_engine(engines[name], tmp_path, f"{probe}-{label}")
        outcomes[label] = outcome(engine, PROBES[probe].format(T=t))
    assert outcomes["below"] == outcomes["above"], outcomes
    assert outcomes["below"][1] != "dp.engine-error", outcomes
