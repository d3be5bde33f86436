"""The committee's pages over HTTP: who sees each page, every form, refusals with their rule,
nothing typed lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from tests.committee.http import PREFIX, committee_client, page
from tests.committee.world import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with committee_client(world) as c:
        yield c


def refused(answer: httpx.Response, status: int, rule: str) -> None:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert f"[{rule}]" in answer.text


# -- the home page -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "shown", "hidden"),
    [
        ("ada", ["applications/new"], ["queue", "nodes", "admin"]),
        ("lee", ["queue", "report"], ["nodes", "admin"]),
        ("nia", ["nodes"], ["queue", "admin"]),
        ("sam", ["admin", "report"], ["queue", "nodes"]),
    ],
)
def test_home_links_to_what_the_caller_may_do(
    client: TestClient, who: str, shown: list[str], hidden: list[str]
) -> None:
    answer = page(client, who, "")
    assert answer.status_code == 200
    assert "these pages are coming" not in answer.text
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    for path in shown:
        assert f'href="{PREFIX}{path}"' in answer.text
    for path in hidden:
        assert f'href="{PREFIX}{path}"' not in answer.text


def test_pages_without_a_sign_in_are_401(client: TestClient) -> None:
    refused(page(client, None, ""), 401, "auth.unauthenticated")


def test_the_script_is_served(client: TestClient) -> None:
    answer = client.get(PREFIX + "assets/committee.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
