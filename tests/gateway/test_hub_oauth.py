"""The deployment's authenticator against a real JupyterHub (``tests/hub``'s fixture).

The gateway is registered with the hub as a service (its API token, OAuth client and
callback) through the hub's REST API. A researcher's hub API token identifies them
through :class:`jupyterhub.services.auth.HubOAuth`; a token the hub does not know is a
401; a browser logged in to the hub goes through the hub's OAuth (PKCE) to the gateway's
``oauth_callback`` and then calls the JSON API with the gateway's signed cookie, which
cannot be forged. The other gateway tests use the token table (no hub).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from jupyterhub.services.auth import HubOAuth

from sde.gateway import create_app
from sde.gateway.auth import HubAuthenticator
from sde.settings import Settings
from tests.hub.conftest import Hub, hub  # noqa: F401 (the real hub, once for this module)

SERVICE_TOKEN = secrets.token_hex(16)
CALLBACK = "http://testserver/services/gateway/oauth_callback"


@pytest.fixture(scope="module")
def gateway(hub: Hub) -> Iterator[TestClient]:  # noqa: F811
    admin = hub.login("ivy")
    assert admin.ok
    made = admin.api(
        "POST",
        "services/gateway",
        json={
            "api_token": SERVICE_TOKEN,
            "oauth_redirect_uri": CALLBACK,
            "oauth_no_confirm": True,
        },
    )
    assert made.status_code == 201, made.text
    oauth = HubOAuth(
        api_url=f"{hub.url}hub/api",
        api_token=SERVICE_TOKEN,
        oauth_client_id="service-gateway",
        oauth_redirect_uri=CALLBACK,
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


def test_a_browser_logs_in_through_the_hubs_oauth(
    hub: Hub,  # noqa: F811
    gateway: TestClient,
) -> None:
    api = gateway.get("/services/gateway/api/me")
    assert api.status_code == 401  # the JSON API answers 401, it does not redirect
    start = gateway.get("/services/gateway/", follow_redirects=False)
    assert start.status_code == 302
    authorize = start.headers["location"]
    assert authorize.startswith(f"{hub.url}hub/api/oauth2/authorize?")
    assert "client_id=service-gateway" in authorize
    browser = hub.login("ada")  # her browser, logged in to the hub (a code works once: not ben)
    assert browser.ok
    granted = browser.client.get(authorize)
    assert granted.status_code == 302, granted.text
    back = granted.headers["location"]
    assert back.startswith(f"{CALLBACK}?")
    done = gateway.get(back.removeprefix("http://testserver"), follow_redirects=False)
    assert done.status_code == 302, done.text
    me = gateway.get("/services/gateway/api/me")  # the cookie now carries ben's token
    assert me.status_code == 200, me.text
    assert me.json()["user"] == "ada"
    forged = TestClient(gateway.app)  # a cookie not signed by this gateway
    forged.cookies.set("service-gateway", "ada")
    assert forged.get("/services/gateway/api/me").status_code == 401
