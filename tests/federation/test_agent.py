"""The node agent as a real process on loopback: what it answers, and what it refuses.

One DuckDB agent (node ``lth`` of ``synth_dir``) serves most tests; a PostgreSQL agent and a
Spark agent over the same node's data each answer the same signed aggregate request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pandas as pd
import pytest

from sde.backends.load import load_node
from sde.backends.pg_local import LocalPostgres
from sde.backends.postgresql import PostgresBackend
from sde.backends.spark import SparkBackend
from sde.federation.sealing import seal
from sde.federation.signing import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    create_secret,
    read_secret,
    sign_request,
    verify_response,
)
from sde.federation.wire import ARROW_STREAM, NodeRequest, arrow_to_frame
from sde.scope import Scope
from tests.federation.agents import RunningAgent, start_agent

KEY = bytes(range(32))
TABLES = {
    "person": ["person_id", "gender_concept_id", "year_of_birth", "person_source_value"],
    "condition_occurrence": "*",
}
AGGREGATES = Scope.from_dict({"project": "fed-agg", "access": "aggregates", "tables": TABLES})
ROWS = Scope.from_dict({"project": "fed-rows", "access": "rows", "tables": TABLES})
DP = Scope.from_dict(
    {"project": "fed-dp", "access": "dp", "tables": TABLES, "dp": {"epsilon": 3, "delta": 1e-6}}
)
BY_SEX_AND_YEAR = (
    "SELECT gender_concept_id AS f_k0, year_of_birth AS f_k1, COUNT(*) AS f_a0 "
    "FROM person GROUP BY gender_concept_id, year_of_birth"
)
BY_SEX = "SELECT gender_concept_id AS f_k0, COUNT(*) AS f_a0 FROM person GROUP BY 1"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "federation.secret"
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
    }
    fields.update(changes)
    return NodeRequest(**fields).to_bytes()


def _post(
    agent: RunningAgent,
    body: bytes,
    secret: bytes,
    *,
    path: str = "/v1/query",
    now: float | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    signed = sign_request(secret, body, now=now) if headers is None else headers
    return httpx.post(agent.url + path, content=body, headers=signed, timeout=120.0)


def _frame(answer: httpx.Response, secret: bytes, nonce: str) -> pd.DataFrame:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == ARROW_STREAM
    verify_response(secret, nonce, answer.content, answer.headers.get(HEADER_SIGNATURE))
    return arrow_to_frame(answer.content)


def _query(agent: RunningAgent, body: bytes, secret: bytes) -> tuple[pd.DataFrame, httpx.Response]:
    headers = sign_request(secret, body)
    answer = _post(agent, body, secret, headers=headers)
    return _frame(answer, secret, headers[HEADER_NONCE]), answer


def _refused(answer: httpx.Response, status: int, rule: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    refusal: dict[str, Any] = answer.json()
    assert refusal["rule"] == rule
    assert set(refusal) == {"error", "rule", "message"}
    return refusal


def _persons_by_sex_and_year(node_file: Path) -> pd.DataFrame:
    """Persons per (sex, year of birth) on the node, counted on its file without the
    workbench: every person but those who opted out."""
    with duckdb.connect(str(node_file), read_only=True) as con:
        return con.execute(
            "SELECT gender_concept_id AS f_k0, year_of_birth AS f_k1, COUNT(*) AS n FROM person "
            "WHERE person_id NOT IN (SELECT person_id FROM sde_opt_out) GROUP BY 1, 2"
        ).df()


# -- answered ------------------------------------------------------------------------------


def test_healthz_is_unsigned(lth: RunningAgent) -> None:
    answer = httpx.get(lth.url + "/healthz", timeout=10)
    assert answer.json() == {"status": "ok", "node": "lth"}


def test_a_signed_aggregate_request_gets_the_nodes_partials(
    lth: RunningAgent, secret: bytes, synth_dir: Path
) -> None:
    frame, _ = _query(lth, _body(ROWS, BY_SEX_AND_YEAR, secret), secret)
    assert list(frame.columns) == ["f_k0", "f_k1", "f_a0"]
    expected = _persons_by_sex_and_year(synth_dir / "lth.duckdb")
    merged = frame.merge(expected, on=["f_k0", "f_k1"], how="outer", validate="1:1")
    assert len(merged) == len(expected) > 20
    assert (merged["f_a0"] == merged["n"]).all()


def test_small_groups_are_not_sent_in_an_aggregates_project(
    lth: RunningAgent, secret: bytes, synth_dir: Path
) -> None:
    """Round 1 of docs/federation.md (was: small groups sent as keys with NULLs): only the
    groups of at least the threshold leave the node; their flag is false."""
    frame, _ = _query(lth, _body(AGGREGATES, BY_SEX_AND_YEAR, secret), secret)
    assert list(frame.columns) == ["f_k0", "f_k1", "f_a0", "__sde_persons_0", "__sde_small"]
    expected = _persons_by_sex_and_year(synth_dir / "lth.duckdb")
    small = expected["n"].between(1, AGGREGATES.threshold - 1)
    assert small.any()
    assert not small.all()
    merged = frame.merge(expected, on=["f_k0", "f_k1"], how="left", validate="1:1")
    assert len(frame) == int((~small).sum())  # no small group's keys come back
    assert (merged["n"] >= AGGREGATES.threshold).all()
    assert not merged["__sde_small"].any()
    assert (merged["f_a0"] == merged["n"]).all()
    assert (merged["__sde_persons_0"] == merged["n"]).all()


def test_explain_answers_the_nodes_rewritten_sql_signed(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX, secret)
    headers = sign_request(secret, body)
    answer = _post(lth, body, secret, path="/v1/explain", headers=headers)
    assert answer.status_code == 200, answer.text
    verify_response(secret, headers[HEADER_NONCE], answer.content, answer.headers[HEADER_SIGNATURE])
    plan = json.loads(answer.content)
    assert plan["node"] == "lth"
    assert "__sde_persons_0" in plan["sql"]
    assert "HAVING" not in plan["sql"]  # the node keeps its large groups itself


def test_exact_totals_for_a_project_with_a_budget(lth: RunningAgent, secret: bytes) -> None:
    frame, _ = _query(lth, _body(DP, BY_SEX, secret, kind="exact"), secret)
    assert list(frame.columns) == ["f_k0", "f_a0"]  # no counts, no flags: DP noises it
    assert frame["f_a0"].sum() > 1000


def test_rows_in_a_rows_project_are_capped_and_say_so(lth: RunningAgent, secret: bytes) -> None:
    sql = "SELECT year_of_birth FROM person"
    frame, answer = _query(lth, _body(ROWS, sql, secret, kind="rows", max_rows=7), secret)
    assert len(frame) == 7
    assert answer.headers["X-SDE-Truncated"] == "true"
    assert answer.headers["X-SDE-Row-Cap"] == "7"
    frame, answer = _query(lth, _body(ROWS, sql, secret, kind="rows"), secret)
    assert 100 < len(frame) < 10_000
    assert "X-SDE-Truncated" not in answer.headers


# -- refused: signatures ---------------------------------------------------------------------


def test_unsigned_is_refused(lth: RunningAgent, secret: bytes) -> None:
    answer = _post(lth, _body(AGGREGATES, BY_SEX, secret), secret, headers={})
    _refused(answer, 401, "federation.unsigned")


def test_a_bad_signature_is_refused(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX, secret)
    answer = _post(lth, body, secret, headers=sign_request(b"w" * 40, body))
    _refused(answer, 401, "federation.bad-signature")
    tampered = _body(AGGREGATES, BY_SEX.replace("COUNT(*)", "COUNT(1)"), secret)
    answer = _post(lth, tampered, secret, headers=sign_request(secret, body))
    _refused(answer, 401, "federation.bad-signature")


@pytest.mark.parametrize("skew", [-45.0, 45.0, -3600.0])
def test_a_clock_skew_beyond_the_window_is_refused(
    lth: RunningAgent, secret: bytes, skew: float
) -> None:
    answer = _post(lth, _body(AGGREGATES, BY_SEX, secret), secret, now=time.time() + skew)
    _refused(answer, 401, "federation.stale")


def test_a_replayed_request_is_refused(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX, secret)
    headers = sign_request(secret, body)
    assert _post(lth, body, secret, headers=headers).status_code == 200
    _refused(_post(lth, body, secret, headers=headers), 401, "federation.replayed")
    assert "outcome=refused federation.replayed" in lth.log()


# -- refused: scope and shape ------------------------------------------------------------------


def test_a_scope_without_this_node_is_refused(lth: RunningAgent, secret: bytes) -> None:
    other = Scope.from_dict({**AGGREGATES.to_dict(), "nodes": ["elht", "umbh"]})
    _refused(_post(lth, _body(other, BY_SEX, secret), secret), 403, "nodes.not-allowed")


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (BY_SEX + " HAVING COUNT(*) > 5", "federation.node-shape"),
        (BY_SEX + " ORDER BY 2 DESC", "federation.node-shape"),
        (BY_SEX + " LIMIT 1", "federation.node-shape"),
        ("SELECT DISTINCT gender_concept_id AS f_k0, COUNT(*) AS f_a0 FROM person GROUP BY 1",
         "federation.node-shape"),
        ("SELECT year_of_birth AS f_k0 FROM person", "federation.node-shape"),
        ("SELECT person_id AS f_k0, year_of_birth AS f_a0 FROM person", "federation.node-shape"),
        ("SELECT gender_concept_id AS n, COUNT(*) AS f_a0 FROM person GROUP BY 1",
         "federation.node-shape"),
        ("SELECT COUNT(*) AS f_a0, gender_concept_id AS f_k0 FROM person GROUP BY 2",
         "federation.node-shape"),
        ("SELECT gender_concept_id AS f_k0, COUNT(*) AS f_a0 FROM person GROUP BY year_of_birth",
         "federation.node-shape"),
        ("SELECT gender_concept_id AS f_k0, COUNT(*) OVER () AS f_a0 FROM person",
         "federation.node-shape"),
        ("SELECT person_source_value AS f_k0, COUNT(*) AS f_a0 FROM person GROUP BY 1",
         "columns.not-allowed"),
        ("SELECT gender_concept_id AS f_k0, COUNT(*) AS f_a0 FROM note GROUP BY 1",
         "tables.not-allowed"),
    ],
)  # fmt: skip
def test_a_signed_node_part_of_the_wrong_shape_is_refused(
    lth: RunningAgent, secret: bytes, sql: str, rule: str
) -> None:
    for scope in (AGGREGATES, ROWS):
        refusal = _refused(_post(lth, _body(scope, sql, secret), secret), 403, rule)
        assert refusal["error"] == "ScopeViolation"


def test_a_raw_value_as_a_partial_is_refused_by_the_access_mode(
    lth: RunningAgent, secret: bytes
) -> None:
    sql = "SELECT gender_concept_id AS f_k0, MAX(year_of_birth) AS f_a0 FROM person GROUP BY 1"
    _refused(_post(lth, _body(AGGREGATES, sql, secret), secret), 403, "aggregates.function")


def test_more_groups_than_asked_for_is_refused_not_cut(lth: RunningAgent, secret: bytes) -> None:
    body = _body(ROWS, BY_SEX_AND_YEAR, secret, max_rows=5)
    _refused(_post(lth, body, secret), 403, "federation.too-many-groups")


def test_exact_is_refused_without_a_privacy_budget(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX, secret, kind="exact")
    _refused(_post(lth, body, secret), 403, "federation.kind")


def test_rows_are_refused_in_an_aggregates_project(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, "SELECT year_of_birth FROM person", secret, kind="rows")
    _refused(_post(lth, body, secret), 403, "federation.kind")


def test_a_key_sealed_under_another_secret_is_refused(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX, secret, key=seal(b"v" * 40, AGGREGATES.project, KEY))
    _refused(_post(lth, body, secret), 403, "federation.bad-key")


# -- refused: bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"\xff\xfe\x00", b"[]", b'{"project": "x"}', b"{" * 50_000],
)
def test_a_signed_garbage_body_is_400(lth: RunningAgent, secret: bytes, body: bytes) -> None:
    _refused(_post(lth, body, secret), 400, "federation.bad-request")


def test_a_scope_that_does_not_load_is_400(lth: RunningAgent, secret: bytes) -> None:
    bad = {**AGGREGATES.to_dict(), "access": "everything"}
    body = json.loads(_body(AGGREGATES, BY_SEX, secret))
    body["scope"] = bad
    refusal = _refused(_post(lth, json.dumps(body).encode(), secret), 400, "federation.bad-request")
    assert "access" in refusal["message"]


def test_a_scope_version_that_does_not_match_is_400(lth: RunningAgent, secret: bytes) -> None:
    body = _body(AGGREGATES, BY_SEX, secret, scope_version=ROWS.version)
    _refused(_post(lth, body, secret), 400, "federation.bad-request")


def test_a_body_over_the_limit_is_413(lth: RunningAgent, secret: bytes) -> None:
    answer = _post(lth, b"x" * 2_000_000, secret, headers={})
    _refused(answer, 413, "limits.too-large")


def test_an_engine_failure_keeps_the_engines_words_on_the_node(
    lth: RunningAgent, secret: bytes
) -> None:
    sql = "SELECT CAST('zq' || CAST(year_of_birth AS TEXT) AS INTEGER) AS v FROM person"
    answer = _post(lth, _body(ROWS, sql, secret, kind="rows"), secret)
    refusal = _refused(answer, 422, "engine.error")
    assert "zq" not in answer.text
    assert "zq" not in refusal["message"]
    assert "zq19" in lth.log()  # the engine's message, with the value, in the node's log


# -- the other engines -------------------------------------------------------------------------


def test_a_postgresql_node_answers_as_the_duckdb_node(
    lth: RunningAgent, secret: bytes, secret_file: Path, synth_dir: Path, pg_server: LocalPostgres
) -> None:
    dsn = pg_server.create_database("federation_lth")
    backend = PostgresBackend(dsn, schema="lth")
    try:
        load_node(synth_dir / "lth.duckdb", backend, progress=False)
    finally:
        backend.close()
    with start_agent("lth", dsn, "postgresql", secret_file) as pg:
        body = _body(AGGREGATES, BY_SEX_AND_YEAR, secret)
        on_pg, _ = _query(pg, body, secret)
    on_duckdb, _ = _query(lth, _body(AGGREGATES, BY_SEX_AND_YEAR, secret), secret)
    _same(on_pg, on_duckdb)


def test_a_spark_node_answers_as_the_duckdb_node(
    lth: RunningAgent,
    secret: bytes,
    secret_file: Path,
    synth_dir: Path,
    spark: Any,
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "warehouse"
    backend = SparkBackend(warehouse, "lth", session=spark, create=True)
    load_node(synth_dir / "lth.duckdb", backend, progress=False)
    with start_agent("lth", warehouse, "spark", secret_file) as on_spark:
        frame, _ = _query(on_spark, _body(AGGREGATES, BY_SEX_AND_YEAR, secret), secret)
    on_duckdb, _ = _query(lth, _body(AGGREGATES, BY_SEX_AND_YEAR, secret), secret)
    _same(frame, on_duckdb)


def _same(one: pd.DataFrame, other: pd.DataFrame) -> None:
    keys = ["f_k0", "f_k1"]
    left = one.sort_values(keys).reset_index(drop=True)
    right = other.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_an_expired_project_is_refused(lth: RunningAgent, secret: bytes) -> None:
    expired = Scope.from_dict({**AGGREGATES.to_dict(), "expires": "2020-01-01"})
    _refused(_post(lth, _body(expired, BY_SEX, secret), secret), 403, "access.expired")


def test_a_dp_project_gets_no_aggregate_part(lth: RunningAgent, secret: bytes) -> None:
    _refused(_post(lth, _body(DP, BY_SEX, secret), secret), 403, "access.dp-only")


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "backend", "says"),
    [
        ("missing.duckdb", "duckdb", "[node.data] node file"),
        ("lth.duckdb", "oracle", "[node.backend] backend 'oracle' is not one of"),
        ("lth.duckdb", "postgresql", "[node.data] a PostgreSQL node's data is a postgresql://"),
        ("lth.duckdb", "spark", "[node.data] warehouse"),
    ],
)
def test_serve_node_refuses_what_it_cannot_serve(
    synth_dir: Path,
    secret_file: Path,
    capsys: pytest.CaptureFixture[str],
    data: str,
    backend: str,
    says: str,
) -> None:
    args = ["--data", str(synth_dir / data), "--backend", backend]
    assert _serve_node(args, secret_file) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(("content", "mode"), [(b"x" * 40, 0o644), (b"short", 0o600)])
def test_serve_node_refuses_an_unusable_secret(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, mode: int
) -> None:
    bad = tmp_path / "bad.secret"
    bad.write_bytes(content)
    bad.chmod(mode)
    args = ["--data", str(synth_dir / "lth.duckdb"), "--backend", "duckdb"]
    assert _serve_node(args, bad) == 2
    err = capsys.readouterr().err
    assert f"[federation.secret] secret file {bad}" in err


def _serve_node(args: list[str], secret_file: Path) -> int | str | None:
    from sde.cli import main

    command = ["serve", "node", "--name", "lth", "--port", "0", "--secret-file", str(secret_file)]
    with pytest.raises(SystemExit) as exited:
        main([*command, *args])
    return exited.value.code


def test_unknown_routes_and_methods_answer_in_the_error_shape(lth: RunningAgent) -> None:
    _refused(httpx.get(lth.url + "/v1/query", timeout=10), 405, "route.method")
    _refused(httpx.post(lth.url + "/v1/nothing", content=b"", timeout=10), 404, "route.unknown")
