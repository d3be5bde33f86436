"""The proxy's adversarial corpus and sentinel checks, through the coordinator.

Two node agents (``sentinel_agents``: processes over the proxy tests' sentinel nodes
``lth`` and ``elht``, where everything out of scope carries a recognisable value) answer a
federated connection of the same projects as the pooled ``scoped`` connection, with the
same registry (the same project key). Every corpus query, in every dialect:

- a query the corpus says is refused is refused by the coordinator with the pooled
  connection's rule and sentence, before any node is asked (that the rule is the corpus's
  is tests/proxy/test_corpus.py's to check);
- whatever comes back (rows, or an error's message) holds no planted sentinel;
- a legitimate research query (``allow``, rows project) is answered;
- whole tables hold no sentinel and as many rows as the hand-filtered reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sde.federation.coordinator import FederatedConnection, connect_federated
from tests.federation.conftest import Secret
from tests.proxy.corpus import Case, load, outcome
from tests.proxy.sentinel_data import SCOPE, sentinel_hits

CASES = load()
AGGREGATES_SCOPE = {**SCOPE, "project": "htn-aggregates", "access": "aggregates"}
PASSING = (("barrier",), ("allow",))
#: Vocabulary tables, the same at every node.
REFERENCE_TABLES = {"concept", "concept_ancestor"}


@pytest.fixture(scope="module")
def federated(
    sentinel_nodes: Any, sentinel_agents: dict[str, str], fed_secret: Secret
) -> Iterator[dict[str, FederatedConnection]]:
    conns = {
        name: connect_federated(
            scope, sentinel_agents, fed_secret.value, sentinel_nodes.registry, user="tester"
        )
        for name, scope in (("rows", SCOPE), ("aggregates", AGGREGATES_SCOPE))
    }
    yield conns
    for conn in conns.values():
        conn.close()


@pytest.fixture(scope="module")
def pooled(scoped: Any, sentinel_nodes: Any) -> Iterator[dict[str, Any]]:
    import sde

    aggregates = sde.connect(sentinel_nodes.folder, scope=AGGREGATES_SCOPE, user="tester")
    yield {"rows": scoped, "aggregates": aggregates}
    aggregates.close()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_corpus_through_the_coordinator(
    case: Case, federated: dict[str, Any], pooled: dict[str, Any]
) -> None:
    conn = federated[case.scope]
    frame, error = outcome(lambda: conn.sql(case.sql, dialect=case.dialect))
    if case.rules not in PASSING:  # refused by the rules: exactly as pooled
        _, expected = outcome(lambda: pooled[case.scope].sql(case.sql, dialect=case.dialect))
        assert expected is not None
        assert error is not None, f"not refused; returned {len(frame)} rows"
        assert (error.rule, error.message) == (expected.rule, expected.message)
    if error is not None:
        assert not sentinel_hits(error.message), error.message
        if case.allowed and case.scope == "rows" and "duckdb" in case.engines:
            pytest.fail(f"legitimate research SQL refused: {error.rule}: {error.message}")
        return
    assert frame is not None
    assert not sentinel_hits(frame)


@pytest.mark.parametrize("table", sorted(SCOPE["tables"]))
def test_whole_tables_hold_no_sentinel(
    table: str, federated: dict[str, Any], reference: Any
) -> None:
    got = federated["rows"].sql(f"SELECT * FROM {table}")
    assert not sentinel_hits(got)
    expected = reference.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    assert expected > 0
    if table in REFERENCE_TABLES:  # the same at every node: each node's copy, per node
        assert got.attrs["sde"]["federation"] == "per-node"
        assert got.groupby("node").size().to_dict() == {"lth": expected, "elht": expected}
        return
    assert got.attrs["sde"]["federation"] == "rows"
    assert len(got) == expected
