"""Failure is explicit: a node down, killed mid-query, slow, refusing or answering garbage.

The broken nodes are real: an agent process killed with SIGKILL while it runs a slow
query, a port nobody listens on, and a small HTTP server on loopback
(:mod:`tests.federation.junk`) answering junk, unsigned Arrow, Arrow of the wrong columns,
answers signed under another secret, refusals and error pages. Each fails the query with
``federation.node-unavailable`` naming the node; with ``partial=True`` the other nodes'
answer comes back with ``attrs["sde"]["missing_nodes"]``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from sde.audit import AuditLog
from sde.errors import BackendUnavailable
from sde.federation.client import NodeClient, NodeFailure
from sde.federation.coordinator import connect_federated
from sde.federation.sealing import seal
from sde.federation.signing import HEADER_NONCE, HEADER_SIGNATURE, sign_request, verify_response
from sde.federation.wire import NodeRequest
from sde.proxy.context import Limits
from sde.registry import open_registry
from sde.registry.keys import KeyStore
from sde.scope import Scope
from tests.federation.conftest import Secret
from tests.federation.junk import ENGINE_TEXT, MODES, STALE_ONCE, junk_node
from tests.proxy.corpus import outcome

SECRET = b"s" * 32


def _closed_port() -> str:
    """A loopback URL nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


REASONS = {
    "junk": "without a valid signature",
    "unsigned-arrow": "without a valid signature",
    "other-secret": "without a valid signature",
    "signed-junk": "not an Arrow table",
    "refuse": "refused the query (nodes.not-allowed",
    "crash": "failed (HTTP 500",
    "slow": "did not answer within 1 s",
}


@pytest.mark.parametrize("mode", [m for m in MODES if m not in ("wrong-columns", "wrong-types")])
def test_client_names_what_a_broken_node_did(mode: str) -> None:
    with junk_node(SECRET, mode) as node:
        client = NodeClient({"umbh": node.url, "down": _closed_port()}, SECRET)
        try:
            answers, failures = client.fan_out(
                ("umbh", "down"),
                lambda n: client.frame(n, "v1/query", b"{}", timeout_s=1.0),
                timeout_s=1.0,
            )
        finally:
            client.close()
    assert answers == {}
    assert set(failures) == {"umbh", "down"}
    assert REASONS[mode] in failures["umbh"].reason
    assert "could not be reached" in failures["down"].reason
    assert ENGINE_TEXT not in str(failures["umbh"])
    assert isinstance(failures["umbh"], NodeFailure)
    assert failures["umbh"].rule == ("nodes.not-allowed" if mode == "refuse" else None)


# -- through the coordinator ------------------------------------------------------------------

ROWS: dict[str, Any] = {
    "project": "fed-failures",
    "access": "rows",
    "tables": {
        "person": ["person_id", "year_of_birth"],
        "measurement": ["person_id", "measurement_concept_id", "value_as_number"],
    },
    "expires": "2099-12-31",
}
COUNT = "SELECT COUNT(*) AS n FROM person"


def _connect(nodes: dict[str, str], secret: Secret, registry: str, **limits: Any) -> Any:
    return connect_federated(
        ROWS, nodes, secret.value, registry, user="tester", limits=Limits(**limits)
    )


def _answer(nodes: dict[str, str], secret: Secret, registry: str, sql: str) -> int:
    with _connect(nodes, secret, registry) as conn:
        return int(conn.sql(sql)["n"].iloc[0])


@pytest.fixture(scope="module")
def two_nodes(synth_agents: dict[str, str]) -> dict[str, str]:
    return {n: synth_agents[n] for n in ("lth", "elht")}


@pytest.mark.parametrize("mode", MODES)
def test_a_broken_node_fails_the_query_naming_it(
    mode: str, two_nodes: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    expected = _answer(two_nodes, fed_secret, fed_registry, COUNT)
    with junk_node(fed_secret.value, mode) as junk:
        nodes = {**two_nodes, "umbh": junk.url}
        with _connect(nodes, fed_secret, fed_registry, timeout_s=1.0) as conn:
            with pytest.raises(BackendUnavailable) as info:
                conn.sql(COUNT)
            partial = conn.sql(COUNT, partial=True)
    err = info.value
    assert err.rule == "federation.node-unavailable"
    assert "node umbh" in err.message
    assert "lth" not in err.message
    assert ENGINE_TEXT not in err.message
    assert err.details["nodes"] == ["umbh"]
    assert partial.attrs["sde"]["missing_nodes"] == ["umbh"]
    assert int(partial["n"].iloc[0]) == expected


@pytest.mark.parametrize("mode", ["down", "junk", "refuse", "slow"])
def test_an_aggregates_project_gets_no_partial_answer(
    mode: str, two_nodes: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    """Full minus partial would be the missing node's own cells (the red team read a cell
    of 1-9 persons that way; with a refusal, the researcher even picks the node): an
    aggregates project's partial=True fails like a plain query, and says why."""
    scope = {**ROWS, "project": "fed-failures-agg", "access": "aggregates"}
    sql = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1"
    with junk_node(fed_secret.value, "junk" if mode == "down" else mode) as junk:
        url = _closed_port() if mode == "down" else junk.url
        nodes = {**two_nodes, "umbh": url}
        limits = Limits(timeout_s=1.0)
        with connect_federated(scope, nodes, fed_secret.value, fed_registry, limits=limits) as c:
            got, err = outcome(lambda: c.sql(sql, partial=True))
            whole, _ = outcome(lambda: c.sql(sql))
    assert got is None
    assert isinstance(err, BackendUnavailable)
    assert "node umbh" in err.message
    assert "An aggregates project gets no partial answers" in err.message
    assert whole is None


def test_a_request_refused_as_stale_is_signed_again_once(
    two_nodes: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    """An agent that restarted refuses what was signed before it started; the coordinator
    signs again (a new time and nonce) and asks once more."""
    expected = _answer(two_nodes, fed_secret, fed_registry, COUNT)
    with junk_node(fed_secret.value, STALE_ONCE) as junk:
        with _connect({**two_nodes, "umbh": junk.url}, fed_secret, fed_registry) as conn:
            got = conn.sql(COUNT)
        asked = junk.requests
    assert int(got["n"].iloc[0]) == expected + 7  # the junk node's count
    assert asked == 2


def test_a_node_nobody_listens_on_fails_and_no_answer_fails_even_partial(
    two_nodes: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    expected = _answer(two_nodes, fed_secret, fed_registry, COUNT)
    with _connect({**two_nodes, "umbh": _closed_port()}, fed_secret, fed_registry) as conn:
        with pytest.raises(BackendUnavailable, match="node umbh could not be reached"):
            conn.sql(COUNT)
        got = conn.sql(COUNT, partial=True)
    assert got.attrs["sde"]["missing_nodes"] == ["umbh"]
    assert int(got["n"].iloc[0]) == expected
    nowhere = {"lth": _closed_port(), "elht": _closed_port()}
    with (
        _connect(nowhere, fed_secret, fed_registry) as conn,
        pytest.raises(BackendUnavailable) as info,
    ):
        conn.sql(COUNT, partial=True)
    assert "lth" in info.value.message
    assert "elht" in info.value.message


def test_a_node_refusing_is_named_with_its_rule(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    """The project's scope names elht and umbh; "elht" is in fact lth's agent, which sees a
    request signed for node elht and refuses it (401, ``federation.wrong-node``)."""
    scope = {**ROWS, "nodes": ["elht", "umbh"]}
    nodes = {"elht": synth_agents["lth"], "umbh": synth_agents["umbh"]}
    with connect_federated(scope, nodes, fed_secret.value, fed_registry, user="t") as conn:
        with pytest.raises(BackendUnavailable) as info:
            conn.sql(COUNT)
        got = conn.sql(COUNT, partial=True)
    assert "node elht refused the query (federation.wrong-node" in info.value.message
    assert info.value.details["node_rules"] == {"elht": "federation.wrong-node"}
    assert got.attrs["sde"]["missing_nodes"] == ["elht"]


# -- a node killed while it runs a query ----------------------------------------------------

#: Seconds of CPU on each node (a four-way self-join per person).
SLOW = (
    "SELECT COUNT(*) AS n FROM measurement a "
    "JOIN measurement b ON a.person_id = b.person_id "
    "JOIN measurement c ON c.person_id = a.person_id "
    "JOIN measurement d ON d.person_id = a.person_id "
    "WHERE a.measurement_concept_id = 3004249"
)
#: The same count from per-person counts (cheap): sum over persons of a * m^3.
SLOW_CHEAP = (
    "SELECT SUM(a * m * m * m) AS n FROM (SELECT person_id, "
    "SUM(CASE WHEN measurement_concept_id = 3004249 THEN 1 ELSE 0 END) AS a, COUNT(*) AS m "
    "FROM measurement GROUP BY person_id) AS t"
)


def _cpu_seconds(pid: int) -> float:
    """CPU time used by a process and its waited-for children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _kill_while_running(agent: Any, call: Any) -> Any:
    """Run ``call`` in a thread; SIGKILL ``agent`` once it has spent half a second of CPU
    on it (so the query is running there); ``call``'s outcome."""
    with ThreadPoolExecutor(1) as pool:
        before = _cpu_seconds(agent.pid)
        future = pool.submit(call)
        for _ in range(6000):  # a bound, not a timing: the query must start within 10 min
            if _cpu_seconds(agent.pid) - before > 0.5 or future.done():
                break
            threading.Event().wait(0.1)
        assert not future.done(), "the query ended before the node was killed"
        agent.kill()  # SIGKILL
        return outcome(future.result)


@pytest.fixture
def spare_lth(synth_dir: Path, fed_secret: Secret) -> Iterator[Any]:
    """A fourth agent, lth's, to be killed."""
    from tests.federation.agents import start_agent

    agent = start_agent("lth", str(synth_dir / "lth.duckdb"), "duckdb", fed_secret.path)
    try:
        yield agent
    finally:
        agent.stop()


@pytest.mark.parametrize("partial", [False, True])
def test_a_node_killed_mid_query(
    partial: bool,
    spare_lth: Any,
    synth_agents: dict[str, str],
    fed_secret: Secret,
    fed_registry: str,
) -> None:
    others = {n: synth_agents[n] for n in ("elht", "umbh")}
    nodes = {"lth": spare_lth.url, **others}
    with _connect(nodes, fed_secret, fed_registry) as conn:
        conn.sql(COUNT)  # the node's extract is built before the slow query
        frame, err = _kill_while_running(spare_lth, lambda: conn.sql(SLOW, partial=partial))
    if not partial:
        assert frame is None
        assert isinstance(err, BackendUnavailable)
        assert err.rule == "federation.node-unavailable"
        assert err.details["nodes"] == ["lth"]
        assert "node lth" in err.message
        return
    assert err is None
    assert frame.attrs["sde"]["missing_nodes"] == ["lth"]
    assert int(frame["n"].iloc[0]) == _answer(others, fed_secret, fed_registry, SLOW_CHEAP)


# -- requests sent by hand to an agent ---------------------------------------------------------


def _request_body(secret: Secret, registry: str) -> bytes:
    scope = Scope.load(ROWS)
    key = KeyStore(open_registry(registry)).project_key(scope.project)
    request = NodeRequest(
        project=scope.project,
        scope=scope.to_dict(),
        scope_version=scope.version,
        key=seal(secret.value, scope.project, key),
        sql='SELECT COUNT(*) AS "f_a0" FROM person',
        dialect="postgres",
        kind="aggregate",
        timeout_s=30.0,
        max_rows=1000,
    )
    return request.to_bytes()


def test_replayed_stale_unsigned_and_badly_signed_requests_are_refused(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    url = synth_agents["lth"].rstrip("/") + "/v1/query"
    body = _request_body(fed_secret, fed_registry)
    headers = sign_request(fed_secret.value, body)
    with httpx.Client(trust_env=False, timeout=60) as http:
        first = http.post(url, content=body, headers=headers)
        replayed = http.post(url, content=body, headers=headers)
        unsigned = http.post(url, content=body)
        tampered = http.post(
            url,
            content=body.replace(b"COUNT(*)", b"MAX(1)  "),
            headers={**sign_request(fed_secret.value, body)},
        )
        wrong = http.post(url, content=body, headers=sign_request(b"w" * 32, body))
        stale = http.post(
            url, content=body, headers=sign_request(fed_secret.value, body, now=time.time() - 120)
        )
    assert first.status_code == 200
    verify_response(
        fed_secret.value, headers[HEADER_NONCE], first.content, first.headers.get(HEADER_SIGNATURE)
    )
    refused = {
        "federation.replayed": replayed,
        "federation.unsigned": unsigned,
        "federation.bad-signature": tampered,
        "federation.stale": stale,
    }
    for rule, response in refused.items():
        assert response.status_code == 401, rule
        assert response.json()["rule"] == rule
    assert wrong.status_code == 401
    assert wrong.json()["rule"] == "federation.bad-signature"


# -- DP: a node missing before or during the exact run ------------------------------------------

DP = {**ROWS, "project": "fed-failures-dp", "access": "dp", "dp": {"epsilon": 1.0, "delta": 1e-6}}
DP_COUNT = "SELECT COUNT(*) AS n FROM person"


def _dp(nodes: dict[str, str], secret: Secret, registry: str) -> Any:
    return connect_federated(DP, nodes, secret.value, registry, user="tester")


def test_dp_with_a_node_down_fails_before_any_spend(
    two_nodes: dict[str, str], synth_agents: dict[str, str], fed_secret: Secret, tmp_path: Path
) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    with _dp({**two_nodes, "umbh": _closed_port()}, fed_secret, registry) as conn:
        with pytest.raises(BackendUnavailable) as info:
            conn.sql_dp(DP_COUNT, epsilon=0.1)
        assert conn.budget().epsilon_spent == 0
        got = conn.sql_dp(DP_COUNT, epsilon=0.1, partial=True)
        assert conn.budget().epsilon_spent == pytest.approx(0.1)
    assert "node umbh could not be reached" in info.value.message
    assert got.attrs["sde"]["missing_nodes"] == ["umbh"]
    entry = AuditLog(open_registry(registry)).entries("fed-failures-dp")[-2]
    assert (entry.action, entry.outcome) == ("sql_dp", "ok")
    assert "umbh" in (entry.detail or "")
    # Every node up: the identical query is served from the stored (partial) release, free,
    # and says which nodes that release lacked.
    with _dp(synth_agents, fed_secret, registry) as conn:
        again = conn.sql_dp(DP_COUNT, epsilon=0.1)
        assert conn.budget().epsilon_spent == pytest.approx(0.1)
    assert again.attrs["dp"]["cached"]
    assert again["n"].tolist() == got["n"].tolist()
    assert again.attrs["sde"]["missing_nodes"] == ["umbh"]


def test_dp_with_a_node_failing_the_exact_run_is_charged_and_named(
    two_nodes: dict[str, str], fed_secret: Secret, tmp_path: Path
) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    with (
        junk_node(fed_secret.value, "signed-junk") as junk,
        _dp({**two_nodes, "umbh": junk.url}, fed_secret, registry) as conn,
    ):
        with pytest.raises(BackendUnavailable) as info:
            conn.sql_dp(DP_COUNT, epsilon=0.1)
        status = conn.budget()
    assert info.value.rule == "federation.node-unavailable"
    assert "node umbh answered with something that is not an Arrow table" in info.value.message
    assert "charged" in info.value.message
    assert status.epsilon_spent == pytest.approx(0.1)  # a failed DP run is never free
