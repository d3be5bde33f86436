"""``location_id`` leaves a node only as a per-project pseudonym, and joins still hold.

A location is a small area (here an LSOA of about 1,500 residents); its raw id is the
same in every project, so shown raw it links a project's persons to another's and to
the node's map. It should be pseudonymised like ``provider_id`` and ``care_site_id``:
in every table that has it (``person``, ``care_site``, ``location``), in one namespace
``location`` whose subkey leaves the node out (``location`` is a shared table, taken
from one node in a pooled extract), so ``person.location_id = location.location_id``
keeps joining. The sentinel nodes hold raw location ids 1 to 5.

The pseudonym itself is computed by :mod:`sde.pseudonym` (``location`` is one of its
shared namespaces) and the extract builders (:mod:`sde.proxy.barrier`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import sde
from sde.omop.cdm import CDM
from sde.proxy.barrier.plan import ExtractPlan
from sde.pseudonym import pseudonymise
from sde.scope import UNSCOPABLE_TABLES, Scope
from tests.fixtures.proxy import scope_with
from tests.proxy.scoped_engines import ENGINES, connect_engine
from tests.proxy.sentinel_data import CARE_SITES, SCOPE, sentinel_hits

TABLES: dict[str, Any] = {
    **SCOPE["tables"],
    "person": [*SCOPE["tables"]["person"], "care_site_id"],  # location_id listed already
    "care_site": ["care_site_id", "location_id"],
    "location": ["location_id", "county"],
}
LOCATION_SCOPE = scope_with(project="small-areas", tables=TABLES)
OTHER_SCOPE = scope_with(project="small-areas-2", tables=TABLES)
RAW_LOCATIONS = frozenset(range(1, 6))


def _with_location() -> list[str]:
    return sorted(
        t
        for t in CDM.tables()
        if t not in UNSCOPABLE_TABLES and CDM.table(t).has_column("location_id")
    )


def test_the_tables_with_a_location_id() -> None:
    assert _with_location() == ["care_site", "location", "person"]


@pytest.mark.parametrize("table", _with_location())
def test_every_location_id_column_is_pseudonymised(table: str) -> None:
    plan = ExtractPlan.of(Scope.load({"project": "p", "access": "rows", "tables": {table: "*"}}))
    (planned,) = plan.tables
    assert planned.ids.get("location_id") == "location"
    assert "location" in plan.namespaces


@pytest.fixture(scope="module", params=ENGINES)
def location_conn(request: pytest.FixtureRequest) -> Iterator[Any]:
    conn, _ = connect_engine(request, request.param, LOCATION_SCOPE)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def location_key(sentinel_nodes: Any) -> bytes:
    key: bytes = sentinel_nodes.key(Scope.load(LOCATION_SCOPE).project)
    return key


@pytest.mark.parametrize("table", ["person", "care_site", "location"])
def test_location_ids_reach_a_researcher_as_pseudonyms(
    table: str, location_conn: Any, location_key: bytes
) -> None:
    got = {int(v) for v in location_conn.sql(f"SELECT location_id FROM {table}").location_id}
    assert got
    # one namespace for every node of the project: the node part of the subkey is empty
    expected = set(pseudonymise(location_key, "", "location", sorted(RAW_LOCATIONS)))
    assert got <= expected, table
    assert not got & RAW_LOCATIONS


def test_location_table_is_written_in_keyed_order(location_conn: Any) -> None:
    ids = [int(v) for v in location_conn.sql("SELECT location_id FROM location").location_id]
    assert len(ids) == len(RAW_LOCATIONS)
    assert not set(ids) & RAW_LOCATIONS
    assert ids == sorted(ids)  # keyed-pseudonym order, not raw ids ascending


JOINS = {
    "person-location": (
        "SELECT p.person_id, l.county FROM person p JOIN location l "
        "ON l.location_id = p.location_id",
        "SELECT COUNT(*) AS n FROM person WHERE location_id IS NOT NULL",
    ),
    "care-site-location": (
        "SELECT c.care_site_id, l.county FROM care_site c JOIN location l "
        "ON l.location_id = c.location_id",
        "SELECT COUNT(*) AS n FROM care_site WHERE location_id IS NOT NULL",
    ),
    "person-site-location": (
        "SELECT p.person_id, l.county FROM person p JOIN care_site c "
        "ON c.care_site_id = p.care_site_id JOIN location l ON l.location_id = c.location_id",
        "SELECT COUNT(*) AS n FROM person p JOIN care_site c ON c.care_site_id = p.care_site_id "
        "WHERE c.location_id IS NOT NULL",
    ),
}


@pytest.mark.parametrize("name", sorted(JOINS))
def test_joins_on_location_ids_hold(name: str, location_conn: Any) -> None:
    """Both sides of each join carry the same project's location ids: every row joins."""
    sql, count_sql = JOINS[name]
    got = location_conn.sql(sql)
    expected = int(location_conn.sql(count_sql).n.iloc[0])
    assert len(got) == expected > 0
    assert set(got.county) == {"Lancashire"}
    assert not sentinel_hits(got)


def test_care_sites_all_have_a_location(location_conn: Any) -> None:
    got = location_conn.sql("SELECT care_site_id FROM care_site WHERE location_id IS NOT NULL")
    assert len(got) == len(CARE_SITES)


def test_two_projects_cannot_link_locations(sentinel_nodes: Any) -> None:
    node = sentinel_nodes.folder / "lth.duckdb"
    sql = "SELECT DISTINCT location_id FROM person"
    with (
        sde.connect(node, scope=LOCATION_SCOPE, user="tester") as a,
        sde.connect(node, scope=OTHER_SCOPE, user="tester") as b,
    ):
        first, second = set(a.sql(sql).location_id), set(b.sql(sql).location_id)
    assert len(first) == len(second) > 1
    assert not first & second
