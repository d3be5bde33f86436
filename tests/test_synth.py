"""The synthetic population's files: schema, nodes, ids, manifest, opt-outs, NHS numbers."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from sde.omop.cdm import CDM
from sde.omop.ddl import CUSTODIAN_TABLES
from sde.omop.synth.chunk import PERSON_TABLES
from sde.omop.synth.geography import geography
from sde.omop.synth.nhs_number import is_valid
from sde.omop.vocabulary import IMD_DECILE_CONCEPT_ID, all_concepts
from tests.fixtures.synth import SYNTH_PERSONS, SYNTH_SEED, all_nodes

NODES = ("lth", "elht", "umbh")

#: Each table's own id column.
ID_COLUMNS = {
    "person": "person_id",
    "observation_period": "observation_period_id",
    "visit_occurrence": "visit_occurrence_id",
    "condition_occurrence": "condition_occurrence_id",
    "drug_exposure": "drug_exposure_id",
    "measurement": "measurement_id",
    "observation": "observation_id",
}


def test_manifest_describes_the_files(synth_dir: Path) -> None:
    manifest = json.loads((synth_dir / "manifest.json").read_text())
    assert manifest["seed"] == SYNTH_SEED
    assert manifest["persons"] == SYNTH_PERSONS
    assert manifest["generator_version"]
    assert [n["name"] for n in manifest["nodes"]] == list(NODES)
    assert sum(n["persons"] for n in manifest["nodes"]) == SYNTH_PERSONS
    for node in manifest["nodes"]:
        with duckdb.connect(str(synth_dir / node["file"]), read_only=True) as con:
            for table, rows in node["rows"].items():
                assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (rows,), table
    assert sorted(p.name for p in synth_dir.iterdir()) == sorted(
        ["manifest.json", *(f"{n}.duckdb" for n in NODES)]
    )


@pytest.mark.parametrize("node", NODES)
def test_every_cdm_table_has_the_cdm_columns(synth_dir: Path, node: str) -> None:
    with duckdb.connect(str(synth_dir / f"{node}.duckdb"), read_only=True) as con:
        found: dict[str, list[str]] = {}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "ORDER BY table_name, ordinal_position"
        ).fetchall():
            found.setdefault(table, []).append(column)
    for name, table in CDM.tables().items():
        # The OHDSI field list quotes note_nlp's "offset" (a reserved word).
        assert found.get(name) == [c.strip('"') for c in table.column_names], name
    for name, columns in CUSTODIAN_TABLES.items():
        assert found.get(name) == [c.name for c in columns]


def test_person_tables_are_populated_and_vocabulary_bundled(synth_node: Path) -> None:
    with duckdb.connect(str(synth_node), read_only=True) as con:
        for table in PERSON_TABLES:
            (rows,) = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone() or (0,)
            assert rows > 0, table
        concepts = {r[0] for r in con.execute("SELECT concept_id FROM concept").fetchall()}
        assert concepts == {c.concept_id for c in all_concepts()}
        (locations,) = con.execute("SELECT COUNT(*) FROM location").fetchone() or (0,)
        assert locations == geography().size


def test_each_person_is_in_exactly_one_node_and_ids_are_unique(synth_dir: Path) -> None:
    con = all_nodes(synth_dir)
    for table, column in ID_COLUMNS.items():
        total, distinct = con.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT {column}) FROM {table}"
        ).fetchone() or (0, 0)
        assert total == distinct > 0, table
    (persons,) = con.execute("SELECT COUNT(*) FROM person").fetchone() or (0,)
    assert persons == SYNTH_PERSONS
    # Every row of a node belongs to a person of that node.
    for node in NODES:
        for table in PERSON_TABLES:
            (strays,) = con.execute(
                f"SELECT COUNT(*) FROM {node}.{table} t "
                f"WHERE t.person_id NOT IN (SELECT person_id FROM {node}.person)"
            ).fetchone() or (1,)
            assert strays == 0, (node, table)


def test_event_rows_link_to_visits_of_the_same_person(synth_dir: Path) -> None:
    con = all_nodes(synth_dir)
    for table in ("condition_occurrence", "drug_exposure", "measurement"):
        linked, mismatched = con.execute(
            f"SELECT COUNT(e.visit_occurrence_id), "
            f"COUNT(*) FILTER (WHERE v.person_id IS DISTINCT FROM e.person_id "
            f"AND e.visit_occurrence_id IS NOT NULL) "
            f"FROM {table} e LEFT JOIN visit_occurrence v USING (visit_occurrence_id)"
        ).fetchone() or (0, 1)
        assert linked > 0, table
        assert mismatched == 0, table


def test_opt_outs_are_about_five_percent_and_stay_in_the_cdm(synth_dir: Path) -> None:
    con = all_nodes(synth_dir)
    opted, in_person = con.execute(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE person_id IN (SELECT person_id FROM person)) "
        "FROM sde_opt_out"
    ).fetchone() or (0, 0)
    assert opted == in_person
    assert 0.035 < opted / SYNTH_PERSONS < 0.065


def test_nhs_numbers_are_valid_and_in_the_999_range(synth_dir: Path) -> None:
    con = all_nodes(synth_dir)
    numbers = [r[0] for r in con.execute("SELECT person_source_value FROM person").fetchall()]
    assert all(n.startswith("999") and is_valid(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)  # unique while below the range's 909,091


def test_birth_fields_exist_for_the_proxy_to_hide(synth_dir: Path) -> None:
    con = all_nodes(synth_dir)
    (incomplete,) = con.execute(
        "SELECT COUNT(*) FROM person WHERE year_of_birth IS NULL OR month_of_birth IS NULL "
        "OR day_of_birth IS NULL OR birth_datetime IS NULL "
        "OR make_date(year_of_birth, month_of_birth, day_of_birth) <> birth_datetime::date"
    ).fetchone() or (1,)
    assert incomplete == 0


def test_imd_decile_is_one_observation_per_person_at_publication(synth_dir: Path) -> None:
    con = all_nodes(synth_dir)
    # Dated at IMD 2019's publication, clamped into the person's observation period.
    bad = con.execute(
        f"""SELECT COUNT(*) FROM person p
            LEFT JOIN observation o ON o.person_id = p.person_id
                 AND o.observation_concept_id = {IMD_DECILE_CONCEPT_ID}
            JOIN observation_period op ON op.person_id = p.person_id
            WHERE o.observation_date IS DISTINCT FROM LEAST(
                      GREATEST(DATE '2019-09-26', op.observation_period_start_date),
                      op.observation_period_end_date)
               OR o.value_as_number NOT BETWEEN 1 AND 10"""
    ).fetchone()
    assert bad == (0,)
    (rows,) = con.execute("SELECT COUNT(*) FROM observation").fetchone() or (0,)
    assert rows == SYNTH_PERSONS


def test_locations_carry_lsoa_codes_and_districts(synth_node: Path) -> None:
    with duckdb.connect(str(synth_node), read_only=True) as con:
        rows = con.execute("SELECT zip, county, city FROM location").fetchall()
    assert all(len(z) == 9 and z.startswith("E01") for z, _, _ in rows)
    assert all(len(county) <= 20 for _, county, _ in rows)
    assert {"Blackpool", "Burnley", "South Lakeland"} <= {c for _, c, _ in rows}


def test_every_string_fits_its_cdm_column(synth_node: Path) -> None:
    # PostgreSQL enforces varchar(n); DuckDB does not, so check here what loading would refuse.
    import re

    from sde.omop.ddl import columns_of

    con = duckdb.connect(str(synth_node), read_only=True)
    too_long = []
    for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
        for column in columns_of(table):
            size = re.fullmatch(r"varchar\((\d+)\)", column.type)
            if size is None:
                continue
            (longest,) = con.execute(f"SELECT MAX(LENGTH({column.name})) FROM {table}").fetchone()
            if longest is not None and longest > int(size.group(1)):
                too_long.append((table, column.name, longest, column.type))
    assert too_long == []
