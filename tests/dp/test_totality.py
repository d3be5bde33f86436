"""DP mode has no error channel: no outcome may depend on data through an engine error.

The attack (issue 8): a predicate that makes the engine fail only when one person's value
passes a threshold ``T`` turns every query into an exact, free bit; a binary search on
``T`` reads the value. Here every probe family runs, on DuckDB, PostgreSQL and Spark, with
``T`` on both sides of a value known to be in the data: the outcome (refused with a rule,
or answered) must be the same for both thresholds, and never an engine error.

Then a table of error-producing constructs: each is refused before anything runs
(``dp.not-total``) or made total, and the total ones are shown to fail on a raw engine
(so the table tests something) and to run on every engine after the DP rewrite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sde.backends.base import Backend
from sde.backends.dialect import transpile
from sde.dp.analyse import analyse
from sde.dp.metadata import Metadata
from sde.dp.plan import build
from sde.errors import SDEError
from tests.dp.probes import largest_value, outcome, probe_engine

pytestmark = [pytest.mark.postgres, pytest.mark.spark]

ENGINES = ("duckdb", "postgresql", "spark")

JOINED = (
    "FROM person p JOIN measurement m ON m.person_id = p.person_id "
    "JOIN concept c ON c.concept_id = m.measurement_concept_id "
)

#: Probe families: each is an error on the raw engine exactly when some value > {T}.
PROBES = {
    "cast-text-to-int": "SELECT COUNT(*) AS n " + JOINED + "WHERE CAST(CASE WHEN "
    "m.value_as_number > {T} THEN 'x' ELSE '1' END AS INTEGER) = 1",
    "int-division-by-zero": "SELECT COUNT(*) AS n " + JOINED + "WHERE 1 / CASE WHEN "
    "m.value_as_number > {T} THEN 0 ELSE 1 END = 1",
    "float-division-by-zero": "SELECT COUNT(*) AS n " + JOINED + "WHERE 1.0 / CASE WHEN "
    "m.value_as_number > {T} THEN 0.0 ELSE 1.0 END > 0",
    "int-overflow": "SELECT COUNT(*) AS n " + JOINED + "WHERE p.year_of_birth + CASE WHEN "
    "m.value_as_number > {T} THEN 2147483647 ELSE 0 END > 0",
    "double-overflow": "SELECT COUNT(*) AS n " + JOINED + "WHERE m.value_as_number * CASE "
    "WHEN m.value_as_number > {T} THEN 1e308 ELSE 1 END > 0",
    "modulo-by-zero": "SELECT COUNT(*) AS n " + JOINED + "WHERE p.year_of_birth % CASE WHEN "
    "m.value_as_number > {T} THEN 0 ELSE 7 END >= 0",
    "sqrt-negative": "SELECT COUNT(*) AS n " + JOINED + "WHERE SQRT(CASE WHEN "
    "m.value_as_number > {T} THEN -1 ELSE 1 END) > 0",
    "cast-to-date": "SELECT COUNT(*) AS n " + JOINED + "WHERE CAST(CASE WHEN "
    "m.value_as_number > {T} THEN 'x' ELSE '2020-01-01' END AS DATE) > DATE '2000-01-01'",
    "nan-in-clamp": "SELECT SUM(LEAST(GREATEST(CASE WHEN m.value_as_number > {T} THEN "
    "0.0 / 0.0 ELSE 1.0 END, 0), 10)) AS s " + JOINED,
    "overflow-in-clamp": "SELECT SUM(LEAST(GREATEST(CASE WHEN m.value_as_number > {T} THEN "
    "1e308 * 10 ELSE 1.0 END, 0), 10)) AS s " + JOINED,
    "huge-value-in-grid": "SELECT AVG(LEAST(GREATEST(CASE WHEN m.value_as_number > {T} "
    "THEN 1e300 * 1e300 ELSE 1.0 END, 0), 10)) AS s " + JOINED,
}


@pytest.fixture(scope="module")
def known_value(engines: dict[str, Backend]) -> float:
    return largest_value(engines["duckdb"])


@pytest.mark.parametrize("probe", sorted(PROBES))
@pytest.mark.parametrize("name", ENGINES)
def test_probe_outcome_does_not_depend_on_the_threshold(
    engines: dict[str, Backend], known_value: float, tmp_path: Path, name: str, probe: str
) -> None:
    below, above = known_value - 0.5, known_value + 0.5
    outcomes = {}
    for label, t in (("below", below), ("above", above)):
        engine = probe_engine(engines[name], tmp_path, f"{probe}-{label}")
        outcomes[label] = outcome(engine, PROBES[probe].format(T=t))
    assert outcomes["below"] == outcomes["above"], outcomes
    assert outcomes["below"][1] != "dp.engine-error", outcomes  # refused or answered


#: Error-producing predicates. Refused: never run. Total: rewritten, run everywhere.
REFUSED = [
    "CAST(c.concept_name AS INTEGER) > 0",
    "CAST(m.value_as_number AS INTEGER) > 0",
    "CAST(m.value_as_number AS DECIMAL(5, 2)) > 0",
    "CAST(c.concept_name AS DATE) > DATE '2000-01-01'",
    "CAST('2020-13-45' AS DATE) < m.measurement_date",
    "m.measurement_date > '2020-13-45'",
    "c.concept_name = 5",
    "SUBSTRING(c.concept_name, -1, -2) = 'a'",
    "REGEXP_LIKE(c.concept_name, '(')",
    "c.concept_name LIKE 'a\\'",
    "POWER(m.value_as_number, 1000) > 0",
    "EXP(m.value_as_number) > 0",
    "LN(m.value_as_number - 200) > 0",
    "SQRT(m.value_as_number - 200) > 0",
    "p.person_id * 4 > 0",
    "p.person_id + p.person_id > 0",
    "m.measurement_date + p.year_of_birth * 1000000 > DATE '2000-01-01'",
    "MAKE_DATE(p.year_of_birth, 13, 1) > DATE '2000-01-01'",
    "TO_DATE(c.concept_name, 'YYYY') > DATE '2000-01-01'",
    "(ARRAY[1, 2])[p.year_of_birth] = 1",
    "ROUND(m.value_as_number, p.year_of_birth) > 0",
    "CAST(m.value_as_number AS BOOLEAN)",
    "CAST(c.concept_name AS DOUBLE PRECISION) > 0",
    "TRY_CAST(c.concept_name AS INTEGER) > 0",
]

TOTAL = [
    "1 / (p.year_of_birth - p.year_of_birth) IS NULL",
    "p.year_of_birth % (p.year_of_birth - p.year_of_birth) IS NULL",
    "m.value_as_number / (m.value_as_number - m.value_as_number) IS NULL",
    "0.0 / 0.0 IS NULL",
    "m.value_as_number * 1e308 * 1e308 > 0",
    "p.year_of_birth * 2000000000 > 0",
    "p.year_of_birth + 2147483647 > 0",
    "ABS(p.year_of_birth - 2147483647 - 2147483647) > 0",
    "-(p.year_of_birth * 1000000000) < 0",
    "FLOOR(m.value_as_number * 1e300) > 0",
    "CEIL(m.value_as_number / 1e-300) > 0",
    "CAST(m.value_as_number * 1e300 * 1e300 AS DOUBLE PRECISION) > 0",
    "m.value_as_number - 1e308 - 1e308 < 0",
]


def _sql(predicate: str) -> str:
    return "SELECT COUNT(*) AS n " + JOINED + "WHERE " + predicate


@pytest.mark.parametrize("predicate", REFUSED)
def test_partial_constructs_are_refused_before_running(predicate: str) -> None:
    with pytest.raises(SDEError) as err:
        analyse(_sql(predicate))
    assert err.value.rule == "dp.not-total", err.value.message


def _exact(predicate: str) -> str:
    plan = build(
        analyse(_sql(predicate)),
        epsilon=1.0,
        delta=None,
        rows=3,
        groups=1,
        salt="s",
        defaults=Metadata.default().defaults,
    )
    return plan.exact.sql


@pytest.mark.parametrize("predicate", TOTAL)
def test_partial_constructs_made_total_run_on_every_engine(
    engines: dict[str, Backend], predicate: str
) -> None:
    raw = _sql(predicate)
    failures = []
    for backend in engines.values():
        try:
            backend.query(transpile(raw, backend.dialect))
        except Exception as err:  # the raw construct is partial somewhere
            failures.append(f"{backend.name}: {type(err).__name__}")
    assert failures, f"{predicate} fails on no raw engine: the table tests nothing"
    exact = _exact(predicate)
    for backend in engines.values():
        frame = backend.query(transpile(exact, backend.dialect))
        assert "n_rows" in frame.columns, backend.name
