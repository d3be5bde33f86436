"""The three engines give the same answers to the same research questions.

Each query in ``tests/research_queries/`` is written once in PostgreSQL (the
researcher's dialect) and goes down the proxy's own path on each engine: the
parsed tree is written by :meth:`sde.proxy.pipeline.Prepared.sql` (the
transpiler of :mod:`sde.proxy.transpile` with its fixes, identifiers quoted;
PostgreSQL included: the proxy regenerates SQL from its parse tree, so the round
trip must hold too) and run by :meth:`sde.proxy.barrier.BackendExtract.run` on
the engine's backend, over the same node loaded into DuckDB, PostgreSQL and
Spark. The scope rules are left out (these queries read the raw node, opt-out
list included). The results must be equal: same columns, same dtypes, same rows
once sorted, floats within a relative 1e-9.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import sqlglot

from sde.backends.base import Backend
from sde.proxy.barrier import BackendExtract
from sde.proxy.pipeline import Prepared
from tests.fixtures.engines import TIMINGS

QUERIES = sorted((Path(__file__).parent / "research_queries").glob("*.sql"))
ENGINES = ("duckdb", "postgresql", "spark")

pytestmark = [pytest.mark.postgres, pytest.mark.spark]


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a stable order: by every non-float column, then floats rounded."""
    keys = pd.DataFrame(index=frame.index)
    plain = [c for c in frame.columns if frame[c].dtype != "float64"]
    floats = [c for c in frame.columns if frame[c].dtype == "float64"]
    for i, column in enumerate(plain + floats):
        values = frame[column]
        keys[f"k{i}"] = values.round(6) if column in floats else values
    order = keys.sort_values(list(keys.columns), na_position="last", kind="mergesort").index
    return frame.loc[order].reset_index(drop=True)


def run(backend: Backend, sql: str) -> pd.DataFrame:
    """``sql`` as the proxy writes and runs it on ``backend``'s engine."""
    prepared = Prepared(sql, sqlglot.parse_one(sql, read="postgres"), threshold=None)
    extract = BackendExtract(backend, ("synth",))
    started = time.perf_counter()
    try:
        return extract.run(prepared.sql(extract.dialect), timeout_s=300, max_rows=1_000_000)
    finally:
        label = f"research queries on {backend.name}"
        TIMINGS[label] = TIMINGS.get(label, 0.0) + time.perf_counter() - started


def test_there_are_enough_research_queries() -> None:
    assert len(QUERIES) >= 15


@pytest.mark.parametrize("query", QUERIES, ids=[q.stem for q in QUERIES])
def test_engines_agree(engines: dict[str, Backend], query: Path) -> None:
    sql = query.read_text()
    results = {name: canonical(run(engines[name], sql)) for name in ENGINES}
    reference = results["duckdb"]
    assert len(reference) > 0, f"{query.stem} returns no rows: the comparison would prove nothing"
    for name in ("postgresql", "spark"):
        pd.testing.assert_frame_equal(
            results[name], reference, check_dtype=True, rtol=1e-9, atol=1e-12, obj=name
        )
