"""Shared project extracts (sde/proxy/barrier/cache.py) on real engines.

Connections of one process that need the same extract share one: built once, even when
they open together; closing one leaves the others working, the last close (or an evict)
closes it. Many threads query one shared extract at once and get the answers a single
connection gets, on DuckDB (a cursor per query), PostgreSQL (a pool of role
connections) and Spark. A failed build raises for every caller waiting for it and is
not cached; another scope version is another extract.
"""

from __future__ import annotations

import gc
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import sde
from sde.connection import Connection
from sde.errors import AccessDenied, ConfigurationError
from sde.proxy.barrier import Extract
from sde.proxy.barrier.cache import ExtractCache, ExtractKey, Lease
from sde.proxy.barrier.duckdb import DuckDBExtract
from sde.proxy.barrier.plan import ExtractPlan
from sde.scope import Scope
from tests.fixtures.proxy import SentinelNodes, scope_with
from tests.proxy.sentinel_data import SCOPE

THREADS = 8

QUERIES = (
    "SELECT COUNT(*) AS n FROM person",
    "SELECT COUNT(*) AS n FROM measurement",
    "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY 1",
    "SELECT SUM(value_as_number) AS s FROM measurement",
    "SELECT person_id, year_of_birth FROM person ORDER BY person_id",
    "SELECT c.person_id, COUNT(*) AS n FROM condition_occurrence c "
    "JOIN person p ON p.person_id = c.person_id GROUP BY 1 ORDER BY 1",
)


def _extract(conn: Connection) -> Extract:
    lease = conn._extract
    assert isinstance(lease, Lease)
    return lease.extract


def _is_closed(extract: Any) -> bool:
    backend = extract.backend
    if backend.name == "duckdb":
        return bool(backend._closed)
    if backend.name == "postgresql":
        return bool(backend._con.closed and extract._pool._closed)
    return backend._session is None


def _run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` in ``count`` threads started together; results (or exceptions)."""
    start = threading.Barrier(count)

    def one(i: int) -> Any:
        start.wait()
        try:
            return work(i)
        except Exception as err:
            return err

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def _wait_for(condition: Callable[[], bool]) -> None:
    """Until ``condition()`` holds (a step of the test, not a measurement)."""
    for _ in range(3000):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail("the other threads never reached the build")


# -- DuckDB -------------------------------------------------------------------------------


def test_two_connections_share_one_extract(sentinel_nodes: SentinelNodes) -> None:
    cache = ExtractCache()
    a = sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache)
    b = sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache)
    extract = _extract(a)
    assert _extract(b) is extract
    assert cache.builds == 1
    assert len(cache) == 1
    first = a.sql(QUERIES[0])
    a.close()
    assert not _is_closed(extract)
    assert b.sql(QUERIES[0]).equals(first)  # the other connection keeps working
    with pytest.raises(AccessDenied):
        a.sql(QUERIES[0])
    b.close()
    b.close()  # safe twice: released once
    assert _is_closed(extract)
    assert len(cache) == 0
    with sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache) as c:
        assert c.sql(QUERIES[0]).equals(first)
    assert cache.builds == 2  # nothing was shared any more: built again


def test_connect_shares_by_default_and_opts_out(sentinel_nodes: SentinelNodes) -> None:
    with (
        sde.connect(sentinel_nodes.folder, scope=SCOPE) as a,
        sde.connect(sentinel_nodes.folder, scope=SCOPE) as b,
    ):
        assert _extract(a) is _extract(b)
    with sde.connect(sentinel_nodes.folder, scope=SCOPE, shared=False) as own:
        assert isinstance(own._extract, DuckDBExtract)
        private = own._extract
    assert _is_closed(private)


def test_scope_versions_get_their_own_extracts(sentinel_nodes: SentinelNodes) -> None:
    cache = ExtractCache()
    narrower = scope_with(period={"start": "2018-01-01", "end": "2024-12-31"})
    with (
        sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache) as a,
        sde.connect(sentinel_nodes.folder, scope=narrower, cache=cache) as b,
    ):
        assert _extract(a) is not _extract(b)
        assert cache.builds == 2
        assert {k.scope_version for k in cache.shared_keys()} == {a.scope.version, b.scope.version}
        count = "SELECT COUNT(*) AS n FROM measurement"
        assert b.sql(count).n[0] < a.sql(count).n[0]


def test_node_file_change_is_a_new_extract(sentinel_nodes: SentinelNodes, tmp_path: Path) -> None:
    for name in ("lth.duckdb", "elht.duckdb"):
        shutil.copyfile(sentinel_nodes.folder / name, tmp_path / name)
    cache = ExtractCache()
    registry = sentinel_nodes.registry
    with sde.connect(tmp_path, scope=SCOPE, cache=cache, registry=registry) as a:
        with duckdb.connect(str(tmp_path / "lth.duckdb")) as raw:
            raw.execute("DELETE FROM measurement WHERE measurement_id % 2 = 0")
        with sde.connect(tmp_path, scope=SCOPE, cache=cache, registry=registry) as b:
            assert _extract(a) is not _extract(b)
            count = "SELECT COUNT(*) AS n FROM measurement"
            assert b.sql(count).n[0] < a.sql(count).n[0]


def test_concurrent_first_open_builds_once(sentinel_nodes: SentinelNodes) -> None:
    cache = ExtractCache()
    conns = _run_together(
        THREADS, lambda _: sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache)
    )
    try:
        assert all(isinstance(c, Connection) for c in conns)
        assert len({id(_extract(c)) for c in conns}) == 1
        assert cache.builds == 1
    finally:
        for conn in conns:
            conn.close()
    assert _is_closed(_extract(conns[0]))


def _hammer(
    open_conn: Callable[[], Connection], rounds: int, queries: tuple[str, ...] = QUERIES
) -> Extract:
    """THREADS connections on one shared extract, each querying it ``rounds`` times at
    once with the others: every answer is the one a lone connection gets."""
    with open_conn() as lone:
        expected = [lone.sql(q) for q in queries]
        conns = [open_conn() for _ in range(THREADS)]
    try:
        shared = _extract(conns[0])
        assert all(_extract(c) is shared for c in conns)

        def work(i: int) -> int:
            good = 0
            for r in range(rounds):
                for k in range(len(queries)):
                    q = (k + i + r) % len(queries)  # the threads ask different things
                    got = conns[i].sql(queries[q])
                    pd.testing.assert_frame_equal(got, expected[q])
                    good += 1
            return good

        results = _run_together(THREADS, work)
        assert results == [rounds * len(queries)] * THREADS
    finally:
        for conn in conns:
            conn.close()
    return shared


def test_threads_query_one_duckdb_extract(sentinel_nodes: SentinelNodes) -> None:
    cache = ExtractCache()
    _hammer(lambda: sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache), rounds=5)
    assert cache.builds == 1


def _broken_node(sentinel_nodes: SentinelNodes, folder: Path) -> Path:
    """A copy of node lth without its opt-out table: every build over it fails."""
    node = folder / "lth.duckdb"
    shutil.copyfile(sentinel_nodes.folder / "lth.duckdb", node)
    with duckdb.connect(str(node)) as con:
        con.execute("DROP TABLE sde_opt_out")
    return node


def test_failed_build_raises_for_every_waiter_and_is_retried(
    sentinel_nodes: SentinelNodes, tmp_path: Path
) -> None:
    scope = Scope.load(scope_with(nodes=["lth"]))
    plan = ExtractPlan.of(scope)
    key = sentinel_nodes.key(scope.project)
    broken = _broken_node(sentinel_nodes, tmp_path)
    cache = ExtractCache()
    ident = ExtractKey.of(("test", "lth"), scope, key)
    go = threading.Event()
    calls: list[int] = []

    def failing() -> Extract:
        calls.append(1)
        go.wait()
        return DuckDBExtract({"lth": broken}, plan, key)

    def waiting_for_all() -> bool:
        entries = cache._entries
        return ident in entries and entries[ident].refs == THREADS

    threading.Thread(target=lambda: (_wait_for(waiting_for_all), go.set()), daemon=True).start()
    outcomes = _run_together(THREADS, lambda _: cache.lease(ident, failing))
    assert len(calls) == 1  # one build; the others waited for it
    assert all(isinstance(o, ConfigurationError) for o in outcomes)
    assert {o.rule for o in outcomes} == {"nodes.incomplete"}
    assert cache.failures == 1
    assert cache.builds == 0
    assert len(cache) == 0  # not cached

    good = {"lth": sentinel_nodes.folder / "lth.duckdb"}
    lease = cache.lease(ident, lambda: DuckDBExtract(good, plan, key))
    try:
        assert cache.builds == 1
        assert lease.run("SELECT COUNT(*) AS n FROM person", timeout_s=10, max_rows=10).n[0] > 0
    finally:
        lease.close()


def test_failed_connect_is_not_cached(sentinel_nodes: SentinelNodes, tmp_path: Path) -> None:
    _broken_node(sentinel_nodes, tmp_path)
    cache = ExtractCache()
    scope = scope_with(nodes=["lth"])
    for _ in range(2):  # the second open builds again, and fails again
        with pytest.raises(ConfigurationError) as info:
            sde.connect(tmp_path, scope=scope, cache=cache, registry=sentinel_nodes.registry)
        assert info.value.rule == "nodes.incomplete"
    assert cache.failures == 2
    assert len(cache) == 0


def test_evict_closes_after_running_queries(sentinel_nodes: SentinelNodes) -> None:
    cache = ExtractCache()
    conn = sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache)
    extract = _extract(conn)
    assert cache.evict_project(SCOPE["project"]) == 1
    assert _is_closed(extract)
    with pytest.raises(AccessDenied) as info:
        conn.sql(QUERIES[0])
    assert info.value.rule == "extract.closed"
    conn.close()  # releasing an evicted extract closes nothing twice
    with sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache) as again:
        assert again.sql(QUERIES[0]).n[0] > 0
    assert cache.builds == 2


def test_cache_is_bounded(sentinel_nodes: SentinelNodes) -> None:
    cache = ExtractCache(max_entries=1)
    other = scope_with(project="bounded-other")
    a = sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache)
    b = sde.connect(sentinel_nodes.folder, scope=other, cache=cache)
    assert [k.project for k in cache.shared_keys()] == ["bounded-other"]
    pushed_out = _extract(a)
    assert not _is_closed(pushed_out)  # still in use: open until its last lease goes
    assert a.sql(QUERIES[0]).n[0] > 0
    with sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache) as c:
        assert _extract(c) is not pushed_out  # no longer shared: built again
    a.close()
    assert _is_closed(pushed_out)
    b.close()
    assert cache.builds == 3


def test_forgotten_connection_releases_its_lease(sentinel_nodes: SentinelNodes) -> None:
    cache = ExtractCache()

    def forget() -> Extract:
        conn = sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache)
        return _extract(conn)  # the connection is never closed

    extract = forget()
    gc.collect()
    assert cache.shared_keys() == []  # the next call to the cache releases it
    assert _is_closed(extract)


def test_refresh_builds_a_new_extract(sentinel_nodes: SentinelNodes) -> None:
    cache = ExtractCache()
    with sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache) as a:
        with sde.connect(sentinel_nodes.folder, scope=SCOPE, cache=cache, refresh=True) as b:
            assert _extract(a) is not _extract(b)
            assert a.sql(QUERIES[0]).equals(b.sql(QUERIES[0]))
        assert cache.builds == 2


# -- PostgreSQL and Spark ----------------------------------------------------------------


@pytest.fixture
def pg_open(sentinel_nodes: SentinelNodes, pg_sentinel_dsn: str) -> Iterator[Any]:
    cache = ExtractCache()

    def open_conn() -> Connection:
        return sde.connect(
            pg_sentinel_dsn, scope=SCOPE, schema="lth", registry=sentinel_nodes.registry,
            cache=cache,
        )  # fmt: skip

    yield open_conn, cache
    cache.clear()


@pytest.mark.postgres
def test_postgres_connections_share_one_extract(pg_open: Any) -> None:
    open_conn, cache = pg_open
    a, b = open_conn(), open_conn()
    extract = _extract(a)
    assert _extract(b) is extract
    first = a.sql(QUERIES[1])
    a.close()
    assert b.sql(QUERIES[1]).equals(first)
    b.close()
    assert _is_closed(extract)
    assert cache.builds == 1


@pytest.mark.postgres
def test_postgres_pool_opens_a_connection_per_running_query(pg_open: Any) -> None:
    open_conn, _ = pg_open
    with open_conn() as conn:
        extract: Any = _extract(conn)
        with extract.serving() as held:  # the first connection is busy
            assert held is extract.backend
            answer = _run_together(1, lambda _: conn.sql(QUERIES[0]))[0]
            assert isinstance(answer, pd.DataFrame)
            assert extract._pool._open == 2
        assert answer.n[0] > 0


@pytest.mark.postgres
def test_threads_query_one_postgres_extract(pg_open: Any) -> None:
    open_conn, cache = pg_open
    _hammer(open_conn, rounds=3)
    assert cache.builds == 1


@pytest.mark.spark
def test_threads_query_one_spark_extract(
    sentinel_nodes: SentinelNodes, spark: Any, spark_sentinel_warehouse: Path, spark_scoped: Any
) -> None:
    """On the process's cache, where the run's ``spark_scoped`` connection holds the same
    extract (a Spark build takes tens of seconds here): the threads lease it."""

    def open_conn() -> Connection:
        return sde.connect(
            spark_sentinel_warehouse, scope=SCOPE, spark=spark, node="lth",
            registry=sentinel_nodes.registry,
        )  # fmt: skip

    # Two queries a thread: a Spark session runs them one at a time anyway.
    shared = _hammer(open_conn, rounds=1, queries=(QUERIES[2], QUERIES[4]))
    assert _extract(spark_scoped) is shared
    assert not _is_closed(shared)  # spark_scoped still holds it
