"""The deployment's authenticator against a real JupyterHub (``tests/hub``'s fixture).

A researcher logs in to the hub (password and one-time code), makes an API token there,
and the gateway, through :class:`jupyterhub.services.auth.HubOAuth`, knows them by it;
a token the hub does not know is a 401, and a browser without the cookie is sent to the
hub's OAuth authorisation. The other gateway tests use the token table (no hub).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from jupyterhub.services.auth import HubOAuth

from sde.gateway import create_app
from sde.gateway.auth import HubAuthenticator
from sde.settings import Settings
from tests.hub.conftest import Hub, hub  # noqa: F401 (the real hub, once for this module)


@pytest.fixture(scope="module")
def gateway(hub: Hub) -> Iterator[TestClient]:  # noqa: F811
    oauth = HubOAuth(
        api_url=f"{hub.url}hub/api",
        api_token="the-gateway-service-token",  # noqa: S106 (unused: users' tokens ask)
        oauth_client_id="service-gateway",
        hub_host=hub.url.rstrip("/"),
        hub_prefix="/hub/",
        base_url="/services/gateway/",
        access_scopes={"access:services!service=gateway"},
        cache_max_age=0,
    )
    settings = Settings(
        data_dir=str(hub.root / "no-data"),
        registry_url=f"sqlite:///{hub.root / 'registry.sqlite'}",
        SDE_GATEWAY_PREFIX="/services/gateway/",
    )
    app = create_app(settings, HubAuthenticator(oauth), store=hub.store)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_hub_token_identifies_the_researcher(hub: Hub, gateway: TestClient) -> None:  # noqa: F811
    login = hub.login("ben")
    assert login.ok
    made = login.api("POST", "users/ben/tokens", json={"expires_in": 600})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    for header in (f"token {token}", f"Bearer {token}"):
        me = gateway.get("/services/gateway/api/me", headers={"Authorization": header})
        assert me.status_code == 200, me.text
        assert me.json()["user"] == "ben"
        assert {p["project"] for p in me.json()["projects"]} == {"htn", "copd"}
    unknown = gateway.get("/services/gateway/api/me", headers={"Authorization": "token nope"})
    assert unknown.status_code == 401
    assert unknown.json()["rule"] == "auth.unauthenticated"
    assert gateway.get("/services/gateway/healthz").json() == {"status": "ok"}


def test_a_browser_without_the_cookie_goes_to_the_hubs_oauth(
    hub: Hub,  # noqa: F811
    gateway: TestClient,
) -> None:
    answer = gateway.get("/services/gateway/", follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(f"{hub.url}hub/api/oauth2/authorize?")
    assert "client_id=service-gateway" in answer.headers["location"]
    api = gateway.get("/services/gateway/api/me")
    assert api.status_code == 401  # the JSON API answers 401, it does not redirect
