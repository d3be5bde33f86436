"""``sde.airlock.submit`` against the airlock served over real HTTP (uvicorn, loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import sde
from airlock.app import create_app
from airlock.workflow import State
from sde.errors import DisclosureRisk, InvalidInput, InvalidTransition
from sde.gateway.auth import TokenTable
from sde.settings import Settings
from tests.airlock.http import PREFIX, token
from tests.airlock.world import PEOPLE, World, make_world
from tests.gateway.conftest import serving


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("airlock-client"))


@pytest.fixture(scope="module")
def url(world: World) -> Iterator[str]:
    settings = Settings(
        airlock_dir=world.airlock.files.root,
        registry_url=str(world.store.engine.url),
        airlock_max_file_mb=1,
        SDE_GATEWAY_PREFIX=PREFIX,
    )
    app = create_app(settings, TokenTable({token(n): n for n in PEOPLE}), store=world.store)
    with serving(app) as base:
        yield f"{base.rstrip('/')}{PREFIX}"


@pytest.fixture
def outputs(tmp_path: Path) -> dict[str, Path]:
    files = {
        "table": tmp_path / "by_decile.csv",
        "figure": tmp_path / "by_decile.png",
        "notes": tmp_path / "notes.md",
        "people": tmp_path / "people.csv",
    }
    files["table"].write_text("decile,persons\n1,120\n2,135\n3,150\n")
    files["figure"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    files["notes"].write_text("# How the table was made\n")
    files["people"].write_text("person_id,decile\n1,3\n2,4\n")
    return files


def test_a_notebook_submits_its_outputs(
    world: World, url: str, outputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    world.reach(State.WITHDRAWN)
    monkeypatch.setenv("SDE_AIRLOCK_URL", url)
    monkeypatch.setenv("SDE_PROJECT", "htn")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token("ada"))
    request = sde.airlock.submit(
        [outputs["table"], outputs["figure"]],
        supporting=[outputs["notes"]],
        context="Persons with hypertension by decile",
        controls="Counts below 10 suppressed",
        group="prevalence",
    )
    assert request.state == "submitted"
    assert request.checks == {"by_decile.csv": "pass", "by_decile.png": "none", "notes.md": "none"}
    assert f"requests/{request.id}" in request._repr_markdown_()
    with pytest.raises(InvalidTransition) as again:  # one open request per project
        sde.airlock.submit([outputs["table"]], context="c", controls="k")
    assert again.value.rule == "airlock.open-request"


def test_identifiers_are_refused_and_nothing_is_submitted(
    world: World, url: str, outputs: dict[str, Path]
) -> None:
    world.reach(State.WITHDRAWN)
    with pytest.raises(DisclosureRisk) as blocked:
        sde.airlock.submit(
            [outputs["people"]],
            context="c",
            controls="k",
            project="htn",
            url=url,
            token=token("ada"),
        )
    assert blocked.value.rule == "airlock.identifiers"
    drafts = [r for r in world.airlock.list_for("ada") if r["state"] == "draft"]
    assert len(drafts) == 1


def test_a_returned_request_is_answered_in_place(
    world: World, url: str, outputs: dict[str, Path]
) -> None:
    rid = world.reach(State.RETURNED)
    request = sde.airlock.submit(
        [outputs["table"]],
        context="rounded now",
        controls="rounded to 5",
        group="tables",
        project="htn",
        url=url,
        token=token("ada"),
    )
    assert (request.id, request.state, request.data["turn"]) == (rid, "submitted", 2)


def test_bad_calls_name_what_is_wrong(url: str, outputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a file"):
        sde.airlock.submit(
            [tmp_path / "nope.csv"], context="c", controls="k", url=url, token=token("ada")
        )
    with pytest.raises(InvalidInput, match="at least one output"):
        sde.airlock.submit([], context="c", controls="k", url=url, token=token("ada"))
