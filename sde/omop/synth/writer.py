"""Write chunks into one DuckDB file per node.

Every node file gets every CDM v5.4 table and the custodian tables (created by
:mod:`sde.omop.ddl`), the bundled vocabulary, the fixed map (``location``),
the trusts (``care_site``) and a ``cdm_source`` row; then each chunk's rows
are appended through Arrow, split by node. Row ids are shifted by the rows of
earlier chunks so that they are unique per table across all nodes.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from sde.omop import vocabulary
from sde.omop.ddl import all_tables, create_table_sql
from sde.omop.synth import params
from sde.omop.synth.chunk import Chunk, Frame
from sde.omop.synth.geography import DISTRICTS, geography
from sde.omop.synth.sites import care_site_table

#: Integer columns where a negative value means NULL.
NULLABLE = frozenset({"care_site_id", "cause_concept_id", "visit_occurrence_id"})
_MICROS_PER_DAY = 86_400 * 1_000_000


def location_table() -> pa.Table:
    """The ``location`` rows: one per LSOA of the fixed map."""
    geo = geography()
    return pa.table(
        {
            "location_id": pa.array(np.arange(1, geo.size + 1, dtype=np.int32)),
            "city": list(geo.town),
            "zip": list(geo.lsoa_code),
            "county": [DISTRICTS[i].county for i in geo.district],
            "location_source_value": list(geo.lsoa_name),
            "country_source_value": ["England"] * geo.size,
            "latitude": geo.lat,
            "longitude": geo.lon,
        }
    )


def cdm_source_table(title: str, slug: str) -> pa.Table:
    return pa.table(
        {
            "cdm_source_name": [f"Synthetic {title}"],
            "cdm_source_abbreviation": [slug],
            "cdm_holder": ["Lancashire & South Cumbria Secure Data Environment"],
            "source_description": ["Synthetic population from sde synth (no real patient's data)"],
            "source_release_date": pa.array([params.DATA_END], pa.date32()),
            "cdm_release_date": pa.array([params.DATA_END], pa.date32()),
            "cdm_version": ["v5.4"],
            "cdm_version_concept_id": [0],
            "vocabulary_version": [vocabulary.VOCABULARY_VERSION],
        }
    )


def to_arrow(table: str, frame: Frame, offsets: dict[str, int]) -> pa.Table:
    """Arrow columns for ``frame``: ids shifted, days as dates, negatives as NULL."""
    arrays: dict[str, pa.Array] = {}
    # person_id is global already; other own ids count from 0 in each chunk.
    own_id = "" if table == "person" else f"{table}_id"
    for name, col in frame.columns.items():
        if isinstance(col, pa.Array):
            arrays[name] = col
            continue
        if name == own_id:
            arrays[name] = pa.array((col + offsets[table]).astype(np.int32))
        elif name in NULLABLE:
            shift = offsets["visit_occurrence"] if name == "visit_occurrence_id" else 0
            arrays[name] = pa.array((col + shift).astype(np.int32), mask=col < 0)
        elif name.endswith("_date"):
            arrays[name] = pa.array(col.astype(np.int32), pa.date32())
        elif name.endswith("_datetime"):
            arrays[name] = pa.array(col.astype(np.int64) * _MICROS_PER_DAY, pa.timestamp("us"))
        elif col.dtype.kind == "f":
            arrays[name] = pa.array(col.astype(np.float64))
        else:
            arrays[name] = pa.array(col.astype(np.int32))
    return pa.table(arrays)


class NodeStore:
    """One node's DuckDB file, open for appending."""

    def __init__(self, path: Path, slug: str, title: str) -> None:
        self.path = path
        self.slug = slug
        self.rows: dict[str, int] = defaultdict(int)
        self._con = duckdb.connect(str(path))
        self._open = True
        for table in all_tables():
            self._con.execute(create_table_sql(table, "duckdb"))
        for table, data in vocabulary.vocabulary_tables().items():
            self.append(table, data)
        self.append("location", location_table())
        self.append("care_site", care_site_table())
        self.append("cdm_source", cdm_source_table(title, slug))

    def append(self, table: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        cols = ", ".join(data.column_names)
        self._con.register("_chunk", data)
        try:
            self._con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _chunk")
        finally:
            self._con.unregister("_chunk")
        self.rows[table] += data.num_rows

    def close(self) -> None:
        """Checkpoint and close: the file is complete."""
        if self._open:
            self._con.execute("CHECKPOINT")
            self._con.close()
            self._open = False

    def abandon(self) -> None:
        """Close without checkpointing (after a failure); closing twice is harmless."""
        if self._open:
            self._con.close()
            self._open = False


def write_chunk(chunk: Chunk, stores: list[NodeStore], offsets: dict[str, int]) -> None:
    """Append a chunk's rows to the node stores and advance the id offsets."""
    for table, frame in chunk.frames.items():
        data = to_arrow(table, frame, offsets)
        for k, store in enumerate(stores):
            rows = np.flatnonzero(frame.node == k)
            if len(rows) == len(frame.node):
                store.append(table, data)
            elif len(rows):
                store.append(table, data.take(pa.array(rows)))
    for table, frame in chunk.frames.items():
        offsets[table] += frame.rows
