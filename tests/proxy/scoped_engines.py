"""A project of the tests' own scope on each engine over the sentinel node(s).

DuckDB pools both sentinel nodes; PostgreSQL and Spark hold node ``lth`` (the
session fixtures ``pg_sentinel_dsn`` and ``spark_sentinel_warehouse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sde

ENGINES = ("duckdb", "postgres", "spark")


def connect_engine(
    request: pytest.FixtureRequest, engine: str, scope: Mapping[str, Any]
) -> tuple[Any, dict[str, dict[str, pd.DataFrame]]]:
    """A connection for ``scope`` on ``engine`` and the raw frames of the nodes it reads."""
    nodes = request.getfixturevalue("sentinel_nodes")
    registry = nodes.registry
    if engine == "duckdb":
        return sde.connect(nodes.folder, scope=dict(scope), user="tester"), nodes.raw
    lth = {"lth": nodes.raw["lth"]}
    if engine == "postgres":
        dsn = request.getfixturevalue("pg_sentinel_dsn")
        conn = sde.connect(dsn, scope=dict(scope), schema="lth", registry=registry, user="tester")
        return conn, lth
    warehouse: Path = request.getfixturevalue("spark_sentinel_warehouse")
    spark = request.getfixturevalue("spark")
    conn = sde.connect(
        warehouse, scope=dict(scope), spark=spark, node="lth", registry=registry, user="tester"
    )
    return conn, lth
