"""The gateway's routes in-process: results equal the embedded connection's, refusals and
access rules as API.md says, one audit entry per call naming the caller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import sde
from sde.audit import AuditLog
from sde.client import frame_from_arrow
from sde.connection import Connection
from sde.errors import SDEError
from sde.gateway.results import ARROW
from tests.gateway.conftest import ROWS_SCOPE, World, token

QUERIES = [
    "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY 1",
    "SELECT person_id, year_of_birth FROM person ORDER BY person_id LIMIT 50",
    "SELECT measurement_concept_id, AVG(value_as_number) AS mean_value, COUNT(*) AS n "
    "FROM measurement GROUP BY 1 ORDER BY 1",
]


@pytest.fixture(scope="module")
def embedded(world: World) -> Iterator[Connection]:
    conn = sde.connect(
        world.data,
        scope=ROWS_SCOPE,
        registry=world.registry,
        user="ada",
        cache_dir=world.settings.extract_cache_dir,
    )
    yield conn
    conn.close()


def _post(api: TestClient, who: str, project: str, action: str, **body: Any) -> Any:
    return api.post(f"/api/projects/{project}/{action}", json=body, headers=token(who))


def _json_frame(payload: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(payload["data"], columns=payload["columns"])


@pytest.mark.parametrize("sql", QUERIES)
def test_json_and_arrow_results_equal_the_embedded_ones(
    api: TestClient, embedded: Connection, sql: str
) -> None:
    expected = embedded.sql(sql)
    as_json = _post(api, "ada", "htn", "sql", sql=sql)
    assert as_json.status_code == 200, as_json.text
    payload = as_json.json()
    assert payload["attrs"]["sde"] == expected.attrs["sde"]
    got = _json_frame(payload)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False)
    as_arrow = api.post(
        "/api/projects/htn/sql", json={"sql": sql}, headers={**token("ada"), "Accept": ARROW}
    )
    assert as_arrow.headers["content-type"] == ARROW
    frame = frame_from_arrow(as_arrow.content)
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False, check_exact=False)
    assert frame.attrs == json.loads(json.dumps(expected.attrs))


def test_two_members_share_one_extract_and_see_the_same_rows(api: TestClient) -> None:
    sql = QUERIES[1]
    ada = _post(api, "ada", "htn", "sql", sql=sql).json()
    bob = _post(api, "bob", "htn", "sql", sql=sql).json()
    assert ada["data"] == bob["data"]


def test_explain_equals_the_embedded_plans(api: TestClient, embedded: Connection) -> None:
    answer = _post(api, "ada", "htn", "explain", sql=QUERIES[0], dialect="postgres")
    assert answer.status_code == 200
    assert answer.json() == {"plans": embedded.explain(QUERIES[0])}


@pytest.mark.parametrize(
    ("sql", "status"),
    [
        ("SELECT person_source_value FROM person", 403),
        ("SELECT * FROM note", 403),
        ("DELETE FROM person", 403),
        ("SELECT FROM WHERE", 400),  # cannot be parsed: invalid input
    ],
)
def test_refusals_carry_the_embedded_class_and_rule(
    api: TestClient, embedded: Connection, sql: str, status: int
) -> None:
    with pytest.raises(SDEError) as err:
        embedded.sql(sql)
    answer = _post(api, "ada", "htn", "sql", sql=sql)
    assert answer.status_code == status
    assert answer.json()["rule"] == err.value.rule
    assert answer.json()["error"] == type(err.value).__name__


def test_each_call_is_audited_once_in_the_callers_name(world: World, api: TestClient) -> None:
    log = AuditLog(world.store.engine)
    before = log.count()
    _post(api, "bob", "htn", "sql", sql="SELECT COUNT(*) AS n FROM person")
    _post(api, "bob", "htn", "sql", sql="SELECT day_of_birth FROM person")
    entries = log.entries("htn")[-2:]
    assert log.count() == before + 2
    assert [(e.user, e.outcome) for e in entries] == [("bob", "ok"), ("bob", "refused")]
    assert log.verify().ok


@pytest.mark.parametrize(
    ("who", "project", "status", "rule"),
    [
        ("ada", "nosuch", 404, "project.unknown"),
        ("nim", "htn", 404, "project.unknown"),  # not a member: looks like a missing one
        ("dee", "htn", 404, "project.unknown"),
        ("sue", "sus", 403, "access.suspended"),
        ("sue", "rev", 403, "access.revoked"),
        ("sue", "old", 403, "access.expired"),
        ("una", "htn", 403, "access.not-accredited"),
        ("nod", "htn", 403, "access.no-daa"),
    ],
)
def test_access_rules(api: TestClient, who: str, project: str, status: int, rule: str) -> None:
    for answer in (
        _post(api, who, project, "sql", sql="SELECT COUNT(*) AS n FROM person"),
        api.get(f"/api/projects/{project}/budget", headers=token(who)),
    ):
        assert answer.status_code == status
        assert answer.json()["rule"] == rule
        assert answer.json()["error"] == "AccessDenied"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "token nonsense"}, {"Authorization": "Basic YWRhOmFkYQ=="}],
)
def test_401_without_a_valid_token(api: TestClient, headers: dict[str, str]) -> None:
    for answer in (
        api.get("/api/me", headers=headers),
        api.post("/api/projects/htn/sql", json={"sql": "SELECT 1"}, headers=headers),
    ):
        assert answer.status_code == 401
        assert answer.json()["rule"] == "auth.unauthenticated"


def test_bearer_tokens_work_too(api: TestClient) -> None:
    answer = api.get("/api/me", headers={"Authorization": "Bearer token-of-ada"})
    assert answer.status_code == 200
    assert answer.json()["user"] == "ada"


def test_me_lists_roles_and_projects(api: TestClient) -> None:
    me = api.get("/api/me", headers=token("sue")).json()
    assert me["user"] == "sue"
    assert me["roles"] == ["researcher"]
    by_slug = {p["project"]: p for p in me["projects"]}
    assert set(by_slug) == {"sus", "rev", "old"}
    assert by_slug["sus"]["status"] == "suspended"
    assert by_slug["old"]["status"] == "expired"
    assert set(by_slug["rev"]) == {"project", "access", "status", "expires", "version"}


def test_healthz_and_openapi_need_no_token(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    spec = api.get("/openapi.json").json()
    assert "/api/projects/{project}/sql_dp" in spec["paths"]


def test_bad_input_is_422_never_500(api: TestClient) -> None:
    cases = [
        {"sql": ""},
        {"sql": "SELECT 1", "dialect": "oracle"},
        {"query": "SELECT 1"},
        {"sql": 5},
    ]
    for body in cases:
        answer = api.post("/api/projects/htn/sql", json=body, headers=token("ada"))
        assert answer.status_code == 422, body
        assert answer.json()["rule"] == "request.invalid"
    answer = api.post("/api/projects/BAD SLUG/sql", json={"sql": "x"}, headers=token("ada"))
    assert answer.status_code == 422


def test_a_dp_project_refuses_plain_sql(api: TestClient) -> None:
    answer = _post(api, "dee", "dpp", "sql", sql="SELECT COUNT(*) AS n FROM person")
    assert answer.status_code == 403
    assert answer.json()["rule"] == "access.dp-only"


def test_sql_dp_charges_the_budget_once(world: World, api: TestClient) -> None:
    sql = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id"
    before = api.get("/api/projects/dpp/budget", headers=token("dee")).json()
    first = api.post(
        "/api/projects/dpp/sql_dp",
        json={"sql": sql, "epsilon": 0.25},
        headers={**token("dee"), "Accept": ARROW},
    )
    assert first.status_code == 200, first.text
    frame = frame_from_arrow(first.content)
    assert set(frame.columns) == {"gender_concept_id", "n"}
    assert frame.attrs["dp"]["epsilon"] == pytest.approx(0.25)
    after = api.get("/api/projects/dpp/budget", headers=token("dee")).json()
    assert after["epsilon_spent"] == pytest.approx(before["epsilon_spent"] + 0.25)
    assert len(after["releases"]) == len(before["releases"]) + 1
    assert after["releases"][-1]["user"] == "dee"
    again = _post(api, "dee", "dpp", "sql_dp", sql=sql, epsilon=0.25)  # the stored release
    assert again.status_code == 200
    assert (
        again.json()["data"]
        == _json_frame(
            {"columns": list(frame.columns), "data": frame.values.tolist()}
        ).values.tolist()
    )
    final = api.get("/api/projects/dpp/budget", headers=token("dee")).json()
    assert final["epsilon_spent"] == pytest.approx(after["epsilon_spent"])
    entries = [e for e in AuditLog(world.store.engine).entries("dpp") if e.action == "sql_dp"]
    assert {e.user for e in entries} == {"dee"}


def test_overspending_is_403_and_spends_nothing(api: TestClient) -> None:
    before = api.get("/api/projects/dpp/budget", headers=token("dee")).json()
    answer = _post(api, "dee", "dpp", "sql_dp", sql="SELECT COUNT(*) AS n FROM person", epsilon=5)
    assert answer.status_code == 403
    assert answer.json()["error"] == "BudgetExhausted"
    after = api.get("/api/projects/dpp/budget", headers=token("dee")).json()
    assert after["epsilon_spent"] == pytest.approx(before["epsilon_spent"])


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT INTERVAL '1 day' AS i",  # no JSON or Arrow form in pandas: sent as text
        "SELECT CAST(1.5 AS DECIMAL(10,2)) AS d, DATE '2020-01-01' AS day",
        "SELECT CAST(NULL AS INTEGER) AS n, 1e308 * 10 AS big, TRUE AS b",
    ],
)
def test_awkward_values_are_answered_both_ways(api: TestClient, sql: str) -> None:
    as_json = _post(api, "ada", "htn", "sql", sql=sql)
    assert as_json.status_code == 200, as_json.text
    as_arrow = api.post(
        "/api/projects/htn/sql", json={"sql": sql}, headers={**token("ada"), "Accept": ARROW}
    )
    assert as_arrow.status_code == 200
    assert list(frame_from_arrow(as_arrow.content).columns) == as_json.json()["columns"]
