"""Red-team tests of the federation layer, written from outside (an attacker's view).

Each open hole is a test marked ``xfail(strict=True, reason="open: ...")``: it asserts the
safe behaviour, so it fails today and passes (turning the xfail into an error that says
"remove the mark") once the owner fixes the hole. Attacks that did not work are ordinary
passing tests, kept as regression guards.

Agents: the session's three DuckDB agents (``synth_agents``, over ``synth_dir``); the
signing tests that need a fresh agent build it in-process (``create_app`` and Starlette's
test client), answering ``/v1/explain`` only, which reads no data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from sde.errors import SDEError
from sde.federation.coordinator import FederatedConnection, connect_federated
from sde.federation.sealing import seal
from sde.federation.signing import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIME,
    sign_request,
    verify_response,
)
from sde.federation.wire import NodeRequest, arrow_to_frame
from sde.proxy.context import Limits
from sde.registry import open_registry
from sde.registry.keys import KeyStore
from sde.scope import Scope
from tests.federation.conftest import Secret

TABLES: dict[str, Any] = {
    "person": ["person_id", "gender_concept_id", "year_of_birth", "month_of_birth"],
    "condition_occurrence": ["person_id", "condition_concept_id", "condition_start_date"],
    "measurement": ["person_id", "measurement_concept_id", "value_as_number"],
}
ROWS = {"project": "rt-rows", "access": "rows", "tables": TABLES, "expires": "2099-12-31"}
AGGREGATES = {**ROWS, "project": "rt-aggregates", "access": "aggregates"}
DP = {**ROWS, "project": "rt-dp", "access": "dp", "dp": {"epsilon": 3.0, "delta": 1e-6}}


def _connect(
    scope: dict[str, Any], agents: dict[str, str], secret: Secret, registry: str, **kw: Any
) -> FederatedConnection:
    return connect_federated(scope, agents, secret.value, registry, user="redteam", **kw)


@pytest.fixture(scope="module")
def rows_fed(synth_agents, fed_secret, fed_registry) -> Iterator[FederatedConnection]:  # type: ignore[no-untyped-def]
    with _connect(ROWS, synth_agents, fed_secret, fed_registry) as conn:
        yield conn


@pytest.fixture(scope="module")
def persons(rows_fed: FederatedConnection) -> pd.DataFrame:
    """Ground truth for the tests (a rows project's legitimate view): every person with
    the node that holds them."""
    return rows_fed.sql(
        "SELECT p.person_id, p.year_of_birth, p.month_of_birth, p.gender_concept_id FROM person p"
    )


@pytest.fixture(scope="module")
def agg_fed(synth_agents, fed_secret, fed_registry) -> Iterator[FederatedConnection]:  # type: ignore[no-untyped-def]
    with _connect(AGGREGATES, synth_agents, fed_secret, fed_registry) as conn:
        yield conn


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        frame = call()
    except SDEError as err:
        return ("refused", err.rule)
    return ("answered", frame)


def _boundary(persons: pd.DataFrame) -> tuple[str, int, int, pd.Series]:
    """A year Y where one node (the biggest) holds strictly more persons born <= Y than the
    others, that node, its count there, and one person of it born <= Y whose (year,
    month, sex) no other person of that node born <= Y shares."""
    for year in range(1935, 1960):
        older = persons[persons.year_of_birth <= year]
        counts = older.groupby("node").size().sort_values(ascending=False)
        if len(counts) < 2 or counts.iloc[0] < 50 or counts.iloc[0] <= counts.iloc[1] + 2:
            continue
        node = str(counts.index[0])
        mine = older[older.node == node]
        attrs = ["year_of_birth", "month_of_birth", "gender_concept_id"]
        unique = mine[~mine.duplicated(attrs, keep=False)]
        if len(unique):
            return node, year, int(counts.iloc[0]), unique.iloc[0]
    raise AssertionError("no boundary year in the synthetic population")


# -- hole 1: the node's group cap is a membership oracle --------------------------------------


def test_held_node_group_cap_does_not_count_small_groups(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str, persons: pd.DataFrame
) -> None:
    """HELD now (OPEN at HEAD 1ddfdd0, where this test failed as a strict xfail; closed by
    the owner's two-round rule in the working tree: a node sends and caps its large groups
    only). The attack: ``federation.too-many-groups`` was decided on the node's
    part *before* node-level disclosure control, so its groups under the threshold count.
    ``GROUP BY p.person_id`` makes every group one person (all suppressed: the pooled
    connection answers an empty frame, whatever the data). Yet the node refuses when it
    has more persons matching the WHERE than the row cap, and the coordinator's error
    names the node. Two queries that differ by one person (excluded by its year, month
    and sex) get different outcomes: one says "node lth refused ... too-many-groups", the
    other an empty frame. That is a one-bit oracle "does a person with attributes A exist
    at node X" (and, by bisection on the WHERE, exact per-node counts), bypassing the
    threshold. The pooled path cuts *after* suppression (sde.proxy.rules.threshold says
    the number of removed groups must never show). Default row cap 1,000,000: reachable
    on the North West nodes of ~1.5M persons; here a deployment with a small cap.
    Fix: count (and cap) only the groups the node would send unflagged, or flag-and-drop
    small groups before the cap; never name a data-dependent refusal's node."""
    node, year, count, target = _boundary(persons)
    limits = Limits(row_cap=count - 2)  # the node may send count - 1 groups
    with _connect(AGGREGATES, synth_agents, fed_secret, fed_registry, limits=limits) as conn:
        base = f"SELECT COUNT(*) AS n FROM person p WHERE p.year_of_birth <= {year}"
        with_target = base + " GROUP BY p.person_id"
        without_target = (
            base + f" AND NOT (p.year_of_birth = {int(target.year_of_birth)} AND "
            f"p.month_of_birth = {int(target.month_of_birth)} AND "
            f"p.gender_concept_id = {int(target.gender_concept_id)}) GROUP BY p.person_id"
        )
        a = _outcome(lambda: conn.sql(with_target))
        b = _outcome(lambda: conn.sql(without_target))
    # What a researcher sees must not depend on one person: both empty, or both refused
    # for a reason that does not depend on the data.
    assert a[0] == b[0], f"one person at {node} flips the outcome: {a[0]} vs {b[0]}"


def test_held_partial_with_a_node_failed_at_will_does_not_read_its_cells(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str, persons: pd.DataFrame
) -> None:
    """HELD (was open at commit a1e04d9; fixed by the owner's partial rule while this was
    written): the researcher chooses which node fails. A second GROUP BY
    key ``CASE WHEN p.year_of_birth <= Y THEN p.person_id ELSE 0 END`` adds one
    (suppressed) group per older person; the node with the most of them passes the row
    cap and refuses (``federation.too-many-groups``), the others answer. With
    ``partial=True`` the coordinator merges the others' cells (``missing_nodes`` names
    the refusing one). The same question without the trick is answered by all three.
    Subtracting gives the refusing node's own cell counts: per-node answers on demand,
    which is what the stated cross-node rule exists to prevent (combined with ordinary
    differencing it reads a cell that is small at that node). Fix: a data-dependent node
    refusal must not make a partial answer (partial=True for down/unreachable nodes only),
    or the group cap must not depend on suppressed groups (hole 1)."""
    node, year, count, _ = _boundary(persons)
    limits = Limits(row_cap=count - 2)
    key = f"CASE WHEN p.year_of_birth <= {year} THEN p.person_id ELSE 0 END"
    sql_all = (
        f"SELECT p.gender_concept_id, COUNT(*) AS n FROM person p "
        f"WHERE p.year_of_birth > {year} GROUP BY p.gender_concept_id"
    )
    sql_trick = (
        f"SELECT p.gender_concept_id, COUNT(*) AS n FROM person p "
        f"GROUP BY p.gender_concept_id, {key}"
    )
    with _connect(AGGREGATES, synth_agents, fed_secret, fed_registry, limits=limits) as conn:
        full = conn.sql(sql_all)
        try:
            others = conn.sql(sql_trick, partial=True)
        except SDEError as err:
            refused = err.rule
        else:
            refused = None
        if refused is not None:
            assert refused == "federation.node-unavailable"
            return  # refused outright: the hole is closed
    truth = persons[(persons.node == node) & (persons.year_of_birth > year)]
    truth_n = truth.groupby("gender_concept_id").size()
    diff = full.set_index("gender_concept_id").n - others.set_index("gender_concept_id").n
    read = others.attrs["sde"].get("missing_nodes") == [node] and all(
        int(diff[g]) == int(truth_n[g]) for g in truth_n.index
    )
    assert not read, (
        f"node {node} was made to fail at will; full minus partial = its own cells "
        f"{diff.to_dict()} (truth {truth_n.to_dict()})"
    )


# -- hole 2: record-level data leaves a node as the keys of small groups ----------------------


def test_held_small_groups_keys_do_not_leave_the_node(
    agg_fed: FederatedConnection,
) -> None:
    """HELD now (OPEN at HEAD 1ddfdd0, a strict xfail that failed there; closed by the
    owner's two-round rule in the working tree, round 1 sending large groups only).
    Docs say only checked partial results leave a node, but at HEAD 1ddfdd0
    (and in the working tree while ``node.ROUND_ONE`` is False) node_sdc keeps every small
    group's keys (``__sde_small`` true, partials NULL). With ``GROUP BY p.person_id,
    p.year_of_birth, m.value_as_number`` (outputs: a key and COUNT(*)) every group is one
    person, and each node sends its whole table of (pseudonym, year of birth, measurement
    value) rows to the coordinator: record-level data of an aggregates project, in clear
    on the wire and in the gateway's memory. In the working tree's round 2 the
    coordinator then sends those keys as ``probe_keys`` to every *other* node: one
    trust's pseudonymised records handed to the other trusts (and the probe bodies pass
    the agents' 1 MB limit, so the query fails with HTTP 413 naming the node).
    Fix: the two-round rule with round 1 sending large groups only (``ROUND_ONE``), so
    probes only carry keys some node holds at least ``threshold`` persons of."""
    seen: dict[str, list[tuple[bytes, pd.DataFrame]]] = {}
    client = agg_fed._client
    original = client.frame

    def spy(node: str, path: str, body: bytes, *, timeout_s: float) -> pd.DataFrame:
        frame = original(node, path, body, timeout_s=timeout_s)
        seen.setdefault(node, []).append((body, frame))
        return frame

    client.frame = spy  # type: ignore[method-assign]
    try:
        shown = agg_fed.sql(
            "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p "
            "JOIN measurement m ON m.person_id = p.person_id "
            "GROUP BY p.gender_concept_id, p.person_id, p.year_of_birth, m.value_as_number"
        )
        assert len(shown) == 0  # the researcher sees nothing: every group is one person
    except SDEError:
        pass  # a refusal does not undo what already left the nodes
    finally:
        client.frame = original  # type: ignore[method-assign]
    # 1. what lth sent the coordinator
    _body, part = seen["lth"][0]
    leaked = 0
    if "__sde_small" in part.columns:
        small = part[part["__sde_small"].fillna(False).astype(bool)]
        leaked = len(small[["f_k1", "f_k2", "f_k3"]].dropna())
    # 2. what the other nodes were sent about lth's persons (round-2 probes)
    forwarded = 0
    for node in ("elht", "umbh"):
        for probe_body, _ in seen.get(node, [])[1:]:
            keys = json.loads(probe_body).get("probe_keys") or []
            forwarded += len(keys)
    assert (leaked, forwarded) == (0, 0), (
        f"node lth sent {leaked} record-level rows (pseudonym, year of birth, measurement "
        f"value) as keys of small groups; {forwarded} single-person keys were forwarded to "
        "the other nodes as probes"
    )


# -- signing: what a captured request can still do ------------------------------------------


def _project_key(registry: str, project: str) -> bytes:
    return KeyStore(open_registry(registry)).project_key(project)


def _body(
    scope_dict: dict[str, Any], sql: str, secret: Secret, registry: str, kind: str, **kw: Any
) -> bytes:
    scope = Scope.from_dict(scope_dict)
    key = kw.pop("key", None) or seal(
        secret.value, scope.project, _project_key(registry, scope.project)
    )
    request = NodeRequest(
        project=kw.pop("project", scope.project),
        scope=scope.to_dict(),
        scope_version=scope.version,
        key=key,
        sql=sql,
        dialect="postgres",
        kind=kind,
        timeout_s=30.0,
        max_rows=1000,
    )
    return request.to_bytes()


def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        url.rstrip("/") + "/" + path,
        content=body,
        headers={**headers, "Content-Type": "application/json"},
        timeout=60.0,
    )


def test_held_captured_explain_does_not_replay_as_a_query_at_another_node(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    """HELD now (OPEN at HEAD 1ddfdd0, where elht answered 1,364 exact per-person rows;
    closed in the owner's working tree, which signs the node and route). The attack: the
    HMAC was over
    ``time \\n nonce \\n sha256(body)`` only; the path and the node it was meant for are
    not in it, and nonces are remembered per agent. In a dp project the researcher's
    ``conn.explain(sql)`` sends (kind ``exact``, access mode not enforced) the node part of
    any aggregate SQL, e.g. ``GROUP BY p.person_id`` with ``MAX(value)``: explain returns
    only SQL. Replayed within 30 s to ``/v1/query`` of another node, the same signed bytes
    return that node's exact per-person maxima (pseudonym, value): record-level data of a
    dp project, no noise, no budget, no audit entry. The node accepts an ``exact`` part
    of any aggregate shape, so nothing stops it. Fix: sign ``method \\n path \\n node \\n
    time \\n nonce \\n sha256(body)`` (the node checks its own name and route), and have a
    node refuse ``exact`` parts grouped by a person column."""
    captured: list[tuple[str, bytes, dict[str, str]]] = []
    with _connect(DP, synth_agents, fed_secret, fed_registry) as conn:
        http = conn._client._http
        original = http.post

        def spy(url: str, **kw: Any) -> httpx.Response:
            captured.append((url, kw["content"], dict(kw["headers"])))
            return original(url, **kw)

        http.post = spy  # type: ignore[method-assign]
        out = conn.explain(
            "SELECT p.person_id, MAX(m.value_as_number) AS hi FROM person p "
            "JOIN measurement m ON m.person_id = p.person_id GROUP BY p.person_id"
        )
    assert "merge" in out  # the researcher got SQL only
    url, body, headers = next(c for c in captured if c[0].startswith(synth_agents["lth"]))
    assert url.endswith("v1/explain")
    # Replay lth's explain, unchanged, as a query to elht.
    answer = _post(synth_agents["elht"], "v1/query", body, headers)
    leaked = arrow_to_frame(answer.content) if answer.status_code == 200 else pd.DataFrame()
    assert (answer.status_code, len(leaked)) == (401, 0), (
        f"elht answered a replayed explain with {len(leaked)} exact per-person rows: "
        f"{leaked.head(3).to_dict('records')}"
    )


def test_held_a_request_does_not_replay_after_the_agent_restarts(
    synth_dir, fed_secret: Secret, fed_registry: str
) -> None:  # type: ignore[no-untyped-def]
    """HELD (was open at 9f2b105; captured request, no secret): ``Verifier`` keeps seen
    nonces in a dict of the process, so an agent restarted (crash, deploy, or an attacker
    who can make it restart) inside the window accepted a replay of a request it had
    already answered. Shown with two app instances over the same node (the second is the
    restarted agent). Closed: an agent refuses every request signed before it started
    (``federation.stale``); the coordinator's client signs again and retries once."""
    from starlette.testclient import TestClient

    from sde.federation.agent import create_app
    from sde.federation.node import Node, NodeStore

    body = _body(
        AGGREGATES,
        "SELECT p.gender_concept_id AS f_k0, COUNT(*) AS f_a0 FROM person p GROUP BY 1",
        fed_secret,
        fed_registry,
        "aggregate",
    )
    store = NodeStore("lth", str(synth_dir / "lth.duckdb"), "duckdb")
    with TestClient(create_app(Node(store, fed_secret.value), fed_secret.value)) as first:
        time.sleep(0.01)  # signed after the agent started, as a coordinator's request is
        headers = sign_request(fed_secret.value, body)
        answered = first.post("/v1/explain", content=body, headers=headers)
    assert answered.status_code == 200
    time.sleep(0.01)
    with TestClient(create_app(Node(store, fed_secret.value), fed_secret.value)) as restarted:
        replayed = restarted.post("/v1/explain", content=body, headers=headers)
    assert replayed.status_code == 401, "the restarted agent accepted a replayed request"
    assert replayed.json()["rule"] == "federation.stale"


# -- signing and the node's own checks: attacks that did not work -----------------------------

_PART = "SELECT p.gender_concept_id AS f_k0, COUNT(*) AS f_a0 FROM person p GROUP BY 1"


def test_held_replay_to_the_same_agent_even_on_another_route(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    body = _body(AGGREGATES, _PART, fed_secret, fed_registry, "aggregate")
    headers = sign_request(fed_secret.value, body)
    first = _post(synth_agents["lth"], "v1/query", body, headers)
    assert first.status_code == 200
    verify_response(
        fed_secret.value, headers[HEADER_NONCE], first.content, first.headers.get(HEADER_SIGNATURE)
    )
    for path in ("v1/query", "v1/explain"):
        again = _post(synth_agents["lth"], path, body, headers)
        assert again.status_code == 401
        assert again.json()["rule"] == "federation.replayed"


def test_held_a_changed_body_under_a_kept_signature(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    body = _body(AGGREGATES, _PART, fed_secret, fed_registry, "aggregate")
    headers = sign_request(fed_secret.value, body)
    for changed in (
        body.replace(b'"aggregate"', b'"rows"'),
        body.replace(b'"access":"aggregates"', b'"access":"rows"'),
        body + b" ",
        body.replace(b"COUNT(*)", b"MAX(p.year_of_birth)"),
    ):
        assert changed != body
        answer = _post(synth_agents["lth"], "v1/query", changed, headers)
        assert answer.status_code == 401
        assert answer.json()["rule"] == "federation.bad-signature"


def test_held_stale_and_future_times_and_malformed_headers(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    body = _body(AGGREGATES, _PART, fed_secret, fed_registry, "aggregate")
    for skew in (-40, 40, -3600, 10**9):
        headers = sign_request(fed_secret.value, body, now=time.time() + skew)
        answer = _post(synth_agents["lth"], "v1/query", body, headers)
        assert answer.status_code == 401
        assert answer.json()["rule"] == "federation.stale"
    headers = sign_request(fed_secret.value, body)
    for name, value in (
        (HEADER_TIME, "+" + headers[HEADER_TIME]),
        (HEADER_NONCE, headers[HEADER_NONCE].upper()),
        (HEADER_SIGNATURE, headers[HEADER_SIGNATURE].upper()),
        (HEADER_TIME, "-" + headers[HEADER_TIME]),
    ):
        answer = _post(synth_agents["lth"], "v1/query", body, {**headers, name: value})
        assert answer.status_code == 401, (name, value, answer.status_code)


def test_held_the_node_refuses_kinds_the_project_does_not_allow(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    """A signed (coordinator-bug) ``rows`` or ``exact`` request to an aggregates project, and
    ``aggregate`` to a dp project, are refused by the node itself."""
    cases = [
        (AGGREGATES, "SELECT p.person_id, p.year_of_birth FROM person p", "rows"),
        (AGGREGATES, _PART, "exact"),
        (DP, _PART, "aggregate"),
        (DP, "SELECT p.person_id, p.year_of_birth FROM person p", "rows"),
    ]
    for scope, sql, kind in cases:
        body = _body(scope, sql, fed_secret, fed_registry, kind)
        answer = _post(synth_agents["lth"], "v1/query", body, sign_request(fed_secret.value, body))
        assert answer.status_code == 403, (scope["project"], kind, answer.text)
        assert answer.json()["rule"] in {"federation.kind", "access.dp-only"}


def test_held_a_sealed_key_of_another_project_does_not_open(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    other = seal(fed_secret.value, "rt-rows", _project_key(fed_registry, "rt-rows"))
    body = _body(AGGREGATES, _PART, fed_secret, fed_registry, "aggregate", key=other)
    answer = _post(synth_agents["lth"], "v1/query", body, sign_request(fed_secret.value, body))
    assert answer.status_code == 403
    assert answer.json()["rule"] == "federation.bad-key"


@pytest.mark.parametrize(
    "sql",
    [
        _PART + " HAVING COUNT(*) < 10",
        _PART + " ORDER BY 2 LIMIT 1",
        "SELECT p.gender_concept_id AS f_k0, p.year_of_birth AS f_a0 FROM person p",
        "SELECT p.gender_concept_id AS f_k0, MIN(p.year_of_birth) AS f_a0 FROM person p GROUP BY 1",
        "SELECT p.gender_concept_id AS f_k0, COUNT(*) OVER () AS f_a0 FROM person p GROUP BY 1",
        "SELECT p.gender_concept_id AS f_k0, COUNT(*) AS f_a0, COUNT(*) AS __sde_small "
        "FROM person p GROUP BY 1",
        "SELECT p.gender_concept_id AS f_k0, COUNT(*) AS f_a0, 3 AS __sde_persons_0 "
        "FROM person p GROUP BY 1",
    ],
)
def test_held_a_signed_part_that_is_not_a_node_part_in_an_aggregates_project(
    sql: str, synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    body = _body(AGGREGATES, sql, fed_secret, fed_registry, "aggregate")
    answer = _post(synth_agents["lth"], "v1/query", body, sign_request(fed_secret.value, body))
    assert answer.status_code in (400, 403), answer.text


# -- DP: a partial release served later as if whole ------------------------------------------


def test_held_a_partial_dp_release_is_not_served_as_whole_after_a_restart(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    """HELD (was open at 9f2b105; never a silent partial answer): ``sql_dp(...,
    partial=True)`` with node umbh down makes release R from lth and elht only, and says
    so. The release is stored in the registry's ledger, but the fact that it was partial is kept in
    ``coordinator._PARTIAL_RELEASES`` (a dict of the process). A restarted gateway (or a
    second gateway worker) asked the same query serves R from the ledger, at no cost, with
    no ``missing_nodes``: a partial DP answer presented as the whole federation's. Low
    severity (no disclosure; a wrong answer). Fix: store the missing nodes with the
    release in the ledger. Closed: the audit entry that made the release names the nodes it
    lacked, in the spend's transaction, and a cached answer reads it from there."""
    scope = {**DP, "project": "rt-dp-partial"}
    sql = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1"
    down = {**synth_agents, "umbh": "http://127.0.0.1:9/"}
    with _connect(scope, down, fed_secret, fed_registry) as conn:
        first = conn.sql_dp(sql, epsilon=0.1, partial=True)
    assert first.attrs["sde"]["missing_nodes"] == ["umbh"]
    # A new connection (as a restarted gateway opens): which nodes the release lacked is
    # read from the registry's audit log, not from the process's memory.
    with _connect(scope, synth_agents, fed_secret, fed_registry) as conn:
        again = conn.sql_dp(sql, epsilon=0.1)
    assert again.attrs["dp"]["cached"] is True
    assert again.attrs["sde"].get("missing_nodes") == ["umbh"], (
        "a release made without umbh was served as the whole federation's answer"
    )


# -- the researcher's surface: attacks that did not work --------------------------------------


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (
            "SELECT year_of_birth, MIN(month_of_birth) AS lo FROM person GROUP BY 1",
            "aggregates.function",
        ),
        (
            "SELECT year_of_birth, MAX(month_of_birth) AS hi FROM person GROUP BY 1",
            "aggregates.function",
        ),
        (
            "SELECT year_of_birth, COUNT(DISTINCT month_of_birth) AS k FROM person GROUP BY 1",
            "federation.not-decomposable",
        ),
        (
            "SELECT year_of_birth, COUNT(*) AS n, SUM(COUNT(*)) OVER () AS t "
            "FROM person GROUP BY 1",
            "aggregates.shape",
        ),
        (
            "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY (SELECT 1)",
            "federation.not-decomposable",
        ),
        (
            "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1 "
            "FETCH FIRST 1 ROWS ONLY",
            "syntax.unsupported",
        ),
        (
            "SELECT gender_concept_id AS __sde_small, COUNT(*) AS n FROM person GROUP BY 1",
            "names.reserved",
        ),
        ("SELECT p.person_id, p.year_of_birth FROM person p", "aggregates.not-aggregated"),
    ],
)
def test_held_researcher_queries_refused_in_an_aggregates_project(
    sql: str, rule: str, agg_fed: FederatedConnection
) -> None:
    with pytest.raises(SDEError) as caught:
        agg_fed.sql(sql)
    assert caught.value.rule == rule


def test_held_merge_names_a_researcher_cannot_reach(
    agg_fed: FederatedConnection, persons: pd.DataFrame
) -> None:
    """A CTE named after the merge's own tables (``__sde_parts``) and outputs named like
    node-part columns run at the nodes only; the merge reads the real parts, post
    suppression: every shown cell has at least 10 persons."""
    with pytest.raises(SDEError) as reserved:  # the merge's names are never the researcher's
        agg_fed.sql(
            "WITH __sde_parts AS (SELECT 1 AS x) SELECT gender_concept_id, COUNT(*) AS n "
            "FROM person GROUP BY 1"
        )
    assert reserved.value.rule == "names.reserved"
    for sql in (
        "SELECT year_of_birth AS f_k0, COUNT(*) AS f_a0 FROM person GROUP BY 1 ORDER BY f_k0",
        "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1 "
        "QUALIFY ROW_NUMBER() OVER (ORDER BY COUNT(*)) = 1",
    ):
        frame = agg_fed.sql(sql)
        assert len(frame) >= 1
        assert (frame.iloc[:, 1] >= 10).all(), (sql, frame)


def test_held_a_cell_small_at_one_node_is_withheld_through_having_order_and_limit(
    agg_fed: FederatedConnection, persons: pd.DataFrame
) -> None:
    """The stated rule: a year of birth with 1-9 persons at some node is never shown, and
    does not move HAVING, ORDER BY or LIMIT (the first years shown are the first years
    every node holds 0 or >= 10 of, with >= 10 in all)."""
    by = persons.groupby(["year_of_birth", "node"]).size().unstack(fill_value=0)
    ok = by[((by == 0) | (by >= 10)).all(axis=1) & (by.sum(axis=1) >= 10)]
    small = by.index.difference(ok.index)
    assert len(small) > 0
    frame = agg_fed.sql(
        "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1 HAVING COUNT(*) > 0 "
        "ORDER BY 1 LIMIT 5"
    )
    assert list(frame.year_of_birth) == list(ok.index[:5])
    assert list(frame.n) == list(ok.sum(axis=1).iloc[:5])


def test_held_a_nodes_engine_text_never_reaches_the_researcher(
    rows_fed: FederatedConnection,
) -> None:
    """A cast that fails on a value (rows project, no totality rule): the node's engine
    message (which quotes the value) stays in its log; the researcher reads the generic
    sentence."""
    with pytest.raises(SDEError) as caught:
        rows_fed.sql(
            "SELECT CAST(CAST(p.year_of_birth AS VARCHAR) || '-13-45' AS DATE) AS d FROM person p"
        )
    message = str(caught.value)
    assert "Conversion" not in message
    assert "-13-45" not in message.split("SELECT", maxsplit=1)[0]
    assert not any(str(y) in message for y in range(1930, 2010))


def test_held_explain_in_a_dp_project_returns_sql_only(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    with _connect(DP, synth_agents, fed_secret, fed_registry) as conn:
        before = conn.budget().epsilon_spent
        out = conn.explain("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1")
        after = conn.budget().epsilon_spent
    assert set(out) >= {"lth", "elht", "umbh", "merge", "kind"}
    assert all(isinstance(v, str) for v in out.values())
    assert before == after


# -- hole: the researcher's SQL reads the merge's own tables ----------------------------------

_FAKE_PARTS = (
    "WITH __sde_parts AS (SELECT 1 AS f_k0, TRUE AS f_k1, TRUE AS __sde_small, "
    "'x' AS __sde_node, 1 AS __sde_persons_0) "
)


def _oracle(conn: FederatedConnection, condition: str, *, split: str | None = None) -> bool:
    """One bit per query: does some row of the merge's ``__sde_parts`` (every node's raw
    part, small flags, node names and per-node person counts included) meet
    ``condition``? The bit is read from how many rows DISTINCT ON keeps."""
    probe = (
        "(SELECT __sde_groups.f_k0 FROM __sde_parts AS __sde_groups "
        f"WHERE {condition} LIMIT 1) IS NULL"
    )
    # The researcher's own derived table is called __sde_groups with columns f_k0, f_k1,
    # so DISTINCT ON may name them whether or not the merge lifts it: in the merge they
    # are the merged keys.
    if split is None:  # grouped by year: many rows shown, or 1
        sql = (
            f"{_FAKE_PARTS}SELECT DISTINCT ON (CASE WHEN {probe} THEN __sde_groups.f_k0 "
            "ELSE 0 END) __sde_groups.f_k0 AS yob, COUNT(*) AS n FROM (SELECT p.person_id, "
            "p.year_of_birth AS f_k0 FROM person p) AS __sde_groups GROUP BY 1"
        )
    else:  # grouped by (born after 1960, <split>): two rows shown, or 1
        sql = (
            f"{_FAKE_PARTS}SELECT DISTINCT ON (CASE WHEN {probe} THEN __sde_groups.f_k0 "
            "ELSE FALSE END) __sde_groups.f_k0 AS late, __sde_groups.f_k1 AS inside, "
            "COUNT(*) AS n FROM (SELECT p.person_id, p.year_of_birth > 1960 AS f_k0, "
            f"{split} AS f_k1 FROM person p) AS __sde_groups GROUP BY 1, 2"
        )
    return len(conn.sql(sql)) == 1


def _count(conn: FederatedConnection, condition: str, **kw: Any) -> int:
    """A per-node person count read by bisection on the oracle."""
    lo, hi = 0, 4096
    while lo < hi:
        mid = (lo + hi) // 2
        if _oracle(conn, f"{condition} AND __sde_groups.__sde_persons_0 <= {mid}", **kw):
            hi = mid
        else:
            lo = mid + 1
    return lo


def test_held_distinct_on_subquery_cannot_read_the_nodes_raw_parts_in_the_merge(
    agg_fed: FederatedConnection,
) -> None:
    """HELD (was critical, open at 9f2b105): decompose's subquery check covered outputs,
    HAVING, QUALIFY and ORDER BY but not DISTINCT ON, which the merge copies into its final
    SELECT; a subquery there over a CTE the researcher named ``__sde_parts`` (aliased
    ``__sde_groups``) read the merge's table of every node's raw part: small flags, node
    names, per-node person counts (one bit per query through how many rows DISTINCT ON
    keeps; by bisection a node's exact count of a 1-9 cell). Closed twice over: the proxy
    refuses every name starting ``__sde`` (``names.reserved``, in every project), and the
    split refuses a subquery in any clause the merge runs (DISTINCT ON, LIMIT, OFFSET,
    anything but FROM, joins, WHERE, GROUP BY and WITH)."""
    with pytest.raises(SDEError) as reserved:
        _oracle(agg_fed, "__sde_groups.__sde_small")
    assert reserved.value.rule == "names.reserved"
    with pytest.raises(SDEError) as split:
        agg_fed.sql(
            "WITH parts AS (SELECT 1 AS k) SELECT DISTINCT ON (CASE WHEN (SELECT parts.k "
            "FROM parts LIMIT 1) IS NULL THEN p.year_of_birth ELSE 0 END) p.year_of_birth "
            "AS yob, COUNT(*) AS n FROM person p GROUP BY 1"
        )
    assert split.value.rule in {"federation.not-decomposable", "aggregates.shape"}, split.value


# -- hole: partial answers during an outage are per-node answers ------------------------------


def test_held_partial_during_an_outage_cannot_read_a_small_cell_of_the_missing_node(
    agg_fed: FederatedConnection,
    synth_agents: dict[str, str],
    fed_secret: Secret,
    fed_registry: str,
    persons: pd.DataFrame,
) -> None:
    """HELD (open at HEAD 1ddfdd0; the owner's working tree now refuses every partial
    answer in an aggregates project). The attack: a node that is down (not "about
    the query") may be left out of a partial answer. Every cell of the partial answer
    then holds the other nodes' persons only, so (full answer before or after the outage)
    minus (partial answer during it) is the missing node's own count of every cell. Two
    nested cells (born <= Y and born <= Y-1), each with >= 10 persons at every node, give
    the missing node's count of persons born in Y: here 1-9, the cell the stated rule
    exists to withhold. Fix: in an aggregates project, no partial answers at all (or
    only when the answer's cells are also checked against a per-node ledger of released
    full answers, refusing a partial cell whose full twin was released and vice versa)."""
    by = persons.groupby(["year_of_birth", "node"]).size().unstack(fill_value=0)
    upto = by.cumsum()
    after = by[::-1].cumsum()[::-1]
    year = next(
        int(y)
        for y in by.index[1:]
        if 1 <= by.loc[y, "umbh"] < 10
        and (y - 1) in by.index
        and (upto.loc[y - 1] >= 10).all()
        and (after.shift(-1).fillna(0).loc[y] >= 10).all()
    )
    down = {**synth_agents, "umbh": "http://127.0.0.1:9/"}

    def cells(conn: FederatedConnection, cut: int, **kw: Any) -> int:
        frame = conn.sql(
            f"SELECT CASE WHEN year_of_birth <= {cut} THEN 1 ELSE 0 END AS early, "
            "COUNT(*) AS n FROM person GROUP BY 1",
            **kw,
        )
        return int(frame.set_index("early").n[1])

    with _connect(AGGREGATES, down, fed_secret, fed_registry) as outage:
        try:
            cells(outage, year, partial=True)
        except SDEError as err:
            refused = err.rule
        else:
            refused = None
        if refused is not None:
            assert refused == "federation.node-unavailable"
            return
        umbh_upto = cells(agg_fed, year) - cells(outage, year, partial=True)
        umbh_before = cells(agg_fed, year - 1) - cells(outage, year - 1, partial=True)
    read = umbh_upto - umbh_before
    assert read != int(by.loc[year, "umbh"]), (
        f"umbh holds exactly {read} person(s) born in {year}, read from full minus partial "
        f"answers (truth {int(by.loc[year, 'umbh'])})"
    )


def test_held_dp_budget_is_charged_once_for_three_nodes(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    """One sql_dp over three nodes spends its epsilon once (not once per node), and asking
    again is served from the release at no cost."""
    scope = {**DP, "project": "rt-dp-once"}
    sql = "SELECT year_of_birth / 10 * 10 AS decade, COUNT(*) AS n FROM person GROUP BY 1"
    with _connect(scope, synth_agents, fed_secret, fed_registry) as conn:
        before = conn.budget().epsilon_spent
        first = conn.sql_dp(sql, epsilon=0.2)
        middle = conn.budget().epsilon_spent
        again = conn.sql_dp(sql, epsilon=0.2)
        after = conn.budget().epsilon_spent
    assert middle - before == pytest.approx(0.2)
    assert after == middle
    assert again.attrs["dp"]["cached"] is True
    assert not first.attrs["sde"].get("missing_nodes")


# -- the working tree's round 2: the probe's scan cap -----------------------------------------


def test_probe_scan_cap_makes_one_person_flip_a_probe_answer(
    synth_dir,
    fed_secret: Secret,
    fed_registry: str,
    persons: pd.DataFrame,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """HOLE (working tree's two-round rule; aggregates project; medium-low, needs more than
    PROBE_SCAN = 20,000,000 small groups at one node, e.g. GROUP BY a record id of a big
    trust's measurement table, and a bisection to sit on the boundary). Round 2 reads all
    the node's small groups and, past PROBE_SCAN of them, answers *every* probed key
    small (fail closed). But the count of small groups is the researcher's to steer
    (``CASE WHEN <pred> THEN p.person_id ELSE 0 END`` as a key: one small group per
    matching person), and the probed keys include cells absent at this node that other
    nodes hold at full size: such a cell is shown, or withheld, depending on whether one
    person matches <pred>. The same one-person oracle as the group cap had, at a larger
    scale. Shown on the node itself with PROBE_SCAN lowered to the boundary. Fix: answer
    a probe by looking up the probed keys only (a join with the probe list), so the
    answer never depends on how many other small groups the node has."""
    from sde.federation import node as node_module
    from sde.federation.node import Node, NodeStore

    year = 1950
    mine = persons[(persons.node == "lth") & (persons.year_of_birth <= year)]
    target = mine.iloc[0]
    monkeypatch.setattr(node_module, "PROBE_SCAN", len(mine) - 1)
    scope = Scope.from_dict(AGGREGATES)
    key = seal(fed_secret.value, scope.project, _project_key(fed_registry, scope.project))
    node = Node(NodeStore("lth", str(synth_dir / "lth.duckdb"), "duckdb"), fed_secret.value)
    answers = []
    try:
        for extra in (
            "",
            f" AND NOT (p.year_of_birth = {int(target.year_of_birth)} AND "
            f"p.month_of_birth = {int(target.month_of_birth)} AND "
            f"p.gender_concept_id = {int(target.gender_concept_id)})",
        ):
            # persons born after `year` form the large groups (k, 0); older persons one
            # small group each; the probe asks about a cell absent here: (0, 0)
            sql = (
                "SELECT p.gender_concept_id AS f_k0, CASE WHEN p.year_of_birth <= "
                f"{year}{extra} THEN p.person_id ELSE 0 END AS f_k1, COUNT(*) AS f_a0 "
                "FROM person p GROUP BY 1, 2"
            )
            request = NodeRequest(
                project=scope.project, scope=scope.to_dict(), scope_version=scope.version,
                key=key, sql=sql, dialect="postgres", kind="aggregate", timeout_s=60.0,
                max_rows=100_000, node="lth", action="query", probe_keys=[[0, 0]],
            )  # fmt: skip
            frame = node.query(request).frame
            answers.append(bool(frame["__sde_small"].iloc[0]))
    finally:
        node.close()
    assert answers[0] == answers[1], (
        f"one person at lth flips the probe answer for a cell lth does not hold: {answers}"
    )
