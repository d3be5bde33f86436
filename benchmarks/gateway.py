"""Benchmark the gateway against embedded mode: 20 researchers at once, and a large result.

Synthesises a population, makes a registry with one `rows` project and 20 members (through
the account services), starts the gateway under uvicorn on loopback (token table) in a
process of its own, as deployed (``--in-process``: a thread of this process, sharing its
GIL with the 20 clients, as the first version of this benchmark did), then:

1. one researcher runs each research query of ``tests/research_queries/`` (those the
   project's scope admits) ``--reps`` times, embedded and through the gateway in turn:
   per query the median of each and the gateway's overhead (their difference);
2. every researcher runs those queries at the same time, once embedded (each with their
   own ``sde.connect``, all sharing the project's extract, in threads of this process)
   and once through the gateway (``GatewayConnection``, Arrow); every connection has run
   one query before the clock starts; per-query latency p50/p95 and the ratio;
3. one result of at least 1M cells, embedded, through the gateway as Arrow, and as JSON.

The load average (``os.getloadavg``) is written beside the figures: the machine's cores
may be shared.

Writes ``benchmarks/results/gateway.json`` and ``gateway.md``.

    .venv/bin/python benchmarks/gateway.py                  # 20,000 persons, 20 users
    .venv/bin/python benchmarks/gateway.py --persons 5000 --users 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import multiprocessing
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import sde
from sde.accounts import (
    AccountStore,
    add_member,
    create_project,
    create_user,
    record_accreditation,
    record_daa,
)
from sde.client import GatewayConnection
from sde.errors import SDEError
from sde.gateway import create_app
from sde.gateway.auth import TokenTable
from sde.omop.synth import synthesise
from sde.registry import open_registry
from sde.settings import Settings

RESULTS = Path(__file__).parent / "results"
QUERIES = Path(__file__).parents[1] / "tests" / "research_queries"
SECRET = "a benchmark secret of at least thirty-two characters"  # noqa: S105
SCOPE: dict[str, Any] = {
    "project": "bench",
    "access": "rows",
    "tables": dict.fromkeys(
        (
            "person",
            "condition_occurrence",
            "measurement",
            "drug_exposure",
            "visit_occurrence",
            "observation_period",
            "death",
            "location",
            "concept",
            "concept_ancestor",
        ),
        "*",
    ),
    "expires": "2099-12-31",
}
BIG = "SELECT * FROM measurement LIMIT {rows}"
#: Each connection's first query, before the clock starts.
WARM = "SELECT COUNT(*) AS n FROM person"


def _registry(root: Path, users: int) -> str:
    url = f"sqlite:///{root / 'registry.sqlite'}"
    store = AccountStore(open_registry(url), secret=SECRET)
    create_project(store, "bench", "bench", title="Benchmark", scope=SCOPE)
    for i in range(users):
        name = f"r{i:02d}"
        create_user(
            store,
            "bench",
            name,
            display_name=name,
            email=f"{name}@x.org",
            organisation="X",
            roles=["researcher"],
        )
        record_accreditation(store, "bench", name, dt.date.today() + dt.timedelta(days=30))
        record_daa(store, "bench", name, "v3")
        add_member(store, "bench", "bench", name)
    store.engine.dispose()
    return url


def _tokens(users: int) -> dict[str, str]:
    return {f"t-{i:02d}": f"r{i:02d}" for i in range(users)}


def _serve(settings: Settings, users: int) -> tuple[uvicorn.Server, threading.Thread, str]:
    """The gateway in a thread of this process (``--in-process``)."""
    app = create_app(settings, TokenTable(_tokens(users)))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}/"


def _gateway_process(data: str, registry: str, users: int, port: int) -> None:
    settings = Settings(data_dir=data, registry_url=registry, gateway_auth="tokens")
    app = create_app(settings, TokenTable(_tokens(users)))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _serve_process(data: Path, registry: str, users: int) -> tuple[Any, str]:
    """The gateway in a process of its own, as deployed; the process and its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(target=_gateway_process, args=(str(data), registry, users, port))
    process.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"{url}healthz", timeout=1).raise_for_status()
            return process, url
        except httpx.HTTPError:
            if not process.is_alive() or time.monotonic() > deadline:
                process.terminate()
                raise RuntimeError("the gateway process did not start") from None
            time.sleep(0.1)


def _admitted(data: Path, registry: str) -> dict[str, str]:
    """The research queries the benchmark scope admits (run once, embedded)."""
    found = {}
    with sde.connect(data, scope=SCOPE, registry=registry, user="r00") as conn:
        for path in sorted(QUERIES.glob("*.sql")):
            sql = path.read_text()
            try:
                conn.sql(sql)
            except SDEError:
                continue
            found[path.stem] = sql
    return found


def _process_cpu_ms(pid: int | None) -> float | None:
    """CPU time (user + system) process ``pid`` has used, in ms; None if unknown (no
    ``/proc``, or the gateway runs in this process)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") * 1000


def _single(
    embedded: Any, remote: Any, queries: dict[str, str], reps: int, gateway_pid: int | None
) -> tuple[dict[str, dict[str, float]], dict[str, float] | None]:
    """One researcher, each query ``reps`` times in each mode in turn: medians in ms; and
    the CPU time per query (embedded: this process; gateway: the gateway's process and
    this one, the client), which the machine's other work disturbs less than the clock."""
    out = {}
    cpu = {"embedded": 0.0, "gateway": 0.0, "client": 0.0}
    for name, sql in queries.items():
        local, gateway = [], []
        for _ in range(reps):
            began, cpu_began = time.perf_counter(), time.process_time()
            embedded.sql(sql)
            local.append((time.perf_counter() - began) * 1000)
            cpu["embedded"] += (time.process_time() - cpu_began) * 1000
            server_began = _process_cpu_ms(gateway_pid)
            began, cpu_began = time.perf_counter(), time.process_time()
            remote.sql(sql)
            gateway.append((time.perf_counter() - began) * 1000)
            cpu["client"] += (time.process_time() - cpu_began) * 1000
            server_ended = _process_cpu_ms(gateway_pid)
            if server_began is not None and server_ended is not None:
                cpu["gateway"] += server_ended - server_began
        out[name] = {
            "embedded_ms": statistics.median(local),
            "gateway_ms": statistics.median(gateway),
        }
        out[name]["overhead_ms"] = out[name]["gateway_ms"] - out[name]["embedded_ms"]
    if gateway_pid is None:
        return out, None
    runs = reps * len(queries)
    per_query = {f"{k}_cpu_ms": v / runs for k, v in cpu.items()}
    per_query["overhead_cpu_ms"] = (cpu["gateway"] + cpu["client"] - cpu["embedded"]) / runs
    return out, per_query


def _run_all(users: int, make: Callable[[int], Any], queries: dict[str, str]) -> list[float]:
    """Every user runs every query once, all users at once; latencies in ms. Each
    connection runs :data:`WARM` first, before the clock starts."""
    conns = [make(i) for i in range(users)]
    with ThreadPoolExecutor(users) as pool:
        list(pool.map(lambda conn: conn.sql(WARM), conns))
    start = threading.Barrier(users)

    def one(i: int) -> list[float]:
        start.wait()
        out = []
        for sql in queries.values():
            began = time.perf_counter()
            conns[i].sql(sql)
            out.append((time.perf_counter() - began) * 1000)
        return out

    with ThreadPoolExecutor(users) as pool:
        times = [t for batch in pool.map(one, range(users)) for t in batch]
    for conn in conns:
        conn.close()
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p95_ms": ordered[max(0, int(0.95 * len(ordered)) - 1)],
    }


def _big(data: Path, registry: str, url: str, rows: int) -> dict[str, Any]:
    sql = BIG.format(rows=rows)
    with sde.connect(data, scope=SCOPE, registry=registry, user="r00") as conn:
        began = time.perf_counter()
        frame = conn.sql(sql)
        embedded = time.perf_counter() - began
    cells = frame.shape[0] * frame.shape[1]
    with GatewayConnection(url, "t-00", "bench") as remote:
        began = time.perf_counter()
        remote.sql(sql)
        arrow = time.perf_counter() - began
    began = time.perf_counter()
    answer = httpx.post(
        f"{url}api/projects/bench/sql",
        json={"sql": sql},
        headers={"Authorization": "token t-00"},
        timeout=600,
    )
    answer.raise_for_status()
    as_json = time.perf_counter() - began
    return {
        "rows": frame.shape[0],
        "cells": cells,
        "embedded_s": embedded,
        "gateway_arrow_s": arrow,
        "gateway_json_s": as_json,
        "json_bytes": len(answer.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--reps", type=int, default=5, help="single user: runs of each query")
    parser.add_argument("--big-rows", type=int, default=50_000)  # 22 columns: 1.1M cells
    parser.add_argument(
        "--in-process", action="store_true", help="the gateway in a thread of this process"
    )
    args = parser.parse_args()
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="sde-bench-gateway-") as tmp:
        root = Path(tmp)
        data = root / "data"
        synthesise(args.persons, 3, 11, data, progress=False)
        registry = _registry(root, args.users)
        if args.in_process:
            settings = Settings(data_dir=str(data), registry_url=registry, gateway_auth="tokens")
            server, thread, url = _serve(settings, args.users)
            pid = None

            def stop() -> None:
                server.should_exit = True
                thread.join(30)
        else:
            process, url = _serve_process(data, registry, args.users)
            pid = process.pid

            def stop() -> None:
                process.terminate()
                process.join(30)

        try:
            queries = _admitted(data, registry)

            def embedded(i: int) -> Any:
                return sde.connect(data, scope=SCOPE, registry=registry, user=f"r{i:02d}")

            def remote(i: int) -> Any:
                return GatewayConnection(url, f"t-{i:02d}", "bench", progress=io.StringIO())

            with embedded(0) as one_local, remote(0) as one_remote:
                _single(one_local, one_remote, queries, 1, pid)  # warm
                single, cpu = _single(one_local, one_remote, queries, args.reps, pid)
            load.append(os.getloadavg())
            _run_all(2, remote, queries)  # warm: the gateway's extract and code paths
            local = _summary(_run_all(args.users, embedded, queries))
            gateway = _summary(_run_all(args.users, remote, queries))
            load.append(os.getloadavg())
            big = _big(data, registry, url, args.big_rows)
        finally:
            stop()
    _write(args, queries, single, cpu, local, gateway, big, load)


def _write(
    args: argparse.Namespace,
    queries: dict[str, str],
    single: dict[str, dict[str, float]],
    cpu: dict[str, float] | None,
    local: dict[str, float],
    gateway: dict[str, float],
    big: dict[str, Any],
    load: list[tuple[float, float, float]],
) -> None:
    overheads = [q["overhead_ms"] for q in single.values()]
    one = {
        "reps": args.reps,
        "embedded_p50_ms": statistics.median(q["embedded_ms"] for q in single.values()),
        "gateway_p50_ms": statistics.median(q["gateway_ms"] for q in single.values()),
        "overhead_p50_ms": statistics.median(overheads),
        "overhead_max_ms": max(overheads),
        "cpu_per_query": cpu,
        "queries": single,
    }
    layout = "in one process" if args.in_process else "gateway in its own process"
    result = {
        "persons": args.persons,
        "users": args.users,
        "layout": layout,
        "queries": sorted(queries),
        "single_user": one,
        "embedded": local,
        "gateway": gateway,
        "ratio_p50": gateway["p50_ms"] / local["p50_ms"],
        "ratio_p95": gateway["p95_ms"] / local["p95_ms"],
        "overhead_p50_ms": gateway["p50_ms"] - local["p50_ms"],
        "big_result": big,
        "load_average": {
            "start": load[0],
            "after_single_user": load[1],
            "after_concurrent": load[2],
        },
        "machine": f"{platform.python_version()} on {platform.machine()}, "
        f"{platform.system()} ({os.cpu_count()} cores)",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway.json").write_text(json.dumps(result, indent=2) + "\n")
    loads = ", ".join(f"{a:.1f}" for a, _, _ in load)
    lines = [
        "# Gateway vs embedded",
        "",
        f"{len(queries)} research queries, {args.persons:,} persons in 3 nodes; "
        f"{result['machine']}; {layout}; load average (1 min) {loads} at the start, after "
        "the single user and after the concurrent runs.",
        "",
        f"One researcher, each query {args.reps} times per mode (medians per query):",
        "",
        "| mode | p50 over queries (ms) |",
        "|---|---|",
        f"| embedded | {one['embedded_p50_ms']:.1f} |",
        f"| gateway (Arrow) | {one['gateway_p50_ms']:.1f} |",
        f"| overhead | {one['overhead_p50_ms']:.1f} (largest {one['overhead_max_ms']:.1f}) |",
        "",
        *(
            [
                f"CPU time per query (the clock of a shared machine varies more): embedded "
                f"{cpu['embedded_cpu_ms']:.1f} ms; gateway process {cpu['gateway_cpu_ms']:.1f} "
                f"ms and client {cpu['client_cpu_ms']:.1f} ms, {cpu['overhead_cpu_ms']:.1f} ms "
                "more.",
                "",
            ]
            if cpu
            else []
        ),
        f"{args.users} researchers at once, every query once each:",
        "",
        "| mode | queries | p50 (ms) | p95 (ms) |",
        "|---|---|---|---|",
        f"| embedded | {local['n']} | {local['p50_ms']:.1f} | {local['p95_ms']:.1f} |",
        f"| gateway (Arrow) | {gateway['n']} | {gateway['p50_ms']:.1f} | {gateway['p95_ms']:.1f} |",
        f"| ratio | | {result['ratio_p50']:.2f} | {result['ratio_p95']:.2f} |",
        "",
        f"One result of {big['rows']:,} rows, {big['cells']:,} cells: embedded "
        f"{big['embedded_s']:.2f} s, gateway Arrow {big['gateway_arrow_s']:.2f} s, gateway "
        f"JSON {big['gateway_json_s']:.2f} s ({big['json_bytes'] / 1e6:.0f} MB).",
        "",
    ]
    (RESULTS / "gateway.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
