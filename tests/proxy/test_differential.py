"""Differential: research queries through the proxy equal the hand-filtered reference.

The reference tables are filtered in pandas (cohort with descendants, opt-outs,
period, observation-period overlap) and pseudonymised with the Python
reference HMAC, independently of the proxy's SQL; the query runs on them as
written (transpiled by sqlglot only). Through the proxy it runs on the project
extract on DuckDB (two nodes, pooled), PostgreSQL and Spark (node ``lth``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from sde.proxy.context import RuleContext
from sde.scope import Scope
from tests.proxy.compare import rows
from tests.proxy.sentinel_data import SCOPE, sentinel_hits

QUERIES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "research_queries.yaml").read_text("utf-8")
)


def _reference_sql(sql: str) -> str:
    """The query for the reference DuckDB, keeping PostgreSQL's typed semantics (int / int)."""
    tree = sqlglot.parse_one(sql, read="postgres")
    schema = RuleContext(Scope.load(SCOPE)).schema
    tree = annotate_types(qualify(tree, schema=schema, dialect="postgres"), schema=schema)
    return tree.sql("duckdb")


def test_enough_queries() -> None:
    assert len(QUERIES) >= 60


@pytest.mark.parametrize("query", QUERIES, ids=[q["name"] for q in QUERIES])
def test_proxy_equals_reference(query: dict[str, Any], engine_case: Any) -> None:
    got = engine_case.conn.sql(query["sql"])
    reference_sql = _reference_sql(query["sql"])
    expected = engine_case.reference.execute(reference_sql).fetch_df()
    assert len(got.columns) == len(expected.columns)
    assert rows(got) == rows(expected)
    assert not sentinel_hits(got)
