"""Same seed, same rows in the same order; chunks and workers do not change the result."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from sde.omop import synth
from sde.omop.synth import params, synthesise
from sde.omop.synth.chunk import PERSON_TABLES

pytestmark = pytest.mark.slow


def _tables(folder: Path) -> dict[tuple[str, str], pa.Table]:
    manifest = json.loads((folder / "manifest.json").read_text())
    out = {}
    for node in manifest["nodes"]:
        with duckdb.connect(str(folder / node["file"]), read_only=True) as con:
            for table in (*PERSON_TABLES, "location", "concept", "concept_ancestor"):
                out[node["name"], table] = con.sql(f"SELECT * FROM {table}").to_arrow_table()
    return out


def _same(a: dict[tuple[str, str], pa.Table], b: dict[tuple[str, str], pa.Table]) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


def test_same_seed_gives_identical_rows_in_identical_order(tmp_path: Path) -> None:
    first = synthesise(2500, 3, 5, tmp_path / "a", progress=False)
    second = synthesise(2500, 3, 5, tmp_path / "b", progress=False)
    assert first == second
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (
        tmp_path / "b" / "manifest.json"
    ).read_bytes()
    assert _same(_tables(tmp_path / "a"), _tables(tmp_path / "b"))


def test_a_different_seed_gives_different_rows(tmp_path: Path) -> None:
    synthesise(2500, 3, 5, tmp_path / "a", progress=False)
    synthesise(2500, 3, 6, tmp_path / "b", progress=False)
    a, b = _tables(tmp_path / "a"), _tables(tmp_path / "b")
    assert not a["lth", "person"].equals(b["lth", "person"])
    assert a["lth", "location"].equals(b["lth", "location"])  # the map is fixed


def test_workers_do_not_change_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(params, "CHUNK_SIZE", 1000)  # several chunks from few persons
    one = synthesise(3500, 3, 9, tmp_path / "one", progress=False, workers=1)
    two = synthesise(3500, 3, 9, tmp_path / "two", progress=False, workers=2)
    assert one == two
    assert _same(_tables(tmp_path / "one"), _tables(tmp_path / "two"))


def test_node_count_only_changes_the_partition(tmp_path: Path) -> None:
    synthesise(2000, 1, 4, tmp_path / "one", progress=False)
    synthesise(2000, 5, 4, tmp_path / "five", progress=False)
    whole = _tables(tmp_path / "one")["lth", "person"]
    parts = _tables(tmp_path / "five")
    merged = pa.concat_tables(parts[n, "person"] for n in ("lth", "elht", "umbh", "bfw", "lscft"))
    assert merged.sort_by("person_id").equals(whole.sort_by("person_id"))


def test_a_rerun_replaces_files_of_nodes_no_longer_written(tmp_path: Path) -> None:
    synthesise(500, 5, 1, tmp_path, progress=False)
    synthesise(500, 2, 1, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "elht.duckdb",
        "lth.duckdb",
        "manifest.json",
    ]


def test_a_failed_run_leaves_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synthesise(300, 3, 1, tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def boom(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth, "write_chunk", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesise(300, 3, 2, tmp_path, progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
