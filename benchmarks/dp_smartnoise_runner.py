"""SmartNoise SQL side of benchmarks/dp.py: runs inside benchmarks/.venvs/smartnoise.

SmartNoise SQL 1.0.10 pins opendp<0.15 and pandas<3, so it cannot share the project's
environment. It refuses JOINs and has no median, so it gets hand-denormalised tables:
``person(person_id, imd)`` and ``sbp(person_id, imd, sbp)``. Reads a JSON job on stdin,
writes one JSON document of results on stdout.

SmartNoise charges its ``epsilon`` to every noisy column of a query (AVG is a SUM and a
COUNT: 2 epsilon), so each query runs at ``epsilon / cost`` where ``cost`` is what
``get_privacy_cost`` reports at ``epsilon``: every query then costs the job's epsilon in
total (checked). Per query: ``reps`` timed end-to-end ``execute_df`` runs, then ``draws``
further noise draws on one exact run (``execute(pre_aggregated=...)``, SmartNoise's own way
to noise given exact aggregates), and that exact run's answer without noise (``own_exact``)
for counts, sums and means.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import pandas as pd
import snsql
from snsql import Privacy

DELTA = 1e-6


def own_exact(name: str, exact: list[Any]) -> dict[str, list[Any]] | None:
    """The answer on SmartNoise's truncated, clamped data (its exact aggregates)."""
    frame = pd.DataFrame(exact[1:], columns=list(exact[0]))
    if name.startswith("count"):
        v = frame["count_star"].astype(float)
    elif name == "sum_sbp":
        v = frame["sum_sbp"].astype(float)
    elif name == "avg_sbp":
        v = frame["sum_sbp"].astype(float) / frame["count_sbp"].astype(float)
    else:
        return None
    out: dict[str, list[Any]] = {"v": v.tolist()}
    if "imd" in frame.columns:
        out["imd"] = frame["imd"].tolist()
    return out


def main() -> None:
    job = json.load(sys.stdin)
    person = pd.read_parquet(job["person"])
    sbp = pd.read_parquet(job["sbp"])
    rows = job["rows"]
    eps = job["epsilon"]
    meta = {
        "bench": {
            "dp": {
                "person": {
                    "row_privacy": False,
                    "max_ids": 1,
                    "censor_dims": False,
                    "person_id": {"type": "int", "private_id": True},
                    "imd": {"type": "int"},
                },
                "sbp": {
                    "row_privacy": False,
                    "max_ids": rows,
                    "censor_dims": False,
                    "person_id": {"type": "int", "private_id": True},
                    "imd": {"type": "int"},
                    "sbp": {"type": "float", "lower": job["lower"], "upper": job["upper"]},
                },
            }
        }
    }
    readers: dict[tuple[str, float], Any] = {}

    def reader(table: str, epsilon: float) -> Any:
        if (table, epsilon) not in readers:
            frame = person if table == "person" else sbp
            one = {"bench": {"dp": {table: meta["bench"]["dp"][table]}}}
            readers[table, epsilon] = snsql.from_df(
                frame, privacy=Privacy(epsilon=epsilon, delta=DELTA), metadata=one
            )
        return readers[table, epsilon]

    out: dict[str, object] = {}
    for name, sql in job["queries"].items():
        table = "person" if "dp.person" in sql and "dp.sbp" not in sql else "sbp"
        runs: list[object] = []
        times: list[float] = []
        result: dict[str, Any] = {"runs": runs, "seconds": times, "error": None}
        try:
            cost = reader(table, eps).get_privacy_cost(sql)
            per_column = eps * eps / float(cost[0])
            r = reader(table, per_column)
            total = r.get_privacy_cost(sql)
            if not math.isclose(float(total[0]), eps, rel_tol=1e-9):
                raise AssertionError(f"cost {total} at epsilon {per_column}")
            for _ in range(job["reps"]):
                started = time.perf_counter()
                df = r.execute_df(sql)
                times.append(time.perf_counter() - started)
                runs.append(df.to_dict("list"))
            subquery, _ = r._rewrite(sql)
            exact = r._get_reader(subquery)._execute_ast(subquery)
            for _ in range(job["draws"]):
                rows_out = r.execute(sql, pre_aggregated=exact)
                runs.append(pd.DataFrame(rows_out[1:], columns=rows_out[0]).to_dict("list"))
            result.update(
                cost=[float(total[0]), float(total[1])],
                epsilon=per_column,
                own_exact=own_exact(name, exact),
            )
        except Exception as err:
            result["error"] = f"{type(err).__name__}: {str(err)[:160]}"
        out[name] = result
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
