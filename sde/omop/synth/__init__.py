"""A synthetic Lancashire & South Cumbria population in OMOP CDM v5.4, one DuckDB file per node.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> manifest = synthesise(500, 3, seed=1, out=out, progress=False)
>>> [n["name"] for n in manifest["nodes"]], sum(n["persons"] for n in manifest["nodes"])
(['lth', 'elht', 'umbh'], 500)

The population is generated in chunks of :data:`params.CHUNK_SIZE` persons,
each from its own random generator derived from ``(seed, chunk index)``; the
same seed gives the same rows in the same order, with one worker or several.
See ``docs/data-model.md`` for what the data holds.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sde.errors import ConfigurationError
from sde.omop.synth import chunk as chunks
from sde.omop.synth import manifest as manifests
from sde.omop.synth import params
from sde.omop.synth.geography import NODES, node_names
from sde.omop.synth.writer import NodeStore, write_chunk

#: Row ids are 32-bit in the CDM; this keeps the largest tables well inside that.
MAX_PERSONS = 20_000_000

__all__ = ["MAX_PERSONS", "synthesise", "validate"]


def validate(persons: int, nodes: int, seed: int) -> tuple[str, ...]:
    """Check the arguments of :func:`synthesise`; returns the node slugs."""
    if not 1 <= persons <= MAX_PERSONS:
        raise ConfigurationError(
            "synth.persons", f"persons must be between 1 and {MAX_PERSONS:,}; got {persons}"
        )
    if seed < 0:
        raise ConfigurationError("synth.seed", f"seed must be zero or positive; got {seed}")
    return node_names(nodes)


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigurationError("synth.out", f"output path {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(
            "synth.out", f"cannot create output folder {out}: {err.strerror or err}"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigurationError("synth.out", f"output folder {out} is not writable")


def _plan(persons: int) -> list[tuple[int, int, int]]:
    """(chunk index, first person id, size) for every chunk."""
    return [
        (i, first + 1, min(params.CHUNK_SIZE, persons - first))
        for i, first in enumerate(range(0, persons, params.CHUNK_SIZE))
    ]


def _chunks(seed: int, persons: int, nodes: int, workers: int) -> Iterator[chunks.Chunk]:
    """The chunks in order; with several workers, made ahead in subprocesses
    (at most ``workers + 1`` in flight, so memory stays bounded)."""
    plan = _plan(persons)
    if workers <= 1 or len(plan) == 1:
        for index, first, size in plan:
            yield chunks.generate(seed, index, first, size, nodes)
        return
    context = multiprocessing.get_context("spawn")  # never fork a process holding DuckDB
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: list[Future[chunks.Chunk]] = []
        todo = iter(plan)
        for index, first, size in todo:
            pending.append(pool.submit(chunks.generate, seed, index, first, size, nodes))
            if len(pending) > workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def synthesise(
    persons: int,
    nodes: int,
    seed: int,
    out: Path,
    *,
    progress: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    """Write ``out/<node>.duckdb`` for each node and ``out/manifest.json``; return the manifest.

    Files are built in a hidden temporary folder inside ``out`` and moved into
    place only when complete, so a failed run leaves the previous output (or
    nothing) behind. Node files of slugs not in this run are removed, so a
    folder never mixes runs. Other files in ``out`` are left alone.
    """
    slugs = validate(persons, nodes, seed)
    out = Path(out)
    _prepare(out)
    titles = {n.slug: n.title for n in NODES}
    build = Path(tempfile.mkdtemp(prefix=".synth-", dir=out))
    stores: list[NodeStore] = []
    try:
        stream = _chunks(seed, persons, nodes, workers)
        stores = [NodeStore(build / f"{s}.duckdb", s, titles[s]) for s in slugs]
        offsets: dict[str, int] = dict.fromkeys(chunks.PERSON_TABLES, 0)
        condition_counts = {m.key: 0 for m in params.CONDITIONS}
        with tqdm(total=persons, unit=" persons", disable=not progress, desc="sde synth") as bar:
            for chunk in stream:
                write_chunk(chunk, stores, offsets)
                for key, count in chunk.condition_counts.items():
                    condition_counts[key] += count
                bar.update(chunk.frames["person"].rows)
        for store in stores:
            store.close()
        manifest = manifests.build(
            persons=persons,
            seed=seed,
            node_rows={store.slug: dict(store.rows) for store in stores},
            condition_counts=condition_counts,
        )
        # Old manifest first: a folder caught mid-replacement has none, so no reader trusts it.
        (out / manifests.MANIFEST).unlink(missing_ok=True)
        for node in NODES:
            if node.slug not in slugs:
                (out / f"{node.slug}.duckdb").unlink(missing_ok=True)
        for store in stores:
            os.replace(store.path, out / store.path.name)
        manifests.write(out, manifest)
        return manifest
    finally:
        for store in stores:
            store.abandon()
        shutil.rmtree(build, ignore_errors=True)
