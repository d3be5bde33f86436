"""DP benchmark: our engine vs SmartNoise SQL vs OpenDP's Polars Context API.

    .venv/bin/python benchmarks/dp.py [--persons 200000 1000000] [--reps 5]

For each population size (synthetic, ``sde.omop.synth``, one node, seed 42) and each query,
at epsilon = 1 per query: median latency per query and mean absolute error against the
exact, untruncated answer. Every system bounds a person to 30 blood-pressure readings and
uses the same bounds (60-250 mmHg). SmartNoise SQL runs in its own virtual environment
(``benchmarks/.venvs/smartnoise``: it pins opendp<0.15 and pandas<3) on hand-denormalised
tables, because it refuses JOINs; it has no median. OpenDP's Polars Context gets the same
denormalised frames with the person as identifier. Writes ``benchmarks/results/dp.json``
and ``dp.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import sqlglot

from sde.dp.engine import DPEngine
from sde.omop.synth import synthesise
from sde.registry.db import open_registry

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SN_VENV = ROOT / ".venvs" / "smartnoise"
#: Readings per person kept by every system: the 99.9th percentile in the synthetic data
#: (median 4, max ~43), so that truncation bias stays small beside the noise.
EPS, ROWS, LO, HI = 1.0, 30, 60.0, 250.0
SBP_WHERE = "measurement_concept_id = 3004249"
IMD_JOIN = (
    "JOIN observation o ON o.person_id = {a}.person_id AND o.observation_concept_id = 2000000001"
)

OURS = {
    "count": "SELECT COUNT(*) AS v FROM person",
    "count_by_imd": "SELECT o.value_as_number AS imd, COUNT(*) AS v FROM person p "
    + IMD_JOIN.format(a="p")
    + " GROUP BY 1",
    "avg_sbp": f"SELECT AVG(value_as_number) AS v FROM measurement WHERE {SBP_WHERE}",
    "sum_sbp": f"SELECT SUM(value_as_number) AS v FROM measurement WHERE {SBP_WHERE}",
    "median_sbp": "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY value_as_number) AS v "
    f"FROM measurement WHERE {SBP_WHERE}",
    "avg_sbp_by_imd_join": "SELECT o.value_as_number AS imd, AVG(m.value_as_number) AS v "
    "FROM measurement m " + IMD_JOIN.format(a="m") + f" WHERE m.{SBP_WHERE} GROUP BY 1",
}
SMARTNOISE = {
    "count": "SELECT COUNT(*) AS v FROM dp.person",
    "count_by_imd": "SELECT imd, COUNT(*) AS v FROM dp.person GROUP BY imd",
    "avg_sbp": "SELECT AVG(sbp) AS v FROM dp.sbp",
    "sum_sbp": "SELECT SUM(sbp) AS v FROM dp.sbp",
    "median_sbp": "SELECT MEDIAN(sbp) AS v FROM dp.sbp",
    "avg_sbp_by_imd_join": "SELECT a.imd, AVG(b.sbp) AS v FROM dp.person a JOIN dp.sbp b "
    "ON a.person_id = b.person_id GROUP BY a.imd",
    "avg_sbp_by_imd_denormalised": "SELECT imd, AVG(sbp) AS v FROM dp.sbp GROUP BY imd",
}


def population(persons: int, data: Path) -> Path:
    out = data / f"dp-{persons}"
    node = out / "lth.duckdb"
    if not node.exists():
        print(f"synthesising {persons} persons into {out} ...", flush=True)
        synthesise(persons, 1, 42, out, progress=False)
    return node


def denormalise(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    person = con.execute(
        "SELECT p.person_id, CAST(o.value_as_number AS BIGINT) AS imd FROM person p "
        + IMD_JOIN.format(a="p")
    ).df()
    sbp = con.execute(
        "SELECT m.person_id, CAST(o.value_as_number AS BIGINT) AS imd, m.value_as_number AS sbp "
        "FROM measurement m " + IMD_JOIN.format(a="m") + f" WHERE m.{SBP_WHERE}"
    ).df()
    return person, sbp


def truth(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    out = {}
    for name, sql in OURS.items():
        exact = sql.replace(
            "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY value_as_number)",
            "MEDIAN(value_as_number)",
        )
        out[name] = con.execute(sqlglot.transpile(exact, read="postgres", write="duckdb")[0]).df()
    out["avg_sbp_by_imd_denormalised"] = out["avg_sbp_by_imd_join"]
    return out


def mae(answer: pd.DataFrame, exact: pd.DataFrame) -> float:
    if "imd" in exact.columns:
        want = exact.assign(imd=exact["imd"].astype(int)).set_index("imd")["v"]
        got = answer.assign(imd=answer["imd"].astype(int)).set_index("imd")["v"]
        got = got.reindex(want.index)
        return float(np.nanmean(np.abs(got.to_numpy(float) - want.to_numpy(float))))
    return float(abs(float(answer["v"].iloc[0]) - float(exact["v"].iloc[0])))


def run_ours(
    con: duckdb.DuckDBPyConnection, exact: dict[str, pd.DataFrame], reps: int, tmp: Path
) -> dict[str, Any]:
    def run(sql: str, dialect: str) -> pd.DataFrame:
        return con.cursor().execute(sqlglot.transpile(sql, read=dialect, write="duckdb")[0]).df()

    registry = open_registry(f"sqlite:///{tmp / 'bench-registry.sqlite'}")
    out = {}
    for name, sql in OURS.items():
        times, errors = [], []
        for rep in range(reps):
            engine = DPEngine(
                run, registry=registry, project=f"{name}-{rep}", budget=(10.0, 1e-5), user="bench"
            )
            started = time.perf_counter()
            rows = ROWS if "measurement" in sql else 1
            answer = engine.sql_dp(sql, epsilon=EPS, max_rows_per_person=rows)
            times.append(time.perf_counter() - started)
            errors.append(mae(answer, exact[name]))
        out[name] = _summary(times, errors)
    return out


def run_polars(
    person: pd.DataFrame, sbp: pd.DataFrame, exact: dict[str, pd.DataFrame], reps: int
) -> dict[str, Any]:
    import opendp.prelude as dp
    import polars as pl

    dp.enable_features("contrib")
    frames = {"person": pl.from_pandas(person), "sbp": pl.from_pandas(sbp)}
    keys = pl.LazyFrame({"imd": list(range(1, 11))})
    candidates = list(np.arange(LO, HI + 1.0))
    x = pl.col("sbp").fill_null(0.0)
    queries: dict[str, tuple[str, int, Callable[[Any], Any]]] = {
        "count": ("person", 1, lambda q: q.select(dp.len().alias("v"))),
        "count_by_imd": (
            "person",
            1,
            lambda q: q.group_by("imd").agg(dp.len().alias("v")).with_keys(keys),
        ),
        "avg_sbp": ("sbp", ROWS, lambda q: q.select(x.dp.mean((LO, HI)).alias("v"))),
        "sum_sbp": ("sbp", ROWS, lambda q: q.select(x.dp.sum((LO, HI)).alias("v"))),
        "median_sbp": (
            "sbp",
            ROWS,
            lambda q: q.select(x.dp.median(candidates=candidates).alias("v")),
        ),
        "avg_sbp_by_imd_denormalised": (
            "sbp",
            ROWS,
            lambda q: q.group_by("imd").agg(x.dp.mean((LO, HI)).alias("v")).with_keys(keys),
        ),
    }
    out = {}
    for name, (table, rows, build) in queries.items():
        times, errors = [], []
        for _ in range(reps):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ctx = dp.Context.compositor(
                    data=frames[table].lazy(),
                    privacy_unit=dp.unit_of(contributions=1, identifier="person_id"),
                    privacy_loss=dp.loss_of(epsilon=EPS),
                    split_evenly_over=1,
                    margins=[
                        dp.polars.Margin(by=[], max_length=10**8),
                        dp.polars.Margin(by=["imd"], max_length=10**8, max_groups=10),
                    ],
                )
                q = ctx.query().truncate_per_group(rows)
                answer = build(q).release().collect().to_pandas()
            times.append(time.perf_counter() - started)
            errors.append(mae(answer, exact[name]))
        out[name] = _summary(times, errors)
    out["avg_sbp_by_imd_join"] = {
        "error": "not attempted: Polars joins need the same frame "
        "shape; used the denormalised frame"
    }
    return out


def run_smartnoise(
    person: pd.DataFrame, sbp: pd.DataFrame, exact: dict[str, pd.DataFrame], reps: int, tmp: Path
) -> dict[str, Any]:
    py = SN_VENV / "bin" / "python"
    if not py.exists():
        print("creating the SmartNoise SQL venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(SN_VENV)], check=True)
        subprocess.run(
            [str(SN_VENV / "bin" / "pip"), "install", "-q", "smartnoise-sql==1.0.10", "pyarrow"],
            check=True,
        )
    person.to_parquet(tmp / "person.parquet")
    sbp.to_parquet(tmp / "sbp.parquet")
    job = {
        "person": str(tmp / "person.parquet"),
        "sbp": str(tmp / "sbp.parquet"),
        "rows": ROWS,
        "lower": LO,
        "upper": HI,
        "epsilon": EPS,
        "reps": reps,
        "queries": SMARTNOISE,
    }
    proc = subprocess.run(
        [str(py), str(ROOT / "dp_smartnoise_runner.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    raw = json.loads(proc.stdout)
    out = {}
    for name, res in raw.items():
        if res["error"]:
            out[name] = {"error": res["error"]}
            continue
        errors = []
        for run in res["runs"]:
            answer = pd.DataFrame(run)
            if "imd" not in answer.columns and "a.imd" in answer.columns:
                answer = answer.rename(columns={"a.imd": "imd"})
            errors.append(mae(answer, exact[name]))
        out[name] = _summary(res["seconds"], errors)
    return out


def _summary(times: list[float], errors: list[float]) -> dict[str, Any]:
    return {
        "latency_s": statistics.median(times),
        "mae": float(np.mean(errors)),
        "reps": len(times),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# DP benchmark",
        "",
        f"epsilon = {EPS} per query; {ROWS} readings per person (1 row per person for "
        f"counts); bounds {LO:g}-{HI:g} mmHg; "
        "MAE against the exact untruncated answer (mean over cells and repetitions); "
        "latency is the median wall time of one query (2 cores).",
        "",
    ]
    for persons, per in results["sizes"].items():
        lines += [
            f"## {int(persons):,} persons",
            "",
            "| query | ours: s | ours: MAE | SmartNoise: s | SmartNoise: MAE | "
            "OpenDP Polars: s | OpenDP Polars: MAE |",
            "|---|---|---|---|---|---|---|",
        ]
        names = list(dict.fromkeys([*OURS, *SMARTNOISE]))
        for name in names:
            cells = []
            for system in ("ours", "smartnoise", "polars"):
                r = per[system].get(name)
                if r is None:
                    cells += ["-", "-"]
                elif "error" in r:
                    cells += ["refused", r["error"][:60].replace("|", "/")]
                else:
                    cells += [f"{r['latency_s']:.3f}", f"{r['mae']:.4g}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "sde-bench-dp")
    parser.add_argument("--skip", nargs="*", default=[], choices=["smartnoise", "polars"])
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"epsilon": EPS, "rows_per_person": ROWS, "sizes": {}}
    for persons in args.persons:
        node = population(persons, args.data)
        con = duckdb.connect(str(node), read_only=True)
        con.execute("SET threads = 2")
        exact = truth(con)
        person, sbp = denormalise(con)
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            per: dict[str, Any] = {"ours": run_ours(con, exact, args.reps, tmp)}
            print(persons, "ours", json.dumps(per["ours"]), flush=True)
            per["smartnoise"] = (
                {}
                if "smartnoise" in args.skip
                else run_smartnoise(person, sbp, exact, args.reps, tmp)
            )
            print(persons, "smartnoise", json.dumps(per["smartnoise"]), flush=True)
            per["polars"] = (
                {} if "polars" in args.skip else run_polars(person, sbp, exact, args.reps)
            )
            print(persons, "polars", json.dumps(per["polars"]), flush=True)
        per["rows"] = {"persons": len(person), "sbp_readings": len(sbp)}
        results["sizes"][str(persons)] = per
        con.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dp.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "dp.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
