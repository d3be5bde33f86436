"""Raw text identifiers of devices and specimens never leave a node (issue 8, "Also").

``device_exposure.unique_device_id`` (the UDI of one physical device, often an
implant: one person), ``device_exposure.production_id`` and
``specimen.specimen_source_id`` (a laboratory accession number) are withheld like
``person_source_value``: a scope may list them, but they are recorded as withheld,
absent from the project extract and refused by name in every query.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

import sde
from sde.errors import ScopeViolation, SDEError
from sde.scope import Scope
from tests.fixtures.proxy import scope_with

WITHHELD = {
    "device_exposure": ("unique_device_id", "production_id"),
    "specimen": ("specimen_source_id",),
}
PLANTED = ("SENTINEL-UDI-0001", "SENTINEL-PROD-0001", "SENTINEL-SPECIMEN-0001")


def _node_with_devices(sentinel_nodes: Any, folder: Path) -> Path:
    """The lth sentinel node plus one device and one specimen of an in-scope person."""
    node = folder / "lth.duckdb"
    shutil.copy(sentinel_nodes.folder / "lth.duckdb", node)
    day = dt.date(2020, 6, 1)
    with duckdb.connect(str(node)) as con:
        con.execute(
            "INSERT INTO device_exposure (device_exposure_id, person_id, device_concept_id, "
            "device_exposure_start_date, device_type_concept_id, unique_device_id, "
            "production_id) VALUES (1, 900001, 4000100, ?, 32817, ?, ?)",
            [day, PLANTED[0], PLANTED[1]],
        )
        con.execute(
            "INSERT INTO specimen (specimen_id, person_id, specimen_concept_id, "
            "specimen_type_concept_id, specimen_date, specimen_source_id) "
            "VALUES (1, 900001, 4000200, 32817, ?, ?)",
            [day, PLANTED[2]],
        )
    return node


def _scope(listing: str) -> dict[str, Any]:
    tables: dict[str, Any] = dict(scope_with()["tables"])
    if listing == "star":
        tables |= {"device_exposure": "*", "specimen": "*"}
    else:
        tables["device_exposure"] = [
            "device_exposure_id",
            "person_id",
            *WITHHELD["device_exposure"],
        ]
        tables["specimen"] = ["specimen_id", "person_id", *WITHHELD["specimen"]]
    return scope_with(project="devices-study", tables=tables)


@pytest.mark.parametrize("listing", ["star", "explicit"])
def test_scope_withholds_device_and_specimen_identifiers(listing: str) -> None:
    scope = Scope.load(_scope(listing))
    for table, columns in WITHHELD.items():
        assert not set(columns) & set(scope.columns(table))
        if listing == "explicit":
            assert {f"{table}.{c}" for c in columns} <= set(scope.withheld)


@pytest.mark.parametrize("listing", ["star", "explicit"])
def test_device_and_specimen_identifiers_never_reach_a_researcher(
    listing: str, sentinel_nodes: Any, tmp_path: Path
) -> None:
    node = _node_with_devices(sentinel_nodes, tmp_path)
    with sde.connect(node, scope=_scope(listing), user="tester") as conn:
        for table, columns in WITHHELD.items():
            for column in columns:
                with pytest.raises(ScopeViolation) as info:
                    conn.sql(f"SELECT {column} FROM {table}")
                assert info.value.rule == "columns.not-allowed"
                assert column in info.value.message
            extract = conn._extract._con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
            ).fetchall()
            assert not set(columns) & {r[0] for r in extract}
        shown = conn.sql("SELECT device_exposure_id, person_id FROM device_exposure")
        assert len(shown) == 1  # the row is in scope; only its identifiers are withheld
        for attempt in (
            "SELECT * FROM device_exposure",
            "SELECT d.* FROM specimen d",
            "SELECT CAST(d AS VARCHAR) AS r FROM device_exposure d",
        ):
            try:
                frame = conn.sql(attempt, dialect="duckdb")
            except SDEError:
                continue
            text = frame.astype(str).to_string()
            assert not any(p in text for p in PLANTED), attempt


def test_a_listed_never_exposed_column_is_said_withheld_at_load_and_in_refusals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Listed in the scope file, ``person_source_value`` is not 'not available' (as if the
    committee had forgotten it): it is withheld by design, at load time and in queries."""
    from sde.proxy.context import RuleContext
    from sde.proxy.pipeline import prepare

    tables = dict(scope_with()["tables"])
    tables["person"] = [*tables["person"], "person_source_value"]
    with caplog.at_level("WARNING", logger="sde.scope"):
        scope = Scope.load(scope_with(project="listed-nhs-number", tables=tables))
    assert scope.withheld == ("person.person_source_value",)
    assert "withheld by design" in scope.notices[0]
    assert any("person.person_source_value is withheld by design" in m for m in caplog.messages)
    for sql in (
        "SELECT person_source_value FROM person",
        "SELECT p.person_source_value FROM person p",
    ):
        with pytest.raises(ScopeViolation) as info:
            prepare(sql, RuleContext(scope))
        assert info.value.rule == "columns.not-allowed"
        assert "withheld by design" in info.value.message
    with pytest.raises(ScopeViolation) as info:
        prepare("SELECT month_of_birth FROM person", RuleContext(scope))
    assert "withheld" not in info.value.message  # merely not listed
