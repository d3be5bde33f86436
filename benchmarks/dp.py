"""DP benchmark: our engine vs SmartNoise SQL vs OpenDP's Polars Context API.

    .venv/bin/python benchmarks/dp.py [--persons 200000 1000000] [--reps 10] [--draws 300]

For each population size (synthetic, ``sde.omop.synth``, one node, seed 42) the project
extract of a ``dp`` project is built once (``sde.connect``: scoped, opted-out persons
removed, person ids pseudonymised). Every system then answers the same questions on the
same rows: ours on the extract's OMOP tables, SmartNoise SQL and OpenDP's Polars Context on
hand-denormalised copies of them (SmartNoise refuses JOINs), and the truth is the exact,
untruncated answer on the extract.

**Equal total epsilon** (= 1 per query): ours spends ``epsilon=1`` in all (split over its
statistics and the clamped-values report); SmartNoise charges its ``epsilon`` to *each*
noisy column (AVG = SUM + COUNT costs 2 epsilon), so it is run at ``1 / cost`` with the
cost read from ``get_privacy_cost`` (checked to be 1); the Polars Context gets a total loss
of 1. Every system keeps at most 30 readings per person (1 row for counts) and clamps to
60-250 mmHg.

**Latency**: the median of ``--reps`` full end-to-end runs per query. Ours goes through the
researcher's path, ``conn.sql_dp(...)`` (scope check of the question, analysis, plan, the
proxy on the exact SQL, DuckDB, noise, ledger commit, audit log), each run with fresh query
text so that no run is answered from the release cache; ``engine_s`` is the DP engine alone
(the same DuckDB extract without the proxy), split into its phases. SmartNoise's time
excludes loading its frame into SQLite, ours the one-off extract build.

**Error**: MAE against the truth over the timed runs plus ``--draws`` further draws of the
noise on one exact run (ours: the plan's own OpenDP mechanisms on the exact totals;
SmartNoise: ``execute(pre_aggregated=...)``; Polars: calls of the resolved measurement,
fewer since each re-reads the data), with its standard error; ``noise MAE`` is the error
against each system's own exact answer on its truncated, clamped data (the noise alone,
without the truncation bias that every system shares). Writes ``benchmarks/results/dp.json``
and ``dp.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlglot

import sde
import sde.dp.engine as dp_engine
from sde.dp.engine import DPEngine
from sde.dp.release import merge, privatise, render
from sde.dp.request import DPRequest
from sde.omop.synth import synthesise

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SN_VENV = ROOT / ".venvs" / "smartnoise"
#: Readings per person kept by every system: the 99.9th percentile in the synthetic data
#: (median 4, max ~43), so that truncation bias stays small beside the noise.
EPS, ROWS, LO, HI = 1.0, 30, 60.0, 250.0
#: Public bound on a frame's length for the Polars Context (its float-sum sensitivity grows
#: with it; 10^8 would triple the noise of its mean): above the 3.9M readings at 1M persons.
MAX_LENGTH = 10**7
SBP_WHERE = "measurement_concept_id = 3004249"
IMD = "observation_concept_id = 2000000001"
IMD_JOIN = "JOIN observation o ON o.person_id = {a}.person_id AND o." + IMD
SCOPE: dict[str, Any] = {
    "project": "bench-dp",
    "access": "dp",
    "dp": {"epsilon": 1.0e6, "delta": 1.0e-3},
    "tables": {
        "person": ["person_id"],
        "measurement": ["person_id", "measurement_concept_id", "value_as_number"],
        "observation": ["person_id", "observation_concept_id", "value_as_number"],
    },
    "expires": "2099-12-31",
}

OURS = {
    "count": "SELECT COUNT(*) AS v FROM person",
    "count_by_imd": "SELECT o.value_as_number AS imd, COUNT(*) AS v FROM person p "
    + IMD_JOIN.format(a="p")
    + " GROUP BY 1",
    "count_by_imd_one_table": "SELECT value_as_number AS imd, COUNT(*) AS v FROM observation "
    f"WHERE {IMD} GROUP BY 1",
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
#: The truth of each query, exact and untruncated (DuckDB SQL on the extract).
TRUTH = {
    "count": "SELECT COUNT(*) AS v FROM person",
    "count_by_imd": "SELECT o.value_as_number AS imd, COUNT(*) AS v FROM person p "
    + IMD_JOIN.format(a="p")
    + " GROUP BY 1",
    "avg_sbp": f"SELECT AVG(value_as_number) AS v FROM measurement WHERE {SBP_WHERE}",
    "sum_sbp": f"SELECT SUM(value_as_number) AS v FROM measurement WHERE {SBP_WHERE}",
    "median_sbp": f"SELECT MEDIAN(value_as_number) AS v FROM measurement WHERE {SBP_WHERE}",
    "avg_sbp_by_imd_join": "SELECT o.value_as_number AS imd, AVG(m.value_as_number) AS v "
    "FROM measurement m " + IMD_JOIN.format(a="m") + f" WHERE m.{SBP_WHERE} GROUP BY 1",
}
SAME_TRUTH = {
    "count_by_imd_one_table": "count_by_imd",
    "avg_sbp_by_imd_denormalised": "avg_sbp_by_imd_join",
}
#: Queries whose answer on the system's own truncated, clamped data is easy to state.
OWN_EXACT = {"count", "count_by_imd", "count_by_imd_one_table", "avg_sbp", "sum_sbp"}


# -- data ------------------------------------------------------------------------------------


def population(persons: int, data: Path) -> Path:
    out = data / f"dp-{persons}"
    if not (out / "lth.duckdb").exists():
        print(f"synthesising {persons} persons into {out} ...", flush=True)
        synthesise(persons, 1, 42, out, progress=False)
    return out


def connect(folder: Path, data: Path) -> Any:
    """The researcher's connection to the benchmark project (its extract is cached)."""
    registry = data / f"registry-{folder.name}.sqlite"
    return sde.connect(
        folder,
        scope=SCOPE,
        registry=f"sqlite:///{registry}",
        cache_dir=data / "cache",
        user="bench",
    )


def direct(conn: Any, sql: str, dialect: str = "duckdb") -> pd.DataFrame:
    """SQL on the extract itself, bypassing the proxy (the harness's truth and frames)."""
    text = sqlglot.transpile(sql, read=dialect, write="duckdb")[0]
    return conn._extract.run(text, timeout_s=3600, max_rows=10**9)


def truth(conn: Any) -> dict[str, pd.DataFrame]:
    out = {name: direct(conn, sql) for name, sql in TRUTH.items()}
    for alias, name in SAME_TRUTH.items():
        out[alias] = out[name]
    return out


def denormalise(conn: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    person = direct(
        conn,
        "SELECT p.person_id, CAST(o.value_as_number AS BIGINT) AS imd FROM person p "
        + IMD_JOIN.format(a="p"),
    )
    sbp = direct(
        conn,
        "SELECT m.person_id, CAST(o.value_as_number AS BIGINT) AS imd, m.value_as_number AS sbp "
        "FROM measurement m " + IMD_JOIN.format(a="m") + f" WHERE m.{SBP_WHERE}",
    )
    return person, sbp


# -- error -----------------------------------------------------------------------------------


def cells(frame: pd.DataFrame) -> pd.Series:
    """The answer as a Series keyed by IMD decile (or one cell)."""
    if "imd" in frame.columns:
        f = frame.assign(imd=frame["imd"].astype(float).astype(int))
        return f.set_index("imd")["v"].astype(float).sort_index()
    return pd.Series([float(frame["v"].iloc[0])], index=[0])


def abs_errors(answer: pd.DataFrame, exact: pd.Series) -> list[float]:
    got = cells(answer).reindex(exact.index)
    return list(np.abs(got.to_numpy(float) - exact.to_numpy(float)))


def _summary(
    times: list[float], errors: list[float], noise: list[float] | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "latency_s": statistics.median(times),
        "latency_min_s": min(times),
        "timed_runs": len(times),
        "mae": float(np.mean(errors)),
        "mae_se": float(np.std(errors, ddof=1) / math.sqrt(len(errors))) if len(errors) > 1 else 0,
        "error_samples": len(errors),
    }
    if noise:
        out["noise_mae"] = float(np.mean(noise))
        out["noise_mae_se"] = float(np.std(noise, ddof=1) / math.sqrt(len(noise)))
    out.update(extra)
    return out


# -- ours ------------------------------------------------------------------------------------


class Phases:
    """Wall time per phase of the DP engine's queries (the benchmark wraps its steps)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        return timed

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        self.seconds = {}
        out: dict[str, float] = {}
        started = time.perf_counter()
        yield out
        out.update(self.seconds, total=time.perf_counter() - started)


def engine_only(conn: Any, phases: Phases) -> DPEngine:
    """The DP engine on the same extract without the proxy, its steps timed."""

    def run(sql: str, dialect: str) -> pd.DataFrame:
        return direct(conn, sql, dialect)

    engine = DPEngine(
        phases.wrap("sql", run),
        registry=conn.registry,
        project="bench-dp-engine",
        budget=(1.0e6, 1.0e-3),
        user="bench",
    )
    engine._prepare = phases.wrap("analyse+plan", engine._prepare)  # type: ignore[method-assign]
    for step in ("find", "check", "record"):
        setattr(engine.ledger, step, phases.wrap("ledger", getattr(engine.ledger, step)))
    return engine


@contextmanager
def timed_noise(phases: Phases) -> Iterator[None]:
    original = dp_engine.privatise
    dp_engine.privatise = phases.wrap("noise", original)
    try:
        yield
    finally:
        dp_engine.privatise = original


def fresh(sql: str, tag: str) -> str:
    """The same question under a new output name: new query text, no release cache hit."""
    return sql.replace(" AS v ", f" AS v_{tag} ", 1)


def own_exact_ours(name: str, plan: Any, exact: pd.DataFrame) -> pd.Series | None:
    if name not in OWN_EXACT:
        return None
    m = merge(exact, plan.exact.key_cols, plan.exact.stats)
    index = [int(json.loads(c)[0]) for c in m["_cell"]] if plan.exact.key_cols else [0] * len(m)
    if name.startswith("count"):
        v = m["n_rows"].astype(float)
    else:
        s = plan.slots[0]
        res = s.b.resolution
        v = (
            m["s_0"] * res
            if name == "sum_sbp"
            else s.mid_u * res + m["cs_0"].astype(float) * res / m["n_0"].astype(float)
        )
    return pd.Series(v.to_numpy(float), index=index).sort_index()


def run_ours(conn: Any, exact: dict[str, pd.DataFrame], reps: int, draws: int) -> dict[str, Any]:
    run_id = secrets.token_hex(3)
    phases = Phases()
    engine = engine_only(conn, phases)
    warm = "SELECT COUNT(*) AS v FROM person WHERE 1 = 0"
    conn.sql_dp(fresh(warm, run_id), epsilon=EPS)  # imports, first connection use
    engine.sql_dp(fresh(warm, run_id), epsilon=EPS)
    out: dict[str, Any] = {}
    for name, sql in OURS.items():
        rows = ROWS if "measurement" in sql else 1
        want = cells(exact[name])
        times, errors = [], []
        for rep in range(reps):
            started = time.perf_counter()
            answer = conn.sql_dp(
                fresh(sql, f"{run_id}_{rep}"), epsilon=EPS, max_rows_per_person=rows
            )
            times.append(time.perf_counter() - started)
            errors += abs_errors(answer.rename(columns={f"v_{run_id}_{rep}": "v"}), want)
        engine_runs = []
        with timed_noise(phases):
            for rep in range(reps):
                with phases.measure() as p:
                    engine.sql_dp(
                        fresh(sql, f"{run_id}_e{rep}"), epsilon=EPS, max_rows_per_person=rows
                    )
                engine_runs.append(p)
        # More draws of the noise on one exact run: the plan's own mechanisms.
        a, plan, _ = engine._prepare(DPRequest(sql, epsilon=EPS, max_rows_per_person=rows))
        combined = getattr(plan.exact, "combined", None)  # absent before the one-pass SQL
        if combined is not None:
            ex, hists = plan.exact.split(direct(conn, combined, a.dialect))
        else:
            ex = direct(conn, plan.exact.sql, a.dialect)
            hists = {j: direct(conn, h, a.dialect) for j, (h, _) in plan.exact.histograms.items()}
        own = own_exact_ours(name, plan, ex)
        noise: list[float] = []
        for _ in range(draws):
            answer = render(a, privatise(plan, ex, hists), 0.05)
            errors += abs_errors(answer, want)
            if own is not None:
                noise += abs_errors(answer, own)
        phase_median = {
            k: statistics.median(r.get(k, 0.0) for r in engine_runs)
            for k in ("total", "analyse+plan", "sql", "noise", "ledger")
        }
        out[name] = _summary(
            times,
            errors,
            noise,
            engine_s=phase_median["total"],
            engine_phases_s=phase_median,
            epsilon=plan.epsilon,
        )
        print(f"  ours {name}: {json.dumps(out[name])}", flush=True)
    return out


# -- OpenDP Polars ---------------------------------------------------------------------------


def run_polars(
    person: pd.DataFrame,
    sbp: pd.DataFrame,
    exact: dict[str, pd.DataFrame],
    reps: int,
    draws: int,
) -> dict[str, Any]:
    import opendp.prelude as dp
    import polars as pl

    dp.enable_features("contrib")
    frames = {"person": pl.from_pandas(person), "sbp": pl.from_pandas(sbp)}
    keys = pl.LazyFrame({"imd": list(range(1, 11))})
    candidates = list(np.arange(LO, HI + 1.0))
    x: Any = pl.col("sbp").fill_null(0.0)  # the .dp namespace is registered at run time
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

    def query(table: str, rows: int, build: Callable[[Any], Any]) -> Any:
        ctx = dp.Context.compositor(
            data=frames[table].lazy(),
            privacy_unit=dp.unit_of(contributions=1, identifier="person_id"),
            privacy_loss=dp.loss_of(epsilon=EPS),
            split_evenly_over=1,
            margins=[
                dp.polars.Margin(by=[], max_length=MAX_LENGTH),
                dp.polars.Margin(by=["imd"], max_length=MAX_LENGTH, max_groups=10),
            ],
        )
        return build(ctx.query().truncate_per_group(rows))

    out: dict[str, Any] = {}
    for name, (table, rows, build) in queries.items():
        want = cells(exact[name])
        times, errors = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(reps):
                started = time.perf_counter()
                answer = query(table, rows, build).release().collect().to_pandas()
                times.append(time.perf_counter() - started)
                errors += abs_errors(answer, want)
            measurement = query(table, rows, build).resolve()
            for _ in range(draws):
                answer = measurement(frames[table].lazy()).collect().to_pandas()
                errors += abs_errors(answer, want)
        out[name] = _summary(times, errors)
        print(f"  polars {name}: {json.dumps(out[name])}", flush=True)
    out["avg_sbp_by_imd_join"] = {
        "error": "not attempted: the Context takes one frame; see the denormalised row"
    }
    return out


# -- SmartNoise SQL --------------------------------------------------------------------------


def run_smartnoise(
    person: pd.DataFrame,
    sbp: pd.DataFrame,
    exact: dict[str, pd.DataFrame],
    reps: int,
    draws: int,
    tmp: Path,
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
        "draws": draws,
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
    out: dict[str, Any] = {}
    for name, res in raw.items():
        if res["error"]:
            out[name] = {"error": res["error"]}
            continue
        want = cells(exact[name])
        errors: list[float] = []
        for run in res["runs"]:
            answer = pd.DataFrame(run)
            if "imd" not in answer.columns and "a.imd" in answer.columns:
                answer = answer.rename(columns={"a.imd": "imd"})
            errors += abs_errors(answer, want)
        noise: list[float] = []
        if name in OWN_EXACT:
            own = cells(pd.DataFrame(res["own_exact"]))
            for run in res["runs"][reps:]:  # the draws on the one exact run
                noise += abs_errors(pd.DataFrame(run), own)
        out[name] = _summary(
            res["seconds"],
            errors,
            noise,
            epsilon=res["cost"][0],
            delta=res["cost"][1],
            epsilon_per_column=res["epsilon"],
        )
        print(f"  smartnoise {name}: {json.dumps(out[name])}", flush=True)
    return out


# -- report ----------------------------------------------------------------------------------


def _fmt(r: dict[str, Any] | None, key: str) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return "refused" if key == "latency_s" else ""
    if key == "latency_s":
        return f"{r['latency_s']:.3f}"
    if key not in r:
        return ""
    return f"{r[key]:.3g} ± {r[key + '_se']:.1g}"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# DP benchmark",
        "",
        f"Total epsilon = {EPS:g} per query for every system (SmartNoise run at "
        "1 / its reported cost); at most "
        f"{ROWS} readings per person (1 row for counts); bounds {LO:g}-{HI:g} mmHg. "
        "Latency: median wall time of one end-to-end query (ours: `conn.sql_dp` through "
        "the proxy, fresh query text each run; `engine` = the DP engine alone on the same "
        "extract). MAE: against the exact untruncated answer, mean over cells, timed runs "
        "and extra noise draws, ± standard error; noise MAE: against the system's own "
        "truncated, clamped exact answer. SmartNoise and Polars read denormalised tables "
        "(they cannot join): their `count_by_imd` is also set beside our "
        "`count_by_imd_one_table`, the same question on one table. 2 shared cores. "
        "`benchmarks/dp.py` writes this file; the method is in its docstring.",
        "",
    ]
    names = list(dict.fromkeys([*OURS, *SMARTNOISE]))
    for persons, per in results["sizes"].items():
        info = per["rows"]
        lines += [
            f"## {int(persons):,} persons ({info['persons']:,} in the extract, "
            f"{info['sbp_readings']:,} SBP readings)",
            "",
            "| query | ours s | engine s | SmartNoise s | Polars s | x SmartNoise | "
            "ours MAE | SmartNoise MAE | Polars MAE | ours noise MAE | SmartNoise noise MAE |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in names:
            o = per["ours"].get(name)
            s = per["smartnoise"].get(SAME_TRUTH.get(name, name) if o else name)
            p = per["polars"].get(SAME_TRUTH.get(name, name) if o else name)
            speed = ""
            if o and s and "error" not in s and "error" not in o:
                speed = f"{s['latency_s'] / o['latency_s']:.1f}"
            engine = f"{o['engine_s']:.3f}" if o and "engine_s" in o else "-"
            lines.append(
                f"| {name} | {_fmt(o, 'latency_s')} | {engine} | {_fmt(s, 'latency_s')} | "
                f"{_fmt(p, 'latency_s')} | {speed} | {_fmt(o, 'mae')} | {_fmt(s, 'mae')} | "
                f"{_fmt(p, 'mae')} | {_fmt(o, 'noise_mae')} | {_fmt(s, 'noise_mae')} |"
            )
        lines += [
            "",
            "Our engine's phases (median seconds of the engine-only runs):",
            "",
            "| query | analyse+plan | SQL (DuckDB) | noise | ledger | total |",
            "|---|---|---|---|---|---|",
        ]
        for name in OURS:
            ph = per["ours"][name]["engine_phases_s"]
            lines.append(
                f"| {name} | {ph['analyse+plan']:.4f} | {ph['sql']:.4f} | {ph['noise']:.4f} | "
                f"{ph['ledger']:.4f} | {ph['total']:.4f} |"
            )
        refused = {n: r["error"] for n, r in per["smartnoise"].items() if "error" in r}
        if refused:
            lines += [
                "",
                "SmartNoise refused: " + "; ".join(f"{n} ({e})" for n, e in refused.items()),
            ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--reps", type=int, default=10, help="timed end-to-end runs per query")
    parser.add_argument("--draws", type=int, default=300, help="extra noise draws per query")
    parser.add_argument(
        "--polars-draws", type=int, default=20, help="extra Polars runs (each re-reads data)"
    )
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "sde-bench-dp")
    parser.add_argument("--skip", nargs="*", default=[], choices=["smartnoise", "polars"])
    parser.add_argument("--results", type=Path, default=RESULTS, help="where dp.json/dp.md go")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "epsilon": EPS,
        "rows_per_person": ROWS,
        "reps": args.reps,
        "draws": args.draws,
        "sizes": {},
    }
    for persons in args.persons:
        folder = population(persons, args.data)
        started = time.perf_counter()
        conn = connect(folder, args.data)
        print(f"{persons}: extract ready in {time.perf_counter() - started:.1f} s", flush=True)
        exact = truth(conn)
        person, sbp = denormalise(conn)
        per: dict[str, Any] = {"ours": run_ours(conn, exact, args.reps, args.draws)}
        with tempfile.TemporaryDirectory() as tmp_name:
            per["smartnoise"] = (
                {}
                if "smartnoise" in args.skip
                else run_smartnoise(person, sbp, exact, args.reps, args.draws, Path(tmp_name))
            )
        per["polars"] = (
            {}
            if "polars" in args.skip
            else run_polars(person, sbp, exact, args.reps, args.polars_draws)
        )
        per["rows"] = {"persons": len(person), "sbp_readings": len(sbp)}
        results["sizes"][str(persons)] = per
        conn.close()
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "dp.json").write_text(json.dumps(results, indent=2))
    (args.results / "dp.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
