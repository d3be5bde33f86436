"""Schemathesis against the committee's own OpenAPI, in process (ASGI): no input is a 500,
every error has the services' shape. Generated requests run as an applicant, a committee
member and a custodian, on real applications (so generated bodies reach the workflow)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from access_committee.app import create_app
from access_committee.workflow import State
from sde.gateway.auth import TokenTable
from sde.settings import Settings
from tests.committee.world import PEOPLE, World, make_world

PREFIX = "/services/committee/"
FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("committee-fuzz"))


@pytest.fixture(scope="module")
def app(world: World) -> FastAPI:
    settings_ = Settings(registry_url=str(world.store.engine.url), SDE_GATEWAY_PREFIX=PREFIX)
    tokens = TokenTable({f"token-of-{name}": name for name in PEOPLE})
    return create_app(settings_, tokens, store=world.store)


def _check(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
    if response.status_code >= 400 and response.status_code != 405:
        assert {"error", "rule", "message"} <= set(response.json()), response.text


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("who", ["ada", "kim", "nia"])
def test_generated_requests_never_fail_the_server(
    world: World, app: FastAPI, mode: GenerationMode, who: str
) -> None:
    schema = schemathesis.openapi.from_asgi(f"{PREFIX}openapi.json", app)
    app_id = world.reach(State.UNDER_REVIEW)
    slug = world.approve(world.submitted())["project"]
    for result in schema.get_all_operations():
        operation = result.ok()
        fixed: dict[str, Any] = {}
        if "{app_id}" in operation.path:
            fixed["app_id"] = app_id
        if "{project}" in operation.path:
            fixed["project"] = slug
        strategy = operation.as_strategy(
            mode,
            headers={"Authorization": f"token token-of-{who}"},
            path_parameters=fixed or None,
        )

        @given(case=strategy)
        @FUZZ
        def run(case: Any) -> None:
            _check(case)

        try:
            run()
        except Unsatisfiable:
            # No input left to get wrong (healthz, a list, a body-less action on a real id).
            assert mode is GenerationMode.NEGATIVE, operation.label
