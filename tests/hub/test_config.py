"""The hub's configuration and launcher pieces, without a hub: what ``configure`` sets,
how a server's project is chosen, and what ``sde hub`` says when npm cannot help."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web
from traitlets.config import Config

from jupyter_config.authenticator import choose_project, project_from_form
from jupyter_config.hub import SERVER_ARGS, configure
from jupyter_config.spawner import NOT_ROOT_WARNING
from sde.accounts import ProjectInfo
from sde.cli.hub import ensure_chp
from sde.errors import ConfigurationError
from sde.settings import SERVICES, get_hub_settings, get_settings


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


def _configure(tmp_path: Path, **hub: Any) -> Config:
    c = Config()
    settings = get_settings(registry_url=f"sqlite:///{tmp_path / 'r.sqlite'}")
    configure(c, settings, get_hub_settings(dir=tmp_path / "hub", spawn_as_users=False, **hub))
    return c


def test_configure_sets_identity_servers_and_culler(tmp_path: Path) -> None:
    c = _configure(tmp_path, port=9000)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:9000/"
    assert (c.JupyterHub.hub_port, c.ConfigurableHTTPProxy.api_url) == (
        9001,
        "http://127.0.0.1:9002",
    )
    assert c.Authenticator.allow_all is False
    assert c.SDEAuthenticator.gateway_url == "http://127.0.0.1:9000/services/gateway/"
    assert set(SERVER_ARGS) <= set(c.Spawner.args)
    assert "--ServerApp.terminals_enabled=False" in c.Spawner.args
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == ["self", "access:services"]
    assert roles["idle-culler"]["services"] == ["idle-culler"]
    state = tmp_path / "hub"
    assert stat.S_IMODE(state.stat().st_mode) == 0o711


def test_managed_services_are_declared_behind_a_setting(tmp_path: Path) -> None:
    c = _configure(tmp_path, port=9000, services=True)
    declared = {s["name"]: s for s in c.JupyterHub.services}
    assert set(SERVICES) <= set(declared)
    for offset, name in enumerate(SERVICES, start=3):
        assert declared[name]["command"][1:] == ["serve", name]
        assert declared[name]["url"] == f"http://127.0.0.1:{9000 + offset}"


def test_a_servers_token_may_call_the_services_and_the_services_get_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook's sde.connect() and sde.airlock.submit use the server's own token."""
    monkeypatch.setenv("SDE_DATA_DIR", "/srv/data")
    monkeypatch.setenv("SDE_HUB_BOOTSTRAP_TOKEN", "x" * 64)
    c = _configure(tmp_path, port=9000, services=True)
    assert "access:services" in c.Spawner.server_token_scopes
    gateway = next(s for s in c.JupyterHub.services if s["name"] == "gateway")
    assert gateway["environment"]["SDE_DATA_DIR"] == "/srv/data"
    assert not any(k.startswith("SDE_HUB_") for k in gateway["environment"])
    bootstrap = next(s for s in c.JupyterHub.services if s["name"] == "sde-up")
    assert "command" not in bootstrap  # not a process: sde up calls the API with it


def test_not_root_says_so_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = _configure(tmp_path)
    assert NOT_ROOT_WARNING in capsys.readouterr().err
    assert c.SDESpawner.as_os_users is False
    assert ("--allow-root" in c.Spawner.args) == (os.geteuid() == 0)


def _project(slug: str) -> ProjectInfo:
    return ProjectInfo(slug, slug.upper(), "active", None, None, 1, (), "rows")


@pytest.mark.parametrize(
    ("projects", "wanted", "chosen"),
    [
        (["htn"], None, "htn"),
        (["htn"], "htn", "htn"),
        (["copd", "htn"], "copd", "copd"),
        (["copd", "htn"], None, 403),  # several: the picker must say which
        (["htn"], "copd", 403),  # not one of theirs
        (["htn"], ["htn"], 403),  # not a name
    ],
)
def test_choose_project(projects: list[str], wanted: object, chosen: str | int) -> None:
    infos = [_project(p) for p in projects]
    if isinstance(chosen, int):
        with pytest.raises(web.HTTPError) as err:
            choose_project(infos, wanted)
        assert err.value.status_code == chosen
    else:
        assert choose_project(infos, wanted) == chosen


def test_project_from_form() -> None:
    assert project_from_form({"project": ["copd"]}) == {"project": "copd"}
    assert project_from_form({}) == {}


def _bin_with(tmp_path: Path, script: str | None) -> str:
    folder = tmp_path / "bin"
    folder.mkdir()
    if script is not None:
        npm = folder / "npm"
        npm.write_text(script)
        npm.chmod(0o755)
    return str(folder)


def test_without_npm_the_launcher_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _bin_with(tmp_path, None))
    with pytest.raises(ConfigurationError) as err:
        ensure_chp(tmp_path / "cache")
    assert err.value.rule == "hub.no-proxy"
    assert "npm install --prefix" in err.value.message


def test_offline_npm_failure_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = "#!/bin/sh\necho 'npm error code ENOTFOUND' >&2\nexit 1\n"
    monkeypatch.setenv("PATH", _bin_with(tmp_path, failing))
    with pytest.raises(ConfigurationError) as err:
        ensure_chp(tmp_path / "cache")
    assert "offline?" in err.value.message
    assert "ENOTFOUND" in err.value.message
