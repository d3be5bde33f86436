"""Benchmark ``sde synth``: speed, size on disk, and a prevalence-by-deprivation query.

For each size (default 100,000 and 1,800,000 persons, three nodes, seed 1) it
times :func:`sde.omop.synth.synthesise`, measures the bytes on disk per person,
and times the hypertension-prevalence-by-IMD-decile query on DuckDB across the
node files (median of several runs after one warm-up). Writes
``benchmarks/results/synth.json`` and ``synth.md``.

    .venv/bin/python benchmarks/synth.py                 # both sizes
    .venv/bin/python benchmarks/synth.py --sizes 100000  # just one
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from sde.omop.synth import params, synthesise

RESULTS = Path(__file__).parent / "results"

QUERY = """
WITH imd AS (
  SELECT person_id, value_as_number::INT AS decile FROM all_observation
  WHERE observation_concept_id = 2000000001),
htn AS (
  SELECT DISTINCT co.person_id FROM all_condition_occurrence co
  JOIN lth.concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id
  WHERE ca.ancestor_concept_id = 320128)
SELECT imd.decile, COUNT(*) AS persons, COUNT(htn.person_id) AS with_htn,
       ROUND(100.0 * COUNT(htn.person_id) / COUNT(*), 1) AS pct
FROM imd LEFT JOIN htn ON htn.person_id = imd.person_id
GROUP BY imd.decile ORDER BY imd.decile
"""


def _query_times(folder: Path, nodes: list[str], runs: int) -> tuple[list[float], list[Any]]:
    con = duckdb.connect()
    for name in nodes:
        con.execute(f"ATTACH '{folder / (name + '.duckdb')}' AS {name} (READ_ONLY)")
    for table in ("observation", "condition_occurrence"):
        union = " UNION ALL ".join(f"SELECT * FROM {n}.{table}" for n in nodes)
        con.execute(f"CREATE VIEW all_{table} AS {union}")
    answer = con.execute(QUERY).fetchall()  # warm-up (file cache, catalog)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        con.execute(QUERY).fetchall()
        times.append(time.perf_counter() - began)
    con.close()
    return times, answer


def bench(
    persons: int, *, nodes: int, seed: int, workers: int, runs: int, keep: bool
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"sde-bench-synth-{persons}-"))
    try:
        began = time.perf_counter()
        manifest = synthesise(persons, nodes, seed, folder, progress=False, workers=workers)
        seconds = time.perf_counter() - began
        names = [n["name"] for n in manifest["nodes"]]
        size = sum((folder / f"{n}.duckdb").stat().st_size for n in names)
        rows = sum(sum(n["rows"].values()) for n in manifest["nodes"])
        times, answer = _query_times(folder, names, runs)
        return {
            "persons": persons,
            "nodes": nodes,
            "seed": seed,
            "workers": workers,
            "seconds": round(seconds, 2),
            "persons_per_second": round(persons / seconds),
            "rows": rows,
            "rows_per_second": round(rows / seconds),
            "bytes_on_disk": size,
            "bytes_per_person": round(size / persons, 1),
            "query_runs": runs,
            "query_median_ms": round(1000 * statistics.median(times), 1),
            "query_min_ms": round(1000 * min(times), 1),
            "htn_pct_decile_1": float(answer[0][3]),
            "htn_pct_decile_10": float(answer[-1][3]),
            # Peak resident memory of this process so far (Linux reports KiB).
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    finally:
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _markdown(results: list[dict[str, Any]], env: dict[str, Any]) -> str:
    lines = [
        "# `sde synth` benchmark",
        "",
        f"{env['machine']}; Python {env['python']}, DuckDB {env['duckdb']}; "
        f"generator {env['generator_version']}. Three nodes, seed 1.",
        "",
        "| persons | seconds | persons/s | rows | bytes/person | prevalence query (median) "
        "| HTN % decile 1 / 10 | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['persons']:,} | {r['seconds']:,.1f} | {r['persons_per_second']:,} "
            f"| {r['rows']:,} | {r['bytes_per_person']:,.0f} "
            f"| {r['query_median_ms']:,.0f} ms | {r['htn_pct_decile_1']} / "
            f"{r['htn_pct_decile_10']} | {r['peak_rss_mb']:,} MB |"
        )
    lines += [
        "",
        "The query: hypertension (320128 or any descendant, via `concept_ancestor`) prevalence "
        "by IMD decile over the union of the node files, DuckDB, one warm-up then the median "
        f"of {results[0]['query_runs']} runs. Regenerate with "
        "`.venv/bin/python benchmarks/synth.py`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_800_000])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    args = parser.parse_args()
    env = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "generator_version": params.GENERATOR_VERSION,
    }
    results = []
    for persons in args.sizes:
        result = bench(
            persons,
            nodes=args.nodes,
            seed=args.seed,
            workers=args.workers,
            runs=args.runs,
            keep=args.keep,
        )
        results.append(result)
        print(
            f"{persons:>10,} persons  {result['seconds']:>7.1f} s  "
            f"{result['persons_per_second']:>8,} persons/s  "
            f"{result['bytes_per_person']:>6.0f} B/person  "
            f"query {result['query_median_ms']:>7.1f} ms"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "synth.json").write_text(
        json.dumps({"environment": env, "results": results}, indent=2) + "\n"
    )
    (RESULTS / "synth.md").write_text(_markdown(results, env))
    print((RESULTS / "synth.md").read_text())


if __name__ == "__main__":
    main()
