"""Benchmark federation: aggregate queries over node agents against one pooled DuckDB.

Default mode, at ``--persons`` (default 1.8M; ``sde synth``, three nodes, seed 7): the
same ten aggregate queries (:data:`QUERIES`) through

- **pooled**: one ``sde.connect(folder, scope=...)``, every node file attached to one
  DuckDB (the baseline, in this process);
- **federated**: ``sde.connect(nodes=...)`` over three node agents (``sde serve node``,
  DuckDB, each its own process on loopback, signing with a shared secret): the query split,
  each node's part run on its own extract behind its own proxy, the parts merged here.

Each query: one warm-up run (the first also builds the project's extracts: timed and
reported apart), then the median of ``--repeat`` runs of each, in turn; the ratio
federated / pooled (goal: within 1.5x). The bytes that left each node per query are the
sizes of its signed Arrow answers (counted by the coordinator's HTTP transport), beside the
size of the merged answer as Arrow (goal: no more than the merged cells' worth).

``--north-west``: 7.4M persons over five nodes (``--persons`` to change it), one node on
PostgreSQL (a throwaway local server, loaded from its DuckDB file), one on Spark (a parquet
warehouse the agent opens with its own local Spark) and three on DuckDB: time per query
(goal: under 2 s) and bytes per node, with the pooled DuckDB over the five files beside.

Synthetic data (and the PostgreSQL/Spark copies' sources) are kept under ``--cache``
(default ``~/.cache/sde/bench-federation``) and reused: the synth takes ~190 s at 1.8M.
Writes ``benchmarks/results/federation.json`` and ``federation.md``.

    .venv/bin/python benchmarks/federation.py                     # 1.8M persons, 3 nodes
    .venv/bin/python benchmarks/federation.py --persons 100000 --repeat 3
    .venv/bin/python benchmarks/federation.py --north-west        # 7.4M, 5 nodes, 3 engines
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import sqlglot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sde  # noqa: E402
from sde.cli.nodes import NodeAgent, NodeSpec, start_agents, stop_agents, wait_healthy  # noqa: E402
from sde.federation.client import NodeClient  # noqa: E402
from sde.federation.coordinator import FederatedConnection  # noqa: E402
from sde.federation.sealing import seal  # noqa: E402
from sde.federation.signing import create_secret, read_secret  # noqa: E402
from sde.federation.wire import frame_to_arrow  # noqa: E402
from sde.omop.synth import synthesise  # noqa: E402
from sde.proxy.context import Limits  # noqa: E402
from sde.registry import open_registry  # noqa: E402
from sde.registry.keys import KeyStore  # noqa: E402
from sde.scope import Scope  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SEED = 7
TABLES = (
    "person",
    "condition_occurrence",
    "measurement",
    "drug_exposure",
    "visit_occurrence",
    "concept",
    "concept_ancestor",
)
SCOPE: dict[str, Any] = {
    "project": "bench-federation",
    "access": "rows",
    "tables": dict.fromkeys(TABLES, "*"),
    "cohort": {"any_condition": [320128]},
    "period": {"start": "2015-01-01", "end": "2024-12-31"},
    "expires": "2099-12-31",
}
#: Ten aggregate queries a federation must answer exactly (COUNT, COUNT DISTINCT person,
#: SUM, AVG, MIN, MAX, variance, GROUP BY, HAVING, joins inside a node).
QUERIES: dict[str, str] = {
    "persons-by-gender": "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1",
    "birth-decade": (
        "SELECT (year_of_birth / 10) * 10 AS decade, COUNT(*) AS n FROM person GROUP BY 1"
    ),
    "birth-range": "SELECT MIN(year_of_birth) AS first, MAX(year_of_birth) AS last FROM person",
    "conditions-named": (
        "SELECT c.concept_name, COUNT(DISTINCT co.person_id) AS persons FROM "
        "condition_occurrence co JOIN concept c ON c.concept_id = co.condition_concept_id "
        "GROUP BY 1"
    ),
    "diabetes-comorbid": (
        "SELECT COUNT(DISTINCT co.person_id) AS n FROM condition_occurrence co JOIN "
        "concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id WHERE "
        "ca.ancestor_concept_id = 201826"
    ),
    "sbp-by-gender": (
        "SELECT p.gender_concept_id, AVG(m.value_as_number) AS mean_sbp, COUNT(*) AS n "
        "FROM measurement m JOIN person p ON p.person_id = m.person_id WHERE "
        "m.measurement_concept_id = 3004249 GROUP BY 1"
    ),
    "sbp-spread": (
        "SELECT STDDEV_SAMP(value_as_number) AS sd, VAR_SAMP(value_as_number) AS var, "
        "SUM(value_as_number) AS total FROM measurement WHERE measurement_concept_id = 3004249"
    ),
    "uncontrolled": (
        "SELECT COUNT(DISTINCT person_id) AS n FROM measurement WHERE "
        "measurement_concept_id = 3004249 AND value_as_number >= 160"
    ),
    "treated-common": (
        "SELECT drug_concept_id, COUNT(DISTINCT person_id) AS persons FROM drug_exposure "
        "GROUP BY 1 HAVING COUNT(DISTINCT person_id) >= 100"
    ),
    "visits-per-year": (
        "SELECT EXTRACT(YEAR FROM visit_start_date) AS y, visit_concept_id, COUNT(*) AS n "
        "FROM visit_occurrence GROUP BY 1, 2"
    ),
}


# -- data ---------------------------------------------------------------------------------


def synth_data(cache: Path, persons: int, nodes: int) -> Path:
    """``cache/synth-<persons>-<nodes>``: made once (progress shown), then reused."""
    folder = cache / f"synth-{persons}-{nodes}"
    if (folder / "manifest.json").exists():
        print(f"reusing {folder}", flush=True)
        return folder
    print(f"synthesising {persons:,} persons over {nodes} nodes into {folder} ...", flush=True)
    started = time.perf_counter()
    synthesise(persons, nodes, SEED, folder, progress=True)
    print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


def node_names(folder: Path) -> list[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [str(node["name"]) for node in manifest["nodes"]]


# -- measuring ----------------------------------------------------------------------------


class CountingTransport(httpx.HTTPTransport):
    """The coordinator's HTTP transport, counting the bytes of each node's answers."""

    def __init__(self, ports: dict[int, str]) -> None:
        super().__init__()
        self.ports = ports
        self.bytes: dict[str, int] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        body = response.read()
        if request.url.path.endswith("v1/query"):
            node = self.ports.get(request.url.port or 0, str(request.url.port))
            self.bytes[node] = self.bytes.get(node, 0) + len(body)
        return response


def federated_connection(
    agents: list[NodeAgent], secret: bytes, registry: str, counter: CountingTransport
) -> FederatedConnection:
    """The coordinator over ``agents``, its transport counting bytes (as
    ``connect_federated`` builds it, with our transport)."""
    scope = Scope.load(SCOPE)
    engine = open_registry(registry)
    key = KeyStore(engine).project_key(scope.project)
    urls = {agent.name: agent.url for agent in agents}
    return FederatedConnection(
        scope,
        NodeClient(urls, secret, transport=counter),
        engine,
        seal(secret, scope.project, key),
        user="bench",
        nodes=tuple(urls),
        limits=Limits(timeout_s=900),
    )


def timed_ms(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = run()
    return (time.perf_counter() - started) * 1000, out


def measure(
    pooled: Any, federated: FederatedConnection, counter: CountingTransport, repeat: int
) -> list[dict[str, Any]]:
    """Every query: warm-up (timed), then ``repeat`` runs of each in turn; medians, ratio,
    bytes per node and the merged answer's size."""
    rows: list[dict[str, Any]] = []
    for name, sql in QUERIES.items():
        first_pooled, _ = timed_ms(lambda sql=sql: pooled.sql(sql))
        first_fed, _ = timed_ms(lambda sql=sql: federated.sql(sql))
        times: dict[str, list[float]] = {"pooled": [], "federated": []}
        merged = None
        for _ in range(repeat):
            times["pooled"].append(timed_ms(lambda sql=sql: pooled.sql(sql))[0])
            counter.bytes = {}
            elapsed, merged = timed_ms(lambda sql=sql: federated.sql(sql))
            times["federated"].append(elapsed)
        pooled_ms = statistics.median(times["pooled"])
        fed_ms = statistics.median(times["federated"])
        merged_bytes = len(frame_to_arrow(merged)) if merged is not None else 0
        row = {
            "query": name,
            "pooled_ms": round(pooled_ms, 1),
            "federated_ms": round(fed_ms, 1),
            "ratio": round(fed_ms / pooled_ms, 2),
            "first_pooled_ms": round(first_pooled, 1),
            "first_federated_ms": round(first_fed, 1),
            "rows": 0 if merged is None else len(merged),
            "merged_bytes": merged_bytes,
            "node_bytes": dict(counter.bytes),
        }
        print(
            f"  {name:<18} pooled {pooled_ms:8.1f} ms  federated {fed_ms:8.1f} ms  "
            f"x{row['ratio']:<5}  bytes per node {row['node_bytes']}  merged {merged_bytes}",
            flush=True,
        )
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pooled = sum(r["pooled_ms"] for r in rows)
    fed = sum(r["federated_ms"] for r in rows)
    worst = max(max(r["node_bytes"].values(), default=0) / max(r["merged_bytes"], 1) for r in rows)
    return {
        "total_pooled_ms": round(pooled, 1),
        "total_federated_ms": round(fed, 1),
        "ratio": round(fed / pooled, 2),
        "median_query_ratio": round(statistics.median(r["ratio"] for r in rows), 2),
        "slowest_federated_ms": max(r["federated_ms"] for r in rows),
        "largest_node_bytes_over_merged": round(worst, 2),
    }


# -- the two modes --------------------------------------------------------------------------


@contextlib.contextmanager
def running_agents(
    specs: dict[str, NodeSpec], secret_file: Path, logs: Path
) -> Iterator[list[NodeAgent]]:
    print(f"starting {len(specs)} node agents ({', '.join(specs)}) ...", flush=True)
    started = time.perf_counter()
    agents = start_agents(specs, secret_file, logs)
    try:
        wait_healthy(agents, timeout_s=600)
        print(f"  healthy in {time.perf_counter() - started:.1f} s (logs: {logs})", flush=True)
        yield agents
    finally:
        stop_agents(agents, timeout_s=60)


def run(
    folder: Path, specs: dict[str, NodeSpec], work: Path, repeat: int
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Pooled and federated over the same data; the rows and the one-off costs."""
    secret_file = work / "node.secret"
    if not secret_file.exists():
        create_secret(secret_file)
    registry = f"sqlite:///{work / 'registry.sqlite'}"
    started = time.perf_counter()
    pooled = sde.connect(
        folder, scope=SCOPE, registry=registry, cache_dir=work / "pooled-extracts", user="bench"
    )
    costs = {"pooled_connect_s": round(time.perf_counter() - started, 1)}
    print(f"pooled connection (extract built or reused) in {costs['pooled_connect_s']} s")
    with running_agents(specs, secret_file, work / "agents") as agents:
        ports = {agent.port: agent.name for agent in agents}
        counter = CountingTransport(ports)
        federated = federated_connection(agents, read_secret(secret_file), registry, counter)
        try:
            rows = measure(pooled, federated, counter, repeat)
        finally:
            federated.close()
            pooled.close()
    return rows, costs


def three_nodes(args: argparse.Namespace) -> dict[str, Any]:
    folder = synth_data(args.cache, args.persons, 3)
    specs = {name: NodeSpec(folder / f"{name}.duckdb") for name in node_names(folder)}
    work = workspace(args.cache, f"three-{args.persons}")
    rows, costs = run(folder, specs, work, args.repeat)
    return {"mode": "three-nodes", "persons": args.persons, "nodes": specs_shown(specs),
            **costs, "queries": rows, **summary(rows)}  # fmt: skip


def north_west(args: argparse.Namespace) -> dict[str, Any]:
    """Five nodes: the second on PostgreSQL, the third on Spark, the rest on DuckDB."""
    from sde.backends.load import load_node
    from sde.backends.pg_local import LocalPostgres
    from sde.backends.postgresql import PostgresBackend
    from sde.backends.spark import SparkBackend, local_session

    persons = args.persons if args.persons_given else 7_400_000
    folder = synth_data(args.cache, persons, 5)
    names = node_names(folder)
    work = workspace(args.cache, f"north-west-{persons}")
    specs = {name: NodeSpec(folder / f"{name}.duckdb") for name in names}
    server = LocalPostgres.start()
    try:
        pg_node, spark_node = names[1], names[2]
        print(f"loading {pg_node} into PostgreSQL ...", flush=True)
        started = time.perf_counter()
        dsn = server.create_database(f"bench_{pg_node}")
        backend = PostgresBackend(dsn, schema=pg_node)
        load_node(folder / f"{pg_node}.duckdb", backend, progress=True)
        backend.close()
        loads = {"postgresql_load_s": round(time.perf_counter() - started, 1)}
        warehouse = work / "warehouse"
        if not (warehouse / spark_node).is_dir():  # written once, kept in the cache
            print(f"loading {spark_node} into a Spark warehouse ...", flush=True)
            started = time.perf_counter()
            session = local_session()
            load_node(
                folder / f"{spark_node}.duckdb",
                SparkBackend(warehouse, spark_node, session=session, create=True),
                progress=True,
            )
            session.stop()
            loads["spark_load_s"] = round(time.perf_counter() - started, 1)
        specs[pg_node] = NodeSpec(dsn, "postgresql", pg_node)
        specs[spark_node] = NodeSpec(warehouse, "spark")
        rows, costs = run(folder, specs, work, args.repeat)
    finally:
        server.stop()
    return {"mode": "north-west", "persons": persons, "nodes": specs_shown(specs),
            **loads, **costs, "queries": rows, **summary(rows)}  # fmt: skip


def workspace(cache: Path, name: str) -> Path:
    """A run's registry, secret, pooled extracts and agents' logs, kept between runs (the
    same project key, so every extract, pooled and per node, is built once and reused)."""
    work = cache / name
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    return work


def specs_shown(specs: dict[str, NodeSpec]) -> dict[str, str]:
    return {name: spec.backend for name, spec in specs.items()}


# -- results --------------------------------------------------------------------------------


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "federation.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Federation benchmark",
        "",
        f"{results['machine']}. One run of `.venv/bin/python benchmarks/federation.py` per "
        "mode; the machine's 2 cores were shared with other work (the load average at each "
        "run's start is given).",
    ]
    for run_ in results["runs"]:
        lines += table(run_)
    (RESULTS / "federation.md").write_text("\n".join(lines) + "\n")


def table(run_: dict[str, Any]) -> list[str]:
    nodes = ", ".join(f"{n} ({b})" for n, b in run_["nodes"].items())
    earlier = f" ({run_['earlier']})" if run_.get("earlier") else ""
    if run_["mode"] == "north-west" and run_["persons"] != 7_400_000:
        earlier += " (a smaller population than the goal's 7.4M: --persons)"
    lines = [
        "",
        f"## {run_['mode']}: {run_['persons']:,} persons over {nodes}{earlier}",
        "",
        f"Load average {run_.get('load', 'not recorded')}. Ten aggregate queries, medians of "
        f"the runs after a warm-up: federated total "
        f"{run_['total_federated_ms']} ms against pooled {run_['total_pooled_ms']} ms, "
        f"**{run_['ratio']}x** (median per query {run_['median_query_ratio']}x; goal within "
        f"1.5x); slowest federated query {run_['slowest_federated_ms']} ms (North West goal: "
        f"under 2 s). Largest bytes one node sent / the merged answer's bytes: "
        f"{run_['largest_node_bytes_over_merged']}. Pooled connection "
        f"{run_['pooled_connect_s']} s (its extract).",
        "",
        "| query | pooled ms | federated ms | ratio | first run pooled / federated ms "
        "| rows | merged answer bytes | bytes per node |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in run_["queries"]:
        per_node = ", ".join(f"{n} {b}" for n, b in r["node_bytes"].items())
        lines.append(
            f"| {r['query']} | {r['pooled_ms']} | {r['federated_ms']} | {r['ratio']} | "
            f"{r['first_pooled_ms']} / {r['first_federated_ms']} | {r['rows']} | "
            f"{r['merged_bytes']} | {per_node} |"
        )
    return lines


def earlier_runs(modes: set[str]) -> list[dict[str, Any]]:
    """A mode not run this time keeps its last published figures, marked as earlier."""
    path = RESULTS / "federation.json"
    if not path.exists():
        return []
    previous = json.loads(path.read_text())
    return [
        {**run_, "earlier": run_.get("earlier") or "earlier run"}
        for run_ in previous.get("runs", [])
        if run_["mode"] not in modes
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--persons", type=int, default=None, help="default 1.8M (7.4M NW)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--north-west", action="store_true", help="7.4M over five nodes")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "sde" / "bench-federation"
    )
    args = parser.parse_args()
    args.persons_given = args.persons is not None
    args.persons = args.persons or 1_800_000
    args.cache.mkdir(parents=True, exist_ok=True)
    mode = "north-west" if args.north_west else "three-nodes"
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__}, sqlglot {sqlglot.__version__}",
    }
    load = ", ".join(f"{a:.1f}" for a in os.getloadavg())
    run_ = north_west(args) if args.north_west else three_nodes(args)
    run_["load"] = load
    results["runs"] = [run_, *earlier_runs({mode})]
    write(results)
    print("\n".join(table(run_)))


if __name__ == "__main__":
    main()
