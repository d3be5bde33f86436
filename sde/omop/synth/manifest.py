"""``manifest.json``: what a run wrote, so that readers need not open every file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sde.omop.cdm import CDM
from sde.omop.ddl import all_tables
from sde.omop.synth import params
from sde.omop.synth.geography import NODES

MANIFEST = "manifest.json"


def build(
    *,
    persons: int,
    seed: int,
    node_rows: dict[str, dict[str, int]],
    condition_counts: dict[str, int],
) -> dict[str, Any]:
    """The manifest of a finished run (no timestamps: the same seed gives the same bytes)."""
    titles = {n.slug: n.title for n in NODES}
    nodes = []
    for slug, rows in node_rows.items():
        nodes.append(
            {
                "name": slug,
                "title": titles[slug],
                "file": f"{slug}.duckdb",
                "persons": rows.get("person", 0),
                "opt_outs": rows.get("sde_opt_out", 0),
                "deaths": rows.get("death", 0),
                "rows": {table: rows.get(table, 0) for table in all_tables()},
            }
        )
    return {
        "generator": "sde.omop.synth",
        "generator_version": params.GENERATOR_VERSION,
        "cdm_version": CDM.VERSION,
        "seed": seed,
        "persons": persons,
        "chunk_size": params.CHUNK_SIZE,
        "period": {"start": params.DATA_START.isoformat(), "end": params.DATA_END.isoformat()},
        "nodes": nodes,
        "prevalence": {key: round(count / persons, 4) for key, count in condition_counts.items()},
    }


def write(out: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest atomically (a temporary file renamed into place)."""
    path = out / MANIFEST
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    return data
