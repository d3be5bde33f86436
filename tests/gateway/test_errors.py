"""The one error map: every ``sde.errors`` class to its status and the JSON shape, over HTTP."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

import sde.errors as errors_module
from sde import errors
from sde.client import error_from
from sde.gateway.errors import STATUS, install

EXPECTED = {
    "SDEError": 400,
    "ConfigurationError": 400,
    "InvalidInput": 400,
    "ScopeViolation": 403,
    "DPRefusal": 403,
    "DisclosureRisk": 403,
    "BudgetExhausted": 403,
    "AccessDenied": 403,
    "QueryFailed": 422,
    "InvalidTransition": 409,
    "BackendUnavailable": 503,
}
#: Rule ids with a status of their own.
BY_RULE = [
    ("AccessDenied", "project.unknown", 404),
    ("AccessDenied", "auth.unauthenticated", 401),
    ("InvalidInput", "limits.too-large", 413),
]


class Body(BaseModel):
    n: int


def _app() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/raise/{name}/{rule}")
    def raise_it(name: str, rule: str) -> None:
        raise getattr(errors, name)(rule, f"a {name} for the test", offending="x")

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("secret internals")

    @app.post("/body")
    def body(b: Body) -> int:
        return b.n

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(_app(), raise_server_exceptions=False)


def test_every_error_class_has_a_status() -> None:
    classes = {
        name
        for name, cls in vars(errors_module).items()
        if isinstance(cls, type) and issubclass(cls, errors.SDEError)
    }
    assert classes == set(EXPECTED) == {c.__name__ for c in STATUS}


@pytest.mark.parametrize(("name", "status"), sorted(EXPECTED.items()))
def test_each_class_maps_to_its_status_and_shape(
    client: TestClient, name: str, status: int
) -> None:
    answer = client.get(f"/raise/{name}/some.rule")
    assert answer.status_code == status
    assert answer.json() == {
        "error": name,
        "rule": "some.rule",
        "message": f"a {name} for the test",
        "details": {"offending": "x"},
    }
    again = error_from(answer)  # the client raises the same class, rule and message
    assert type(again).__name__ == name
    assert (again.rule, again.message, again.details) == (
        "some.rule",
        f"a {name} for the test",
        {"offending": "x"},
    )


@pytest.mark.parametrize(("name", "rule", "status"), BY_RULE)
def test_some_rules_have_their_own_status(
    client: TestClient, name: str, rule: str, status: int
) -> None:
    answer = client.get(f"/raise/{name}/{rule}")
    assert answer.status_code == status
    assert answer.json()["rule"] == rule


def test_validation_errors_are_422_in_the_one_shape(client: TestClient) -> None:
    answer = client.post("/body", json={"n": "many"})
    assert answer.status_code == 422
    data = answer.json()
    assert set(data) == {"error", "rule", "message"}
    assert (data["error"], data["rule"]) == ("InvalidInput", "request.invalid")
    assert "n:" in data["message"]


def test_unknown_routes_and_methods_keep_the_shape(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["rule"] == "route.unknown"
    wrong = client.delete("/crash")
    assert wrong.status_code == 405
    assert wrong.json()["rule"] == "route.method"


def test_unexpected_errors_are_a_generic_500_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="sde.gateway"):
        answer = client.get("/crash")
    assert answer.status_code == 500
    assert answer.json()["rule"] == "gateway.internal"
    assert "secret internals" not in answer.text
    assert "secret internals" in caplog.text


def test_a_refusal_shows_in_a_notebook_as_one_line() -> None:
    err = errors.ScopeViolation("columns.not-allowed", "column day_of_birth is not available")
    assert err._render_traceback_() == [
        "ScopeViolation: [columns.not-allowed] column day_of_birth is not available"
    ]
