"""SmartNoise SQL side of benchmarks/dp.py: runs inside benchmarks/.venvs/smartnoise.

SmartNoise SQL 1.0.10 pins opendp<0.15 and pandas<3, so it cannot share the project's
environment. It refuses JOINs and has no median, so it gets hand-denormalised tables:
``person(person_id, imd)`` and ``sbp(person_id, imd, sbp)``. Reads a JSON job on stdin,
writes one JSON line of results on stdout.
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
import snsql
from snsql import Privacy


def main() -> None:
    job = json.load(sys.stdin)
    person = pd.read_parquet(job["person"])
    sbp = pd.read_parquet(job["sbp"])
    rows = job["rows"]
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
    out: dict[str, object] = {}
    for name, sql in job["queries"].items():
        runs: list[object] = []
        times: list[float] = []
        error = None
        for _ in range(job["reps"]):
            table = "person" if "dp.person" in sql and "dp.sbp" not in sql else "sbp"
            frame = person if table == "person" else sbp
            one = {"bench": {"dp": {table: meta["bench"]["dp"][table]}}}
            reader = snsql.from_df(
                frame, privacy=Privacy(epsilon=job["epsilon"], delta=1e-6), metadata=one
            )
            started = time.perf_counter()
            try:
                df = reader.execute_df(sql)
            except Exception as err:
                error = f"{type(err).__name__}: {str(err)[:160]}"
                break
            times.append(time.perf_counter() - started)
            runs.append(df.to_dict("list"))
        out[name] = {"runs": runs, "seconds": times, "error": error}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
