"""Benchmark: checking a 1M-record crosstab and pivot table, against pandas and ACRO.

Times (best of ``--repeat`` runs) of:

* plain pandas (``pd.crosstab`` / ``pd.pivot_table``, no checking);
* ``sde.sdc`` (the table, every rule, secondary suppression, the report);
* ACRO 1.0.2 (``ACRO(suppress=False)``) in its own virtual environment
  (``benchmarks/.venvs/acro``, created on first use), on the same records
  read from the same CSV; only its call is timed;
* the cost of protection (secondary suppression and its linear-programming
  audit) on a 20 x 10 table with margins and 3, 10 or 25 small cells.

Writes ``benchmarks/results/sdc.json`` and ``sdc.md``. Goal: at most 1.5x
pandas and faster than ACRO. Run: ``.venv/bin/python benchmarks/sdc.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sde import sdc  # noqa: E402
from tests.fixtures.acro import AcroRunner, ensure_acro_venv  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def records(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` records: 20 regions x 12 months, a skewed cost, a few rare small cells."""
    rng = np.random.default_rng(seed)
    region = rng.choice([f"region_{i:02d}" for i in range(20)], n)
    month = rng.integers(1, 13, n)
    cost = np.round(rng.gamma(2.0, 50.0, n), 2)
    df = pd.DataFrame({"region": region, "month": month, "cost": cost})
    rare = pd.DataFrame({"region": "region_99", "month": [1, 1, 2], "cost": [10.0, 20.0, 30.0]})
    return pd.concat([df, rare], ignore_index=True)


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def cases(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "name": "crosstab count",
            "pandas": lambda: pd.crosstab(df.region, df.month),
            "sde": lambda: sdc.crosstab(df.region, df.month),
            "acro": {"kind": "crosstab", "index": ["region"], "columns": ["month"]},
        },
        {
            "name": "pivot_table sum",
            "pandas": lambda: pd.pivot_table(
                df, values="cost", index="region", columns="month", aggfunc="sum"
            ),
            "sde": lambda: sdc.pivot_table(
                df, values="cost", index="region", columns="month", aggfunc="sum"
            ),
            "acro": {
                "kind": "pivot_table",
                "index": ["region"],
                "columns": ["month"],
                "values": "cost",
                "aggfunc": "sum",
            },
        },
        {
            "name": "pivot_table mean",
            "pandas": lambda: pd.pivot_table(
                df, values="cost", index="region", columns="month", aggfunc="mean"
            ),
            "sde": lambda: sdc.pivot_table(
                df, values="cost", index="region", columns="month", aggfunc="mean"
            ),
            "acro": {
                "kind": "pivot_table",
                "index": ["region"],
                "columns": ["month"],
                "values": "cost",
                "aggfunc": "mean",
            },
        },
        {
            "name": "crosstab mean, margins",
            "pandas": lambda: pd.crosstab(
                df.region, df.month, values=df.cost, aggfunc="mean", margins=True
            ),
            "sde": lambda: sdc.crosstab(
                df.region, df.month, values=df.cost, aggfunc="mean", margins=True
            ),
            "acro": {
                "kind": "crosstab",
                "index": ["region"],
                "columns": ["month"],
                "values": "cost",
                "aggfunc": "mean",
                "margins": True,
            },
        },
    ]


def audit_cost(repeat: int, small: int = 10, seed: int = 1) -> dict[str, Any]:
    """The linear-programming audit on a 20 x 10 table with margins and ``small`` small cells.

    Times the same crosstab with suppression (pattern + audit) and without
    protection; the difference is what protecting costs.
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(15, 80, size=(20, 10))
    where = rng.choice(counts.size, small, replace=False)
    counts.ravel()[where] = rng.integers(0, 10, small)
    rows, cols = np.indices(counts.shape)
    df = pd.DataFrame(
        {
            "r": np.repeat(rows.ravel(), counts.ravel()),
            "c": np.repeat(cols.ravel(), counts.ravel()),
        }
    )
    protected = best_of(lambda: sdc.crosstab(df.r, df.c, margins=True), repeat)
    plain = best_of(lambda: sdc.crosstab(df.r, df.c, margins=True, protection="none"), repeat)
    audit = sdc.crosstab(df.r, df.c, margins=True).report["protection"]["audit"]
    return {
        "table": "20 x 10 with margins",
        "small_cells": small,
        "protected_s": protected,
        "unprotected_s": plain,
        "protection_s": protected - plain,
        "programs": audit["programs"],
        "hidden": len(sdc.crosstab(df.r, df.c, margins=True).report["protection"]["hidden"]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--acro-repeat", type=int, default=2)
    parser.add_argument("--no-acro", action="store_true", help="skip ACRO (no PyPI)")
    args = parser.parse_args(argv)

    df = records(args.records)
    todo = cases(df)
    rows: list[dict[str, Any]] = []
    for case in todo:
        case["sde"]()  # warm up
        pandas_s = best_of(case["pandas"], args.repeat)
        sde_s = best_of(case["sde"], args.repeat)
        rows.append({"case": case["name"], "pandas_s": pandas_s, "sde_s": sde_s})
        print(f"{case['name']:>24}: pandas {pandas_s:.3f}s  sde {sde_s:.3f}s", flush=True)

    if not args.no_acro:
        runner = AcroRunner(ensure_acro_venv())
        answers = runner.run(
            [{**c["acro"], "repeat": args.acro_repeat} for c in todo], [df] * len(todo)
        )
        for row, answer in zip(rows, answers, strict=True):
            row["acro_s"] = answer["seconds"]
            row["acro_status"] = answer["status"]

    for row, case in zip(rows, todo, strict=True):
        row["sde_status"] = case["sde"]().status
        row["sde_vs_pandas"] = row["sde_s"] / row["pandas_s"]
        if "acro_s" in row:
            row["acro_vs_sde"] = row["acro_s"] / row["sde_s"]

    audits = [audit_cost(args.repeat, small) for small in (3, 10, 25)]
    result = {
        "audit": audits,
        "records": len(df),
        "repeat": args.repeat,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "goal": "sde <= 1.5x pandas; sde faster than ACRO",
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sdc.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# sde.sdc benchmark ({len(df):,} records, best of {args.repeat})",
        "",
        f"{result['machine']}; pandas {pd.__version__}; "
        "ACRO 1.0.2 on pandas 2.3.3 in its own venv.",
        "",
        "| case | pandas (s) | sde.sdc (s) | ACRO (s) | sde / pandas | ACRO / sde |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        acro_s = f"{row['acro_s']:.3f}" if "acro_s" in row else "-"
        ratio = f"{row['acro_vs_sde']:.1f}x" if "acro_vs_sde" in row else "-"
        lines.append(
            f"| {row['case']} | {row['pandas_s']:.3f} | {row['sde_s']:.3f} | {acro_s} "
            f"| {row['sde_vs_pandas']:.2f}x | {ratio} |"
        )
    lines += [
        "",
        "Protection cost (secondary suppression + linear-programming audit), "
        "20 x 10 table with margins:",
        "",
        "| small cells | hidden | programs solved | protected (ms) | unprotected (ms) "
        "| protection (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for a in audits:
        lines.append(
            f"| {a['small_cells']} | {a['hidden']} | {a['programs']} "
            f"| {a['protected_s'] * 1000:.1f} | {a['unprotected_s'] * 1000:.1f} "
            f"| {a['protection_s'] * 1000:.1f} |"
        )
    (RESULTS / "sdc.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
