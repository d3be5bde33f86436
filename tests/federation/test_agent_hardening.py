"""The node agent's answers to the red team's holes, over real agent processes.

- a request signed before an agent started is refused (``federation.stale``, saying it
  restarted), so a request captured before a restart cannot be replayed into it;
- a signed request names its node and route (``node``, ``action``): another node or route
  refuses it (``federation.wrong-node`` / ``federation.wrong-action``, 401);
- in an aggregates project a node sends only its groups of at least the threshold (round
  1; its group cap counts those only) and answers probes "which of these keys are small at
  you?" with one boolean per key and nothing else (round 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pandas as pd
import pytest

from sde.errors import AccessDenied
from sde.federation.sealing import seal
from sde.federation.signing import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    Verifier,
    create_secret,
    read_secret,
    sign_request,
    verify_response,
)
from sde.federation.wire import ARROW_STREAM, NodeRequest, arrow_to_frame, frame_keys
from sde.scope import Scope
from tests.federation.agents import RunningAgent, start_agent

KEY = bytes(range(32))
TABLES = {
    "person": ["person_id", "gender_concept_id", "year_of_birth"],
    "condition_occurrence": ["person_id", "condition_concept_id", "condition_start_date"],
}
AGGREGATES = Scope.from_dict({"project": "hard-agg", "access": "aggregates", "tables": TABLES})
ROWS = Scope.from_dict({"project": "hard-rows", "access": "rows", "tables": TABLES})
THRESHOLD = AGGREGATES.threshold
BY_SEX_AND_YEAR = (
    "SELECT gender_concept_id AS f_k0, year_of_birth AS f_k1, COUNT(*) AS f_a0 "
    "FROM person GROUP BY gender_concept_id, year_of_birth"
)
BY_PERSON = "SELECT person_id AS f_k0, COUNT(*) AS f_a0 FROM person GROUP BY 1"
BY_DAY = (
    "SELECT condition_start_date AS f_k0, COUNT(*) AS f_a0 FROM condition_occurrence GROUP BY 1"
)


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hardening-secret") / "federation.secret"
    create_secret(path)
    return path


@pytest.fixture(scope="module")
def secret(secret_file: Path) -> bytes:
    return read_secret(secret_file)


@pytest.fixture(scope="module")
def lth(synth_dir: Path, secret_file: Path) -> Iterator[RunningAgent]:
    with start_agent("lth", synth_dir / "lth.duckdb", "duckdb", secret_file) as agent:
        yield agent


def _body(scope: Scope, sql: str, secret: bytes, **changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "project": scope.project,
        "scope": scope.to_dict(),
        "scope_version": scope.version,
        "key": seal(secret, scope.project, KEY),
        "sql": sql,
        "dialect": "postgres",
        "kind": "aggregate",
        "timeout_s": 60.0,
        "max_rows": 10_000,
        "node": "lth",
        "action": "query",
    }
    fields.update(changes)
    return NodeRequest(**fields).to_bytes()


def _post(
    agent: RunningAgent, body: bytes, headers: dict[str, str], path: str = "/v1/query"
) -> httpx.Response:
    return httpx.post(agent.url + path, content=body, headers=headers, timeout=120.0)


def _frame(agent: RunningAgent, body: bytes, secret: bytes) -> pd.DataFrame:
    headers = sign_request(secret, body)
    answer = _post(agent, body, headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == ARROW_STREAM
    verify_response(secret, headers[HEADER_NONCE], answer.content, answer.headers[HEADER_SIGNATURE])
    return arrow_to_frame(answer.content)


def _refused(answer: httpx.Response, status: int, rule: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.json()["rule"] == rule, answer.text
    return str(answer.json()["message"])


def _node_counts(node_file: Path, sql: str) -> pd.DataFrame:
    """Persons per group counted on the node's file without the workbench (opt-outs out)."""
    with duckdb.connect(str(node_file), read_only=True) as con:
        return con.execute(sql).df()


def _by_sex_and_year(node_file: Path) -> pd.DataFrame:
    return _node_counts(
        node_file,
        "SELECT gender_concept_id AS f_k0, year_of_birth AS f_k1, COUNT(*) AS n FROM person "
        "WHERE person_id NOT IN (SELECT person_id FROM sde_opt_out) GROUP BY 1, 2",
    )


# -- 1. replay after a restart --------------------------------------------------------------


def test_a_verifier_refuses_what_was_signed_before_it_started() -> None:
    secret = b"k" * 40
    headers = sign_request(secret, b"{}", now=1000.0)
    with pytest.raises(AccessDenied) as caught:
        Verifier(secret, started=1000.5).verify(headers, b"{}", now=1001.0)
    assert caught.value.rule == "federation.stale"
    assert "restarted" in caught.value.message
    assert Verifier(secret, started=999.9).verify(headers, b"{}", now=1001.0)


def test_a_request_signed_a_millisecond_after_the_start_passes() -> None:
    secret = b"k" * 40
    headers = sign_request(secret, b"{}", now=1000.0011)
    assert headers["X-SDE-Time"] == "1000.001"
    assert Verifier(secret, started=1000.001).verify(headers, b"{}", now=1000.5)


def test_a_request_captured_before_a_restart_is_refused_by_the_restarted_agent(
    synth_dir: Path, secret_file: Path, secret: bytes
) -> None:
    body = _body(ROWS, BY_SEX_AND_YEAR, secret)
    with start_agent("lth", synth_dir / "lth.duckdb", "duckdb", secret_file) as first:
        headers = sign_request(secret, body)
        assert _post(first, body, headers).status_code == 200
    with start_agent("lth", synth_dir / "lth.duckdb", "duckdb", secret_file) as again:
        message = _refused(_post(again, body, headers), 401, "federation.stale")
        assert "restarted" in message
        assert "outcome=refused federation.stale" in again.log()
        # The coordinator signs again: answered.
        assert _post(again, body, sign_request(secret, body)).status_code == 200


# -- 2. a signed request is for one node and one route ----------------------------------------


def test_a_request_for_another_node_is_refused(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, node="elht")
    message = _refused(_post(lth, body, sign_request(secret, body)), 401, "federation.wrong-node")
    assert "elht" in message


def test_an_explain_replayed_as_a_query_is_refused(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, action="explain")
    headers = sign_request(secret, body)
    assert _post(lth, body, headers, "/v1/explain").status_code == 200
    fresh = sign_request(secret, body)  # even under a nonce never seen
    _refused(_post(lth, body, fresh), 401, "federation.wrong-action")
    query = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, action="query")
    _refused(
        _post(lth, query, sign_request(secret, query), "/v1/explain"),
        401,
        "federation.wrong-action",
    )


def test_the_bound_fields_are_signed(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, action="explain")
    changed = body.replace(b'"action":"explain"', b'"action":"query"')
    assert changed != body
    _refused(_post(lth, changed, sign_request(secret, body)), 401, "federation.bad-signature")


# -- 3. round 1: only groups of at least the threshold leave the node -------------------------


def test_round_one_sends_only_groups_of_at_least_the_threshold(
    lth: RunningAgent, secret: bytes, synth_dir: Path
) -> None:
    frame = _frame(lth, _body(AGGREGATES, BY_SEX_AND_YEAR, secret), secret)
    assert list(frame.columns) == ["f_k0", "f_k1", "f_a0", "__sde_persons_0", "__sde_small"]
    truth = _by_sex_and_year(synth_dir / "lth.duckdb")
    large = truth[truth.n >= THRESHOLD]
    assert 0 < len(large) < len(truth)  # the node has small groups too
    assert len(frame) == len(large)
    merged = frame.merge(large, on=["f_k0", "f_k1"], how="outer", validate="1:1")
    assert len(merged) == len(large)
    assert (merged.f_a0 == merged.n).all()
    assert (merged.__sde_persons_0 == merged.n).all()
    assert not frame.__sde_small.any()


def test_one_person_per_group_sends_nothing(lth: RunningAgent, secret: bytes) -> None:
    frame = _frame(lth, _body(AGGREGATES, BY_PERSON, secret, max_rows=5), secret)
    assert len(frame) == 0  # not refused for too many groups: small groups do not count
    assert list(frame.columns) == ["f_k0", "f_a0", "__sde_persons_0", "__sde_small"]


def test_the_group_cap_counts_the_groups_sent(
    lth: RunningAgent, secret: bytes, synth_dir: Path
) -> None:
    truth = _by_sex_and_year(synth_dir / "lth.duckdb")
    large = int((truth.n >= THRESHOLD).sum())
    frame = _frame(lth, _body(AGGREGATES, BY_SEX_AND_YEAR, secret, max_rows=large), secret)
    assert len(frame) == large
    body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, max_rows=large - 1)
    _refused(_post(lth, body, sign_request(secret, body)), 403, "federation.too-many-groups")


def test_a_rows_project_still_gets_every_group(lth: RunningAgent, secret: bytes) -> None:
    frame = _frame(lth, _body(ROWS, BY_PERSON, secret), secret)
    assert list(frame.columns) == ["f_k0", "f_a0"]
    assert len(frame) > 100


# -- 3. round 2: probes ----------------------------------------------------------------------


def test_a_probe_answers_one_boolean_per_key_and_nothing_else(
    lth: RunningAgent, secret: bytes, synth_dir: Path
) -> None:
    truth = _by_sex_and_year(synth_dir / "lth.duckdb")
    small = truth[truth.n < THRESHOLD].head(3)
    large = truth[truth.n >= THRESHOLD].head(3)
    absent = [[8532, 1800], [0, 2200]]
    probes = [
        *([int(a), int(b)] for a, b in zip(small.f_k0, small.f_k1, strict=True)),
        *([int(a), int(b)] for a, b in zip(large.f_k0, large.f_k1, strict=True)),
        *absent,
    ]
    frame = _frame(lth, _body(AGGREGATES, BY_SEX_AND_YEAR, secret, probe_keys=probes), secret)
    assert list(frame.columns) == ["__sde_small"]
    assert str(frame.__sde_small.dtype) == "boolean"
    assert frame.__sde_small.tolist() == [True] * len(small) + [False] * (len(large) + 2)


def test_a_probe_matches_date_keys_as_they_travel(
    lth: RunningAgent, secret: bytes, synth_dir: Path
) -> None:
    days = _node_counts(
        synth_dir / "lth.duckdb",
        "SELECT condition_start_date AS f_k0, COUNT(DISTINCT person_id) AS n "
        "FROM condition_occurrence WHERE person_id NOT IN (SELECT person_id FROM sde_opt_out) "
        "GROUP BY 1",
    )
    small = days[days.n < THRESHOLD].head(4)
    assert len(small) > 0
    probes = [list(key) for key in frame_keys(small, 1)]
    assert all(isinstance(k[0], str) and len(k[0]) == 10 for k in probes)  # YYYY-MM-DD
    frame = _frame(lth, _body(AGGREGATES, BY_DAY, secret, probe_keys=probes), secret)
    assert frame.__sde_small.tolist() == [True] * len(probes)


def test_a_global_cell_can_be_probed(lth: RunningAgent, secret: bytes, synth_dir: Path) -> None:
    years = _node_counts(
        synth_dir / "lth.duckdb",
        "SELECT year_of_birth AS y, COUNT(*) AS n FROM person "
        "WHERE person_id NOT IN (SELECT person_id FROM sde_opt_out) GROUP BY 1",
    )
    year = int(years[years.n < THRESHOLD].y.iloc[0])
    for where, small in ((f"year_of_birth = {year}", True), ("year_of_birth > 0", False)):
        sql = f"SELECT COUNT(*) AS f_a0 FROM person WHERE {where}"
        sent = _frame(lth, _body(AGGREGATES, sql, secret), secret)
        assert len(sent) == (0 if small else 1)
        probed = _frame(lth, _body(AGGREGATES, sql, secret, probe_keys=[[]]), secret)
        assert probed.__sde_small.tolist() == [small]


@pytest.mark.parametrize(
    ("changes", "status", "rule"),
    [
        ({"probe_keys": [[1, 2]] * 6, "max_rows": 5}, 400, "federation.bad-request"),
        ({"probe_keys": [[1]]}, 400, "federation.bad-request"),  # the part has two keys
        ({"probe_keys": [[1, [2]]]}, 400, "federation.bad-request"),
        ({"probe_keys": [[1, 2]], "kind": "exact"}, 400, "federation.bad-request"),
    ],
)
def test_bad_probes_are_refused(
    lth: RunningAgent, secret: bytes, changes: dict[str, Any], status: int, rule: str
) -> None:
    body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, **changes)
    _refused(_post(lth, body, sign_request(secret, body)), status, rule)


def test_a_probe_in_a_rows_project_or_on_explain_is_refused(
    lth: RunningAgent, secret: bytes
) -> None:
    body = _body(ROWS, BY_SEX_AND_YEAR, secret, probe_keys=[[1, 2]])
    _refused(_post(lth, body, sign_request(secret, body)), 403, "federation.kind")
    body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, probe_keys=[[1, 2]], action=None)
    _refused(
        _post(lth, body, sign_request(secret, body), "/v1/explain"), 400, "federation.bad-request"
    )


def test_unbound_requests_still_answer(lth: RunningAgent, secret: bytes) -> None:
    """A body without ``node`` and ``action`` (signed by a tool that does not name them)
    is answered at either route; the coordinator always names them."""
    body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, node=None, action=None)
    assert b'"node"' not in body
    assert b'"action"' not in body
    assert len(_frame(lth, body, secret)) > 0
    assert _post(lth, body, sign_request(secret, body), "/v1/explain").status_code == 200


# -- the other engines: round 1 and a probe as on DuckDB ----------------------------------------


def _rounds(agent: RunningAgent, secret: bytes, probes: list[list[Any]]) -> tuple[Any, ...]:
    sent = _frame(agent, _body(AGGREGATES, BY_SEX_AND_YEAR, secret), secret)
    sent = sent.sort_values(["f_k0", "f_k1"]).reset_index(drop=True)
    body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, probe_keys=probes[:-3])
    small = _frame(agent, body, secret).__sde_small.tolist()
    body = _body(AGGREGATES, BY_DAY, secret, probe_keys=probes[-3:])
    days = _frame(agent, body, secret).__sde_small.tolist()
    return sent, small, days


def _probes(synth_dir: Path) -> list[list[Any]]:
    """Four small and two large (sex, year) groups, then two small days and an absent one."""
    truth = _by_sex_and_year(synth_dir / "lth.duckdb")
    picked = pd.concat([truth[truth.n < THRESHOLD].head(4), truth[truth.n >= THRESHOLD].head(2)])
    days = _node_counts(
        synth_dir / "lth.duckdb",
        "SELECT condition_start_date AS f_k0, COUNT(DISTINCT person_id) AS n "
        "FROM condition_occurrence WHERE person_id NOT IN (SELECT person_id FROM sde_opt_out) "
        "GROUP BY 1 HAVING COUNT(DISTINCT person_id) < 10 ORDER BY 1 LIMIT 2",
    )
    return [
        *([int(a), int(b)] for a, b in zip(picked.f_k0, picked.f_k1, strict=True)),
        *([k[0]] for k in frame_keys(days, 1)),
        ["1800-01-01"],
    ]


def test_a_postgresql_node_keeps_both_rounds_as_the_duckdb_node(
    lth: RunningAgent, secret: bytes, secret_file: Path, synth_dir: Path, pg_server: Any
) -> None:
    from sde.backends.load import load_node
    from sde.backends.postgresql import PostgresBackend

    dsn = pg_server.create_database("federation_hardening_lth")
    backend = PostgresBackend(dsn, schema="lth")
    try:
        load_node(synth_dir / "lth.duckdb", backend, progress=False)
    finally:
        backend.close()
    probes = _probes(synth_dir)
    with start_agent("lth", dsn, "postgresql", secret_file) as pg:
        on_pg = _rounds(pg, secret, probes)
    on_duckdb = _rounds(lth, secret, probes)
    pd.testing.assert_frame_equal(on_pg[0], on_duckdb[0], check_dtype=False)
    assert on_pg[1:] == on_duckdb[1:]
    assert on_duckdb[1:] == ([True] * 4 + [False] * 2, [True, True, False])


def test_a_spark_node_keeps_both_rounds_as_the_duckdb_node(
    lth: RunningAgent, secret: bytes, secret_file: Path, synth_dir: Path, spark: Any, tmp_path: Path
) -> None:
    from sde.backends.load import load_node
    from sde.backends.spark import SparkBackend

    warehouse = tmp_path / "warehouse"
    backend = SparkBackend(warehouse, "lth", session=spark, create=True)
    load_node(synth_dir / "lth.duckdb", backend, progress=False)
    probes = _probes(synth_dir)
    with start_agent("lth", warehouse, "spark", secret_file) as on_spark:
        got = _rounds(on_spark, secret, probes)
    on_duckdb = _rounds(lth, secret, probes)
    pd.testing.assert_frame_equal(got[0], on_duckdb[0], check_dtype=False)
    assert got[1:] == on_duckdb[1:]


def test_a_probe_reads_the_groups_it_names_not_every_small_group(
    synth_dir: Path, secret: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a probe reads is bounded by the probed values, so its answer cannot depend on
    how many other small groups the node has (with the scan bound at 2, two of the node's
    many small groups are still answered)."""
    from sde.federation import node as node_module
    from sde.federation.node import Node, NodeStore

    truth = _by_sex_and_year(synth_dir / "lth.duckdb")
    small = truth[truth.n < THRESHOLD]
    assert len(small) > 2
    monkeypatch.setattr(node_module, "PROBE_SCAN", 2)
    probes = [[int(a), int(b)] for a, b in zip(small.f_k0[:2], small.f_k1[:2], strict=True)]
    node = Node(NodeStore("lth", str(synth_dir / "lth.duckdb"), "duckdb"), secret)
    try:
        body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret, probe_keys=[*probes, [0, 0]])
        answer = node.query(NodeRequest.from_bytes(body)).frame
    finally:
        node.close()
    assert answer.__sde_small.tolist() == [True, True, False]
