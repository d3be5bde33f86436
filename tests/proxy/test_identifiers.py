"""Clinician and care-site ids leave a node only as per-project pseudonyms.

``provider_id`` names a clinician (a person) and ``care_site_id`` a GP practice or
ward (a quasi-identifier); raw, they would link a project's rows to other projects
and to the world. Every column of either kind, in every CDM table, is pseudonymised
with the project's key in a namespace per kind, the same on every node, so joins
between events, persons, ``provider`` and ``care_site`` still hold. The sentinel
nodes plant raw ids 880001... (providers) and 870001... (care sites) everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import sde
from sde.omop.cdm import CDM
from sde.proxy.barrier.plan import ExtractPlan
from sde.pseudonym import pseudonymise
from sde.scope import UNSCOPABLE_TABLES, Scope
from tests.fixtures.proxy import EngineCase, reference_db, scope_with
from tests.proxy.compare import rows
from tests.proxy.sentinel_data import CARE_SITES, PROVIDERS, SCOPE, sentinel_hits

KINDS = {"provider_id": "provider", "care_site_id": "care_site"}
TABLES: dict[str, Any] = {
    **SCOPE["tables"],
    "person": [*SCOPE["tables"]["person"], "provider_id", "care_site_id"],
    "measurement": [*SCOPE["tables"]["measurement"], "provider_id"],
    "provider": ["provider_id", "care_site_id", "specialty_concept_id"],
    "care_site": "*",
}
IDS_SCOPE = scope_with(project="care-pathways", tables=TABLES)
OTHER_SCOPE = scope_with(project="care-pathways-2", tables=TABLES)


def _scopable() -> list[str]:
    return sorted(t for t in CDM.tables() if t not in UNSCOPABLE_TABLES)


@pytest.mark.parametrize("table", _scopable())
def test_every_provider_and_care_site_column_is_pseudonymised(table: str) -> None:
    plan = ExtractPlan.of(Scope.load({"project": "p", "access": "rows", "tables": {table: "*"}}))
    (planned,) = plan.tables
    for column, namespace in KINDS.items():
        if column in planned.columns:
            assert planned.ids[column] == namespace, (table, column)
            assert namespace in plan.namespaces


def test_provider_and_care_site_namespaces_are_per_kind_and_per_project() -> None:
    key, other = bytes(range(32)), bytes(range(1, 33))
    for namespace in KINDS.values():
        lth = pseudonymise(key, "lth", namespace, [880001])
        assert lth == pseudonymise(key, "elht", namespace, [880001])  # pooled joins hold
        assert lth != pseudonymise(other, "lth", namespace, [880001])  # unlinkable
        assert lth != [880001]
    assert pseudonymise(key, "lth", "provider", [7]) != pseudonymise(key, "lth", "care_site", [7])
    assert pseudonymise(key, "lth", "provider", [7]) != pseudonymise(key, "lth", "person", [7])


@pytest.fixture(scope="module", params=["duckdb", "postgres", "spark"])
def ids_case(request: pytest.FixtureRequest, sentinel_nodes: Any) -> Iterator[EngineCase]:
    """IDS_SCOPE on each engine (DuckDB pools both nodes), with its hand-made reference."""
    scope = Scope.load(IDS_SCOPE)
    key = sentinel_nodes.key(scope.project)
    registry = sentinel_nodes.registry
    if request.param == "duckdb":
        conn = sde.connect(sentinel_nodes.folder, scope=IDS_SCOPE, user="tester")
        raw = sentinel_nodes.raw
    elif request.param == "postgres":
        dsn = request.getfixturevalue("pg_sentinel_dsn")
        conn = sde.connect(dsn, scope=IDS_SCOPE, schema="lth", registry=registry, user="tester")
        raw = {"lth": sentinel_nodes.raw["lth"]}
    else:
        warehouse: Path = request.getfixturevalue("spark_sentinel_warehouse")
        spark = request.getfixturevalue("spark")
        conn = sde.connect(
            warehouse, scope=IDS_SCOPE, spark=spark, node="lth", registry=registry, user="tester"
        )
        raw = {"lth": sentinel_nodes.raw["lth"]}
    reference = reference_db(raw, scope, key)
    yield EngineCase(request.param, conn, reference)
    reference.close()
    conn.close()


JOINS = {
    "visit-care-site": "SELECT v.visit_occurrence_id, c.care_site_id, c.location_id "
    "FROM visit_occurrence v JOIN care_site c ON c.care_site_id = v.care_site_id",
    "visit-provider": "SELECT v.visit_occurrence_id, p.provider_id, p.care_site_id "
    "FROM visit_occurrence v JOIN provider p ON p.provider_id = v.provider_id",
    "provider-practice": "SELECT p.provider_id, c.location_id "
    "FROM provider p JOIN care_site c ON c.care_site_id = p.care_site_id",
    "person-gp": "SELECT pe.person_id, c.location_id FROM person pe "
    "JOIN care_site c ON c.care_site_id = pe.care_site_id",
    "condition-same-clinician": "SELECT co.condition_occurrence_id FROM condition_occurrence co "
    "JOIN visit_occurrence v ON v.visit_occurrence_id = co.visit_occurrence_id "
    "AND v.provider_id = co.provider_id",
    "measurement-clinician-practice": "SELECT m.measurement_id, c.care_site_id FROM measurement m "
    "JOIN provider p ON p.provider_id = m.provider_id JOIN care_site c "
    "ON c.care_site_id = p.care_site_id",
}


@pytest.mark.parametrize("name", sorted(JOINS))
def test_joins_on_pseudonymised_ids_hold(name: str, ids_case: EngineCase) -> None:
    """Every row joins as it does on raw ids; the ids equal the Python reference HMAC."""
    got = ids_case.conn.sql(JOINS[name])
    expected = ids_case.reference.execute(JOINS[name]).fetch_df()
    assert len(got) > 0
    assert rows(got) == rows(expected)
    assert not sentinel_hits(got)


@pytest.mark.parametrize("table", ["person", "visit_occurrence", "measurement", "provider"])
def test_raw_provider_and_care_site_ids_never_appear(table: str, ids_case: EngineCase) -> None:
    got = ids_case.conn.sql(f"SELECT * FROM {table}")
    assert len(got) > 0
    assert not sentinel_hits(got)
    for column in set(KINDS) & set(got.columns):
        values = set(got[column].dropna().astype("int64"))
        assert values, (table, column)
        assert not values & set(PROVIDERS + CARE_SITES)
        assert all(v > 10**9 for v in values)  # 63-bit pseudonyms, not small raw ids


def test_care_site_table_is_pseudonymised_and_keyed_order(ids_case: EngineCase) -> None:
    got = ids_case.conn.sql("SELECT care_site_id, location_id FROM care_site")
    assert len(got) == len(CARE_SITES)
    assert not set(got.care_site_id.astype("int64")) & set(CARE_SITES)
    ids = [int(v) for v in got.care_site_id]
    assert ids == sorted(ids)  # written in keyed-pseudonym order, not raw ids ascending


def test_two_projects_cannot_link_clinicians(sentinel_nodes: Any) -> None:
    node = sentinel_nodes.folder / "lth.duckdb"
    sql = "SELECT care_site_id FROM care_site"
    with (
        sde.connect(node, scope=IDS_SCOPE, user="tester") as a,
        sde.connect(node, scope=OTHER_SCOPE, user="tester") as b,
    ):
        first, second = a.sql(sql), b.sql(sql)
        providers = (
            a.sql("SELECT provider_id FROM provider"),
            b.sql("SELECT provider_id FROM provider"),
        )
    assert len(first) == len(second) == len(CARE_SITES)
    assert not set(first.care_site_id) & set(second.care_site_id)
    assert not set(providers[0].provider_id) & set(providers[1].provider_id)


def test_reference_is_raw_in_the_node(sentinel_nodes: Any) -> None:
    """The planted raw ids are really in the node (so their absence above means something)."""
    with duckdb.connect(str(sentinel_nodes.folder / "lth.duckdb"), read_only=True) as con:
        visits = {r[0] for r in con.execute("SELECT care_site_id FROM visit_occurrence").fetchall()}
        clinicians = {r[0] for r in con.execute("SELECT provider_id FROM measurement").fetchall()}
    assert visits == set(CARE_SITES)
    assert clinicians == set(PROVIDERS)
