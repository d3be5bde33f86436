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

from sde.errors import BackendUnavailable, SDEError
from sde.federation.coordinator import FederatedConnection, connect_federated
from sde.federation.sealing import seal
from sde.federation.signing import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIME,
    sign_request,
    verify_response,
)
from sde.federation.wire import ARROW_STREAM, NodeRequest, arrow_to_frame
from sde.proxy.context import Limits
from sde.registry.keys import KeyStore
from sde.registry import open_registry
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
        "SELECT p.person_id, p.year_of_birth, p.month_of_birth, p.gender_concept_id "
        "FROM person p"
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


@pytest.mark.xfail(
    strict=True,
    reason="open: a node refuses a part with more groups than the row cap counting its "
    "SMALL groups too, so one person flips the refusal (names the node)",
)
def test_node_group_cap_counts_small_groups_so_one_person_flips_the_answer(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str, persons: pd.DataFrame
) -> None:
    """HOLE (aggregates project): ``federation.too-many-groups`` is decided on the node's
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
            base
            + f" AND NOT (p.year_of_birth = {int(target.year_of_birth)} AND "
            f"p.month_of_birth = {int(target.month_of_birth)} AND "
            f"p.gender_concept_id = {int(target.gender_concept_id)}) GROUP BY p.person_id"
        )
        a = _outcome(lambda: conn.sql(with_target))
        b = _outcome(lambda: conn.sql(without_target))
    # What a researcher sees must not depend on one person: both empty, or both refused
    # for a reason that does not depend on the data.
    assert a[0] == b[0], f"one person at {node} flips the outcome: {a[0]} vs {b[0]}"


@pytest.mark.xfail(
    strict=True,
    reason="open: partial=True plus a node made to fail at will (too many groups) gives "
    "the other nodes' cells; subtracting from the full answer reads one node's cell",
)
def test_partial_with_a_node_failed_at_will_reads_one_nodes_cells(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str, persons: pd.DataFrame
) -> None:
    """HOLE (aggregates project): the researcher chooses which node fails. A second GROUP BY
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
        except SDEError:
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


@pytest.mark.xfail(
    strict=True,
    reason="open: an aggregates project's node part sends every small group's keys, so "
    "GROUP BY person_id, ... ships record-level rows off the node",
)
def test_small_groups_keys_carry_record_level_rows_off_the_node(agg_fed: FederatedConnection) -> None:
    """HOLE (aggregates project; the wire and the gateway, not the researcher): docs say
    only checked partial results leave a node, but node_sdc keeps every small group's
    keys (``__sde_small`` true, partials NULL). With ``GROUP BY p.person_id,
    p.year_of_birth, p.month_of_birth, m.value_as_number`` (outputs: a key and COUNT(*)),
    every group is one person, and each node sends its whole table of (pseudonym, year,
    month, measurement value) rows to the coordinator: record-level data of an
    aggregates project, in clear on the wire and in the gateway's memory. Anyone who can
    read the coordinator's traffic or memory (or a coordinator bug) gets what the
    federation promised never leaves the trust. Fix: a node should refuse (or collapse)
    a part whose groups are mostly small, e.g. refuse when small groups exceed a bound,
    or send small groups' keys only as a keyed digest the coordinator can match but
    not read."""
    seen: dict[str, pd.DataFrame] = {}
    client = agg_fed._client
    original = client.frame

    def spy(node: str, path: str, body: bytes, *, timeout_s: float) -> pd.DataFrame:
        frame = original(node, path, body, timeout_s=timeout_s)
        seen[node] = frame
        return frame

    client.frame = spy  # type: ignore[method-assign]
    try:
        shown = agg_fed.sql(
            "SELECT p.gender_concept_id, COUNT(*) AS n FROM person p "
            "JOIN measurement m ON m.person_id = p.person_id "
            "GROUP BY p.gender_concept_id, p.person_id, p.year_of_birth, m.value_as_number"
        )
    finally:
        client.frame = original  # type: ignore[method-assign]
    assert len(shown) == 0  # the researcher sees nothing: every group is one person
    part = seen["lth"]
    small = part[part["__sde_small"].fillna(False).astype(bool)]
    record_level = small[["f_k1", "f_k2", "f_k3"]].dropna()
    assert len(record_level) == 0, (
        f"node lth sent {len(record_level)} record-level rows (pseudonym, year of birth, "
        f"measurement value) as keys of small groups, e.g. {record_level.iloc[0].to_dict()}"
    )
