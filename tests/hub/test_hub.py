"""The hub with the workbench's identity: logging in, who gets a server, what it refuses.

One real JupyterHub for the module (tests/hub/conftest.py), driven over HTTP as a browser
and a script would: the login form with its ``otp`` field, the hub's REST API, and a real
notebook server started for a researcher.
"""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path

import httpx
import pytest

from sde.accounts import get_user
from tests.hub.conftest import Hub, Login

REFUSED = "Invalid username or password"
DOWNLOAD_PLUGINS = (
    "@jupyterlab/docmanager-extension:download",
    "@jupyterlab/filebrowser-extension:download",
)


def _refused(login: Login) -> None:
    assert login.answer.status_code == 403, login.answer.text[:300]
    assert "jupyterhub-session-id" not in login.client.cookies
    assert REFUSED in login.answer.text


def test_right_password_and_code_log_in(hub: Hub) -> None:
    login = hub.login("ben")
    assert login.ok, login.answer.text[:300]
    assert login.answer.headers["location"].startswith("/hub/")
    me = login.api("GET", "user").json()
    assert me["name"] == "ben"
    assert me["admin"] is False
    assert sorted(me["groups"]) == ["project-copd", "project-htn", "role-researcher"]


def test_login_page_asks_for_a_one_time_code(hub: Hub) -> None:
    page = hub.client().get("hub/login").text
    assert 'name="otp"' in page


@pytest.mark.parametrize(
    ("name", "password", "code"),
    [
        ("gil", "a wrong password, long enough", None),  # wrong password, right code
        ("gil", None, "000000"),  # right password, wrong code
        ("nobody", "whatever it is", "123456"),  # unknown user
        ("dan", None, None),  # right secrets, no accreditation
    ],
    ids=["wrong-password", "wrong-code", "unknown-user", "not-accredited"],
)
def test_refused_logins(hub: Hub, name: str, password: str | None, code: str | None) -> None:
    if name == "nobody":
        client = hub.client()
        client.get("hub/login")
        xsrf = client.cookies["_xsrf"]
        data = {"username": name, "password": password, "otp": code, "_xsrf": xsrf}
        answer = client.post("hub/login", data=data)
        _refused(Login(client, answer, xsrf))
        return
    _refused(hub.login(name, password, code))


def test_refusal_reasons_are_logged_not_shown(hub: Hub) -> None:
    login = hub.login("dan")
    _refused(login)
    assert "accreditation" not in login.answer.text
    assert "Login refused for dan (auth.not-accredited)" in _wait_for_log(hub, "dan")


def test_a_code_is_accepted_once(hub: Hub) -> None:
    code = hub.people["hal"].code()
    assert hub.login("hal", code=code).ok
    _refused(hub.login("hal", code=code))


def test_five_failures_lock_the_account(hub: Hub) -> None:
    for _ in range(5):
        _refused(hub.login("fay", password="not the password at all"))  # noqa: S106
    _refused(hub.login("fay"))  # the right secrets, but locked
    assert get_user(hub.store, "fay").locked_until is not None
    assert "Login refused for fay (auth.locked)" in _wait_for_log(hub, "auth.locked")


def test_admin_role_makes_a_hub_admin(hub: Hub) -> None:
    login = hub.login("ivy")
    assert login.ok
    assert login.api("GET", "user").json()["admin"] is True


def test_staff_without_projects_log_in_but_get_no_server(hub: Hub) -> None:
    login = hub.login("eve")
    assert login.ok
    me = login.api("GET", "user").json()
    assert "role-output-checker" in me["groups"]  # its hub role grants the custom scope
    assert "custom:sde:airlock-review" in me["scopes"]
    assert "custom:sde:committee-vote" not in me["scopes"]
    refused = login.api("POST", "users/eve/server")
    assert refused.status_code == 403
    assert "not a member of an active project" in refused.json()["message"]


def test_researcher_without_a_project_is_sent_to_the_committee(hub: Hub) -> None:
    login = hub.login("cyd")
    assert login.ok
    refused = login.api("POST", "users/cyd/server")
    assert refused.status_code == 403
    assert f"{hub.url}services/committee/" in refused.json()["message"]
    page = login.client.get("hub/spawn")
    assert page.status_code == 403
    assert "services/committee/" in page.text


def test_several_projects_get_a_picker(hub: Hub) -> None:
    login = hub.login("ben", code=hub.people["ben"].code(steps_ahead=1))
    assert login.ok
    page = login.client.get("hub/spawn")
    assert page.status_code == 200
    assert 'name="project"' in page.text
    assert '<option value="copd">' in page.text
    hub.spawned.add("ben")
    chosen = login.client.post("hub/spawn", data={"project": "copd", "_xsrf": login.xsrf_now()})
    assert chosen.status_code == 302, chosen.text[:300]
    _wait_ready(login, "ben")
    assert _server_environment("ben")["SDE_PROJECT"] == "copd"
    assert login.api("DELETE", "users/ben/server").status_code in (202, 204)


def test_the_registry_is_private_to_the_hub(hub: Hub) -> None:
    assert stat.S_IMODE((hub.root / "registry.sqlite").stat().st_mode) == 0o600


def test_a_member_spawns_a_server_that_refuses_downloads(hub: Hub) -> None:
    login = hub.login("ada")
    assert login.ok
    hub.spawned.add("ada")
    started = login.api("POST", "users/ada/server")
    assert started.status_code in (201, 202), hub.log_text()[-3000:]
    _wait_ready(login, "ada")
    token = login.api("POST", "users/ada/tokens", json={"expires_in": 600}).json()["token"]
    server = httpx.Client(
        base_url=f"{hub.url}user/ada/", headers={"Authorization": f"token {token}"}, timeout=30
    )
    body = {"type": "file", "format": "text", "content": "a result"}
    assert server.put("api/contents/out.txt", json=body).status_code == 201
    assert server.get("api/contents/out.txt").json()["content"] == "a result"
    assert server.get("files/out.txt", params={"download": "1"}).status_code == 403
    assert server.get("files/out.txt").status_code == 403
    assert server.get("nbconvert/html/out.txt").status_code == 403
    lab = server.get("lab")
    assert lab.status_code == 200
    page = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', lab.text, re.S)[1])  # type: ignore[index]
    for plugin in DOWNLOAD_PLUGINS:
        assert plugin in page["disabledExtensions"], page["disabledExtensions"]
        assert plugin in page["lockedExtensions"], page.get("lockedExtensions")
    env = _server_environment("ada")
    assert env["SDE_PROJECT"] == "htn"
    assert env["SDE_GATEWAY_URL"] == f"{hub.url}services/gateway/"
    assert env["USER"] == "sde-ada"
    assert login.api("DELETE", "users/ada/server").status_code in (202, 204)


def _wait_ready(login: Login, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = login.api("GET", f"users/{name}").json()["servers"].get("", {})
        if server.get("ready"):
            return
        time.sleep(0.5)
    pytest.fail(f"{name}'s server was not ready in {timeout} s")


def _server_environment(name: str) -> dict[str, str]:
    """The environment of the notebook server running for hub user ``name``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            raw = (proc / "environ").read_bytes()
        except OSError:
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if env.get("JUPYTERHUB_USER") == name and "JUPYTERHUB_API_TOKEN" in env:
            return env
    pytest.fail(f"no server process for {name}")


def _wait_for_log(hub: Hub, needle: str, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = hub.log_text()
        if needle in text:
            return text
        time.sleep(0.1)
    return hub.log_text()
