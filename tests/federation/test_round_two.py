"""Round 2 of the cross-node rule through the coordinator, over the three DuckDB agents:
what each node is sent and sends back, and probes cut into batches a node takes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from sde.federation import wire
from sde.federation.coordinator import FederatedConnection, connect_federated
from sde.proxy.context import Limits
from tests.federation.conftest import Secret

TABLES: dict[str, Any] = {"person": ["person_id", "gender_concept_id", "year_of_birth"]}
AGGREGATES = {
    "project": "round-two",
    "access": "aggregates",
    "tables": TABLES,
    "expires": "2099-12-31",
}
BY_YEAR = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY year_of_birth ORDER BY 1"


def _connect(
    agents: dict[str, str], secret: Secret, registry: str, **kw: Any
) -> FederatedConnection:
    return connect_federated(AGGREGATES, agents, secret.value, registry, user="tester", **kw)


class _Spy:
    """Every request body and answer frame of one connection's client, by node."""

    def __init__(self, conn: FederatedConnection) -> None:
        self.calls: list[tuple[str, str, dict[str, Any], pd.DataFrame]] = []
        client = conn._client
        original = client.frame

        def frame(node: str, path: str, body: bytes, *, timeout_s: float) -> pd.DataFrame:
            got = original(node, path, body, timeout_s=timeout_s)
            self.calls.append((node, path, json.loads(body), got))
            return got

        client.frame = frame  # type: ignore[method-assign]

    def probes(self) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
        return [(n, b, f) for n, _, b, f in self.calls if b.get("probe_keys") is not None]

    def parts(self) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
        return [(n, b, f) for n, _, b, f in self.calls if b.get("probe_keys") is None]


@pytest.fixture
def spied(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> Iterator[tuple[FederatedConnection, _Spy]]:
    with _connect(synth_agents, fed_secret, fed_registry) as conn:
        yield conn, _Spy(conn)


def test_each_node_sends_large_groups_and_answers_probes_with_booleans_only(
    spied: tuple[FederatedConnection, _Spy],
) -> None:
    conn, spy = spied
    shown = conn.sql(BY_YEAR)
    assert len(shown) > 10
    assert (shown.n >= 10).all()
    parts = spy.parts()
    assert sorted(n for n, _, _ in parts) == ["elht", "lth", "umbh"]
    for node, body, part in parts:
        assert (body["node"], body["action"]) == (node, "query")
        assert (part["__sde_persons_0"] >= 10).all()  # round 1: large groups only
        assert not part["__sde_small"].any()
    probes = spy.probes()
    assert probes  # the nodes' large years differ, so some node is asked
    sent = {n: set(wire.frame_keys(p, 1)) for n, _, p in parts}
    for node, body, answer in probes:
        assert (body["node"], body["action"]) == (node, "query")
        assert list(answer.columns) == ["__sde_small"]
        assert len(answer) == len(body["probe_keys"])
        asked = {tuple(k) for k in body["probe_keys"]}
        others = set().union(*(keys for n, keys in sent.items() if n != node))
        assert asked <= others - sent[node]  # only keys another node sent, it did not


def test_probes_are_cut_into_batches_and_the_answer_is_the_same(
    synth_agents: dict[str, str],
    fed_secret: Secret,
    fed_registry: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _connect(synth_agents, fed_secret, fed_registry) as conn:
        whole = conn.sql(BY_YEAR)
    monkeypatch.setattr(wire, "PROBE_BATCH", 3)
    with _connect(synth_agents, fed_secret, fed_registry) as conn:
        spy = _Spy(conn)
        batched = conn.sql(BY_YEAR)
    pd.testing.assert_frame_equal(batched, whole)
    sizes = [len(b["probe_keys"]) for _, b, _ in spy.probes()]
    assert max(sizes) <= 3
    assert len(sizes) > 3  # more keys than one batch


def test_probes_fit_the_row_cap_a_node_enforces(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    """A node refuses a probe list longer than the request's max_rows (row cap + 1)."""
    with _connect(synth_agents, fed_secret, fed_registry) as conn:
        whole = conn.sql(BY_YEAR)
    with _connect(synth_agents, fed_secret, fed_registry, limits=Limits(row_cap=110)) as conn:
        spy = _Spy(conn)
        capped = conn.sql(BY_YEAR)
    pd.testing.assert_frame_equal(capped, whole)
    assert all(len(b["probe_keys"]) <= b["max_rows"] for _, b, _ in spy.probes())
