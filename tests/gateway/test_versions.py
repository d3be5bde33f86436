"""A new approval version takes effect at once (its own connection; the old one closed),
and so does a suspension."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sde.accounts import add_version, change_status
from sde.audit import AuditLog
from sde.gateway.deps import Gateway
from sde.scope import Scope
from tests.gateway.conftest import ADMIN, ROWS_SCOPE, World, token

SQL = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1"


def _sql(api: TestClient) -> tuple[int, dict[str, str]]:
    answer = api.post("/api/projects/ver/sql", json={"sql": SQL}, headers=token("bob"))
    return answer.status_code, answer.json()


def test_a_new_version_and_a_suspension_take_effect_at_once(world: World, api: TestClient) -> None:
    gateway: Gateway = world.app.state.gateway
    assert _sql(api)[0] == 200
    first = gateway.pool.get_open("ver", 1, "bob")
    assert first is not None
    narrower = {**ROWS_SCOPE, "project": "ver", "tables": {"person": ["person_id"]}}
    add_version(world.store, ADMIN, "ver", narrower, note="year_of_birth withdrawn")
    status, body = _sql(api)
    assert status == 403
    assert body["error"] == "ScopeViolation"
    assert gateway.pool.get_open("ver", 1, "bob") is None
    assert gateway.pool.get_open("ver", 2, "bob") is not None
    assert first._closed
    last = AuditLog(world.store.engine).entries("ver")[-1]
    assert (last.user, last.scope_version) == ("bob", Scope.load(narrower).version)
    change_status(world.store, ADMIN, "ver", "suspend", "a breach is being looked into")
    status, body = _sql(api)
    assert (status, body["rule"]) == (403, "access.suspended")
