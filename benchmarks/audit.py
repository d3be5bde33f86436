"""Benchmark the audit log's append rate: one writer, then three processes at once.

Three services (gateway, airlock, committee) append to one hash-chained log. Each writer
takes the chain's lock before reading the head (:meth:`sde.audit.AuditLog.lock`), so
concurrent writers queue instead of colliding and retrying. This measures appends per
second on SQLite (the demo's registry) and PostgreSQL (a throwaway local server) with one
process, the baseline, and with three processes appending at the same time, then verifies
the whole chain. Writes ``benchmarks/results/audit.json`` and ``audit.md``.

    .venv/bin/python benchmarks/audit.py            # 600 appends per process
    .venv/bin/python benchmarks/audit.py --n 200
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from sde.audit import AuditLog, AuditRecord
from sde.backends.pg_local import LocalPostgres
from sde.registry import open_registry

RESULTS = Path(__file__).parent / "results"


def _writer(url: str, name: str, n: int, start: Any) -> None:
    log = AuditLog(open_registry(url))
    start.wait()
    for i in range(n):
        if i % 2:
            log.append(AuditRecord.event(name, "request.view", f"request:{i}", details={"i": i}))
        else:
            log.append(
                AuditRecord(name, "p", "1", "sql", f"SELECT {i}", outcome="ok", duration_ms=1.0)
            )


def _rate(url: str, processes: int, n: int) -> float:
    """Appends per second with ``processes`` writers of ``n`` appends each."""
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    workers = [
        ctx.Process(target=_writer, args=(url, f"service{p}", n, start)) for p in range(processes)
    ]
    for w in workers:
        w.start()
    time.sleep(2.0)  # every writer has opened the registry and waits at the start line
    began = time.perf_counter()
    start.set()
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise RuntimeError(f"a writer failed with exit code {w.exitcode}")
    return processes * n / (time.perf_counter() - began)


def _measure(kind: str, url_for: Any, n: int) -> dict[str, Any]:
    one = _rate(url_for("one"), 1, n)
    three_url = url_for("three")
    three = _rate(three_url, 3, n)
    check = AuditLog(open_registry(three_url)).verify()
    if not check.ok or check.entries != 3 * n:
        raise RuntimeError(f"{kind}: the chain does not verify: {check}")
    row = {"registry": kind, "one_process": one, "three_processes": three, "ratio": three / one}
    print(
        f"{kind:10} 1 process {one:8.0f}/s   3 processes {three:8.0f}/s   ratio {three / one:.2f}"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="appends per process")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(_measure("sqlite", lambda tag: f"sqlite:///{tmp}/{tag}.sqlite", args.n))
    pg = LocalPostgres.start()
    try:

        def pg_url(tag: str) -> str:
            dbname = pg.create_database(f"audit_{tag}").rsplit("dbname=", 1)[1]
            return f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{dbname}"

        rows.append(_measure("postgresql", pg_url, args.n))
    finally:
        pg.stop()
    meta = {"machine": platform.machine(), "python": platform.python_version(), "n": args.n}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# Audit log append rate ({args.n} appends per process, chain verified after)",
        "",
        "| registry | 1 process (appends/s) | 3 processes (appends/s) | 3 / 1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['registry']} | {r['one_process']:.0f} | {r['three_processes']:.0f} "
        f"| {r['ratio']:.2f} |"
        for r in rows
    ]
    (RESULTS / "audit.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
