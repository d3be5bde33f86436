"""``sde up`` keeps API.md's contract: credentials, demo roster, services, login, restart."""

from __future__ import annotations

import re
import stat

import httpx
import pyotp

from tests.fixtures.workbench import READY, Workbench

ROLES = {"researcher", "output-checker", "committee", "custodian", "admin"}
PERSONS_FLOOR = 1000  # of the fixture's 2,000 persons, those in the project's period


def test_the_first_run_stops_cleanly_and_the_second_reuses_it(workbench: Workbench) -> None:
    first, second = workbench.first.text(), workbench.second.text()
    assert "synthesising" in first
    assert workbench.first_exit == 0, first[-3000:]
    assert workbench.first_left == []
    assert "reusing the demo population" in second
    assert f"{READY}{workbench.url}" in second
    assert second.splitlines()[-1].startswith(f"{READY}{workbench.url}")
    # The same people with the same secrets: an authenticator app keeps working.
    for name in ("ada", "cat", "sam"):
        password = workbench.user(name)["password"]
        assert password in first
        assert password in second


def test_credentials_file_is_private_and_has_the_contract_shape(workbench: Workbench) -> None:
    path = workbench.dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = workbench.credentials
    assert creds["url"] == workbench.url
    assert creds["services"] == {
        name: f"{workbench.url}services/{name}/" for name in ("gateway", "airlock", "committee")
    }
    assert creds["nodes"] == ["lth", "elht", "umbh"]
    assert {p["access"] for p in creds["projects"]} >= {"rows", "dp"}
    for user in creds["users"]:
        assert set(user) == {
            "name",
            "password",
            "totp_secret",
            "roles",
            "projects",
            "nodes",
            "token",
        }
        assert len(user["password"]) >= 12
        assert re.fullmatch(r"[A-Z2-7]{16,}", user["totp_secret"])
        assert set(user["roles"]) <= ROLES
        assert user["roles"]
        assert user["token"]
        assert bool(user["nodes"]) == ("custodian" in user["roles"])
    for private in ("secret_key", "registry.sqlite", "hub.log"):
        assert stat.S_IMODE((workbench.dir / private).stat().st_mode) == 0o600, private
    assert stat.S_IMODE((workbench.dir / "data").stat().st_mode) == 0o700


def test_the_demo_holds_the_people_api_md_asks_for(workbench: Workbench) -> None:
    users = workbench.credentials["users"]
    access = {p["project"]: p["access"] for p in workbench.credentials["projects"]}
    rows = [p for p, a in access.items() if a == "rows"]
    dp = [p for p, a in access.items() if a == "dp"]

    def having(role: str) -> list[dict]:
        return [u for u in users if role in u["roles"]]

    assert any(len([u for u in users if p in u["projects"]]) >= 2 for p in rows)
    assert any([u["projects"] for u in users if p in u["projects"]] == [[p]] for p in dp), (
        "a dp project with one researcher who is in no other project"
    )
    checkers = having("output-checker")
    assert len(checkers) >= 3
    assert any("researcher" in u["roles"] and set(u["projects"]) & set(rows) for u in checkers)
    assert len(having("committee")) >= 3
    assert sorted(n for u in having("custodian") for n in u["nodes"]) == ["elht", "lth", "umbh"]
    assert having("admin")
    assert any(u["roles"] == ["researcher"] and not u["projects"] for u in users)


def test_every_service_answers_and_knows_each_token(workbench: Workbench) -> None:
    for name in ("gateway", "airlock", "committee"):
        base = workbench.service(name)
        assert httpx.get(f"{base}healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}openapi.json").json()["info"]["title"]
        anonymous = httpx.get(f"{base}api/me")
        assert anonymous.status_code == 401
        assert anonymous.json()["rule"] == "auth.unauthenticated"
        page = httpx.get(base)
        assert page.status_code == 302
        assert "/hub/api/oauth2/authorize" in page.headers["location"]
        for user in workbench.credentials["users"]:
            me = httpx.get(f"{base}api/me", headers=workbench.headers(user["name"]), timeout=30)
            assert me.status_code == 200, me.text
            assert me.json()["user"] == user["name"]


def test_researchers_query_their_projects_through_the_gateway(workbench: Workbench) -> None:
    api = f"{workbench.service('gateway')}api/projects/"
    ada, cat = workbench.headers("ada"), workbench.headers("cat")
    count = {"sql": "SELECT COUNT(*) AS n FROM person"}
    answer = httpx.post(f"{api}htn-deprivation/sql", json=count, headers=ada, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"][0][0] > PERSONS_FLOOR
    secret = {"sql": "SELECT person_source_value FROM person"}
    refused = httpx.post(f"{api}htn-deprivation/sql", json=secret, headers=ada, timeout=120)
    assert refused.status_code == 403
    assert refused.json()["error"] == "ScopeViolation"
    other = httpx.post(f"{api}af-outcomes/sql_dp", json=count, headers=ada, timeout=120)
    assert other.status_code == 404  # not a member: looks like a missing project
    dp_only = httpx.post(f"{api}af-outcomes/sql", json=count, headers=cat, timeout=120)
    assert dp_only.status_code == 403
    assert dp_only.json()["rule"] == "access.dp-only"
    noisy = httpx.post(
        f"{api}af-outcomes/sql_dp", json={**count, "epsilon": 0.5}, headers=cat, timeout=120
    )
    assert noisy.status_code == 200, noisy.text
    assert noisy.json()["attrs"]["dp"]["epsilon"] == 0.5


def test_demo_users_log_in_with_password_and_code(workbench: Workbench) -> None:
    for name in ("sam", "olu", "tom"):
        client = workbench.hub_login(name)
        assert client.headers["X-Login-Status"] == "302", name
        assert "jupyterhub-session-id" in client.cookies
    wrong = pyotp.TOTP(workbench.user("pia")["totp_secret"]).at(0)
    refused = workbench.hub_login("pia", code=wrong)
    assert refused.headers["X-Login-Status"] == "403"
