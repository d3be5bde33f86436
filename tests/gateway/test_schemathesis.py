"""Schemathesis against the gateway's own OpenAPI, in-process (ASGI): no input gives a 500.

Every operation of the schema, positive and negative generation, twice: paths as
generated (mostly unknown projects) and on a real project with a member's token, so that
generated bodies reach the proxy and the DP engine. (Schemathesis's pytest plugin does
not load under pytest 9 here, so the operations' Hypothesis strategies are driven
directly.)
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.gateway.conftest import World, token

FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@pytest.fixture(scope="module")
def operations(world: World) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    found = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in found} >= {
        "GET /api/me",
        "POST /api/projects/{project}/sql",
        "POST /api/projects/{project}/sql_dp",
        "GET /api/projects/{project}/budget",
    }
    return found


def _has_input(operation: Any, project: str | None) -> bool:
    return operation.method.upper() == "POST" or ("{" in operation.path and project is None)


def _check(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
    if response.status_code >= 400:
        assert {"error", "rule", "message"} <= set(response.json())


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("project", [None, "htn", "dpp"])
def test_generated_requests_never_fail_the_server(
    operations: list[Any], mode: GenerationMode, project: str | None
) -> None:
    who = "dee" if project == "dpp" else "ada"
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _has_input(operation, project):
            continue  # nothing to get wrong (healthz, api/me, a fixed project's budget)
        fixed = {"project": project} if project and "{project}" in operation.path else None
        strategy = operation.as_strategy(mode, headers=token(who), path_parameters=fixed)

        @given(case=strategy)
        @FUZZ
        def run(case: Any) -> None:
            _check(case)

        run()
