"""The end-to-end proof that an approval is what is enforced, and that revocation and
expiry stop it at once.

An application is approved through the committee's service with real votes (approval with
conditions) and custodians' answers (``umbh`` declines, so it is left out of the scope).
The new project's researcher then queries through a real gateway (``sde.gateway`` under
uvicorn on loopback, the token-table authenticator of the gateway tests) with
``sde.connect(gateway=URL, token=..., project=SLUG)``: exactly the approved tables,
columns, nodes, cohort and period, checked against figures computed here straight from the
node files. An administrator then revokes the project on the admin pages in headless
Chromium (the committee's app under uvicorn, signed in with a test-only cookie, as the
airlock's browser test does), and the very next query is refused; a second project whose
expiry is set in the past is refused too. Screenshots: ``test-artifacts/committee-enforced/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi import Request
from playwright.sync_api import Browser, Page, expect

import sde
from access_committee.app import create_app as committee_app
from sde.accounts import add_version, get_project, scope_of
from sde.client import GatewayConnection
from sde.errors import AccessDenied, ScopeViolation, SDEError
from sde.gateway import create_app as gateway_app
from sde.gateway.auth import TokenTable
from sde.settings import Settings
from tests.committee.world import PEOPLE, World, fields, make_world
from tests.gateway.conftest import serving

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "committee-enforced"
COOKIE = "committee-test-user"
PREFIX = "/services/committee/"
COPD = 255573  # chronic obstructive lung disease (descendants count too)
PERIOD = {"start": "2018-01-01", "end": "2022-12-31"}
TABLES = {
    "person": ["person_id", "year_of_birth"],
    "condition_occurrence": ["person_id", "condition_concept_id", "condition_start_date"],
}
AGREED = ("lth", "elht")  # umbh's custodian declines
SLUG, EXPIRING = "copd-enforced", "copd-expiring"
TODAY = dt.datetime.now(dt.UTC).date()  # the services count days in UTC


class CookieUser:
    """Test-only: the user named by a plain cookie (never in the product)."""

    async def __call__(self, request: Request) -> str | None:
        name = request.cookies.get(COOKIE)
        return name if name in PEOPLE else None


@dataclass
class Enforced:
    world: World
    gateway: str
    committee: str
    synth: Path


def _approve(world: World, slug: str, expires: dt.date) -> dict[str, Any]:
    body = fields(
        slug,
        access="rows",
        tables=TABLES,
        cohort={"any_condition": [COPD]},
        period=PERIOD,
        expires=expires.isoformat(),
    )
    app = world.committee.create("ada", body)
    world.committee.submit("ada", app["id"])
    return world.approve(app["id"], conditions="Publish the analysis code", decline="umbh")


@pytest.fixture(scope="module")
def enforced(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enforced]:
    root = tmp_path_factory.mktemp("committee-enforced")
    world = make_world(root)
    registry = str(world.store.engine.url)
    tokens = TokenTable({f"token-of-{name}": name for name in PEOPLE})
    gateway = gateway_app(
        Settings.model_validate(
            {
                "data_dir": str(synth_dir),
                "registry_url": registry,
                "extract_cache_dir": root / "cache",
                "gateway_auth": "tokens",
            }
        ),
        tokens,
        store=world.store,
    )
    settings = Settings.model_validate(
        {"registry_url": registry, "committee_quorum": 3, "SDE_GATEWAY_PREFIX": PREFIX}
    )
    committee = committee_app(settings, CookieUser(), store=world.store)
    committee.state.committee = world.committee
    with serving(gateway) as gateway_url, serving(committee) as committee_url:
        yield Enforced(world, gateway_url, committee_url.rstrip("/") + PREFIX, synth_dir)


# -- what the node files hold, computed here without the proxy -----------------------------


def _raw(synth: Path, nodes: tuple[str, ...], sql: str) -> tuple[Any, ...]:
    """``sql`` over the union of ``nodes``' cohort (COPD or a descendant, not opted out):
    ``person`` and ``condition_occurrence`` are views over those persons."""
    con = duckdb.connect()
    for node in nodes:
        con.execute(f"ATTACH '{synth / (node + '.duckdb')}' AS {node} (READ_ONLY)")

    def cohort(node: str) -> str:
        return (
            f"SELECT DISTINCT c.person_id FROM {node}.condition_occurrence c "
            f"JOIN {node}.concept_ancestor a ON a.descendant_concept_id = c.condition_concept_id "
            f"WHERE a.ancestor_concept_id = {COPD} "
            f"AND c.person_id NOT IN (SELECT person_id FROM {node}.sde_opt_out)"
        )

    for table in ("person", "condition_occurrence"):
        union = " UNION ALL ".join(
            f"SELECT * FROM {n}.{table} WHERE person_id IN ({cohort(n)})" for n in nodes
        )
        con.execute(f"CREATE VIEW {table} AS {union}")
    row = con.execute(sql).fetchone()
    con.close()
    assert row is not None
    return tuple(row)


def _refused(conn: GatewayConnection, sql: str) -> SDEError:
    with pytest.raises(SDEError) as refusal:
        conn.sql(sql)
    return refusal.value


# -- the test ------------------------------------------------------------------------------


def test_an_approval_is_enforced_and_revocation_and_expiry_stop_it(
    enforced: Enforced, chromium: Browser
) -> None:
    world, synth = enforced.world, enforced.synth
    view = _approve(world, SLUG, TODAY + dt.timedelta(days=365))
    assert view["state"] == "approved_with_conditions"
    assert [d["node"] for d in view["nodes_decided"] if not d["agree"]] == ["umbh"]
    version, scope = scope_of(world.store, SLUG)
    assert (version, scope.nodes) == (1, AGREED)

    conn = sde.connect(gateway=enforced.gateway, token="token-of-ada", project=SLUG)  # noqa: S106
    assert isinstance(conn, GatewayConnection)
    _exactly_the_approved_scope(conn, synth)
    _a_declined_node_is_out(conn, synth, scope.to_dict(), enforced)

    # An administrator revokes it on the admin pages; the very next query is refused.
    _revoke_in_the_browser(chromium, enforced.committee, SLUG)
    assert get_project(world.store, SLUG).status == "revoked"
    refusal = _refused(conn, "SELECT COUNT(*) AS n FROM person")
    assert isinstance(refusal, AccessDenied)
    assert refusal.rule == "access.revoked"
    conn.close()

    # A project whose expiry is set in the past is refused as expired.
    _approve(world, EXPIRING, TODAY + dt.timedelta(days=20))
    soon = sde.connect(gateway=enforced.gateway, token="token-of-ben", project=EXPIRING)  # noqa: S106
    assert soon.sql("SELECT COUNT(*) AS n FROM person")["n"][0] > 0
    _banner_and_list_in_the_browser(chromium, enforced.committee)
    past = {
        **scope_of(world.store, EXPIRING)[1].to_dict(),
        "expires": str(TODAY - dt.timedelta(days=1)),
    }
    add_version(world.store, "sam", EXPIRING, past, note="expiry brought forward")
    refusal = _refused(soon, "SELECT COUNT(*) AS n FROM person")
    assert isinstance(refusal, AccessDenied)
    assert refusal.rule == "access.expired"
    soon.close()
    sam = Person(chromium, enforced.committee, "sam")
    sam.goto("admin")
    expect(sam.page.get_by_role("main")).to_contain_text("1 expired, 1 revoked")
    sam.shot("10-admin-overview")
    sam.goto("admin/projects")
    expect(sam.page.get_by_role("row").filter(has_text=EXPIRING)).to_contain_text("expired")
    sam.shot("11-admin-projects-expired")
    sam.context.close()


def _exactly_the_approved_scope(conn: GatewayConnection, synth: Path) -> None:
    # Approved tables and columns answer, with exactly the cohort's persons of the agreed nodes.
    got = conn.sql("SELECT COUNT(*) AS n, SUM(year_of_birth) AS born FROM person")
    expected = _raw(synth, AGREED, "SELECT COUNT(*), SUM(year_of_birth) FROM person")
    assert (int(got["n"][0]), int(got["born"][0])) == expected
    everyone = _raw(synth, AGREED, "SELECT COUNT(*) FROM person")[0]
    assert 0 < expected[0] == everyone  # the cohort: COPD persons only, not all 4,000 or so
    assert got.attrs["sde"]["nodes"] == sorted(AGREED)

    # The period restricts event rows: none before or after it, and all of it in the period.
    in_period = (
        "SELECT COUNT(*) AS n, MIN(condition_start_date) AS lo, MAX(condition_start_date) AS hi "
        "FROM condition_occurrence"
    )
    rows = conn.sql(in_period)
    window = f"condition_start_date BETWEEN DATE '{PERIOD['start']}' AND DATE '{PERIOD['end']}'"
    raw = _raw(synth, AGREED, f"SELECT COUNT(*) FROM condition_occurrence WHERE {window}")
    assert int(rows["n"][0]) == raw[0] > 0
    assert str(rows["lo"][0])[:10] >= PERIOD["start"]
    assert str(rows["hi"][0])[:10] <= PERIOD["end"]
    outside = _raw(synth, AGREED, f"SELECT COUNT(*) FROM condition_occurrence WHERE NOT {window}")
    assert outside[0] > 0  # the node files hold such rows: the scope keeps them out
    before = conn.sql(
        "SELECT COUNT(*) AS n FROM condition_occurrence "
        f"WHERE condition_start_date < DATE '{PERIOD['start']}' "
        f"OR condition_start_date > DATE '{PERIOD['end']}'"
    )
    assert int(before["n"][0]) == 0

    # What was not asked for is refused, each refusal naming its rule.
    for sql, rule in (
        ("SELECT gender_concept_id FROM person", "columns.not-allowed"),
        ("SELECT condition_end_date FROM condition_occurrence", "columns.not-allowed"),
        ("SELECT * FROM measurement", "tables.not-allowed"),
        ("SELECT * FROM drug_exposure", "tables.not-allowed"),
    ):
        refusal = _refused(conn, sql)
        assert isinstance(refusal, ScopeViolation), sql
        assert refusal.rule == rule, sql


def _a_declined_node_is_out(
    conn: GatewayConnection, synth: Path, scope: dict[str, Any], enforced: Enforced
) -> None:
    plans = conn.explain("SELECT COUNT(*) AS n FROM person")
    assert plans, plans
    assert not any("umbh" in where for where in plans)
    with_umbh = _raw(synth, (*AGREED, "umbh"), "SELECT COUNT(*) FROM person")[0]
    got = int(conn.sql("SELECT COUNT(*) AS n FROM person")["n"][0])
    assert got < with_umbh  # umbh holds cohort persons, and none of them is counted
    # The same scope opened on umbh's own node file is refused by name.
    with pytest.raises(AccessDenied) as refusal:
        sde.connect(
            synth / "umbh.duckdb",
            scope=scope,
            registry=str(enforced.world.store.engine.url),
            user="ada",
        ).sql("SELECT COUNT(*) FROM person")
    assert refusal.value.rule == "nodes.not-allowed"


# -- the browser ---------------------------------------------------------------------------


class Person:
    """One person's browser context, signed in with the test cookie."""

    def __init__(self, browser: Browser, base: str, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_cookies([{"name": COOKIE, "value": name, "url": base}])
        self.page: Page = self.context.new_page()
        self.base = base

    def goto(self, path: str = "") -> None:
        answer = self.page.goto(self.base + path)
        assert answer is not None
        assert answer.status == 200, answer.status

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def button(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).click()
        self.page.wait_for_load_state()


def _revoke_in_the_browser(browser: Browser, base: str, slug: str) -> None:
    for old in ARTIFACTS.glob("*.png"):  # this test's own screenshots of an earlier run
        old.unlink()
    sam = Person(browser, base, "sam")
    sam.goto("admin/projects")
    row = sam.page.get_by_role("row").filter(has_text=slug)
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("ada (PI), ben")
    sam.shot("01-admin-projects")
    sam.page.get_by_role("link", name=slug, exact=True).click()
    expect(sam.page.get_by_role("heading", level=1)).to_contain_text(slug)
    expect(sam.page.get_by_role("main")).to_contain_text("lth, elht")
    sam.shot("02-admin-project")
    sam.page.get_by_label("Revoke").check()
    sam.button("Continue")  # no reason: refused on the page, the choice kept
    expect(sam.page.get_by_role("alert")).to_contain_text("[project.reason-required]")
    expect(sam.page.get_by_label("Revoke")).to_be_checked()
    sam.shot("03-admin-reason-required")
    sam.page.get_by_label("Reason").fill("Ethics approval withdrawn by the REC (ref 24/NW/0001)")
    sam.button("Continue")
    expect(sam.page.get_by_role("heading", level=1)).to_have_text(f"Revoke project {slug}?")
    sam.shot("04-admin-confirm-revoke")
    sam.button(f"Yes, revoke {slug}")
    expect(sam.page.get_by_role("status")).to_contain_text("The project was revoked")
    expect(sam.page.get_by_role("main")).to_contain_text("revoked")
    sam.shot("05-admin-revoked")
    sam.context.close()


def _banner_and_list_in_the_browser(browser: Browser, base: str) -> None:
    sam = Person(browser, base, "sam")
    sam.goto("admin/projects")
    row = sam.page.get_by_role("row").filter(has_text=EXPIRING)
    expect(row).to_contain_text("20 days left")
    sam.shot("06-admin-projects-expiring")
    sam.goto("admin/users")
    sam.shot("07-admin-users")
    sam.page.get_by_role("link", name="una", exact=True).click()
    sam.page.get_by_label("Valid until").fill("2027-06-30")
    sam.page.get_by_label("Reference (optional)").fill("ONS SRS 2026/77")
    sam.button("Record accreditation")
    expect(sam.page.get_by_role("status")).to_contain_text("The accreditation was recorded")
    expect(sam.page.get_by_role("main")).to_contain_text("2027-06-30 (ONS SRS 2026/77)")
    sam.shot("07b-admin-user-accredited")
    sam.goto("report")
    sam.shot("08-report")
    sam.context.close()
    kim = Person(browser, base, "kim")  # a committee member is warned on the report
    kim.goto("report")
    expect(kim.page.get_by_role("region", name="Warning")).to_contain_text(
        f"project {EXPIRING} expires in 20 days"
    )
    kim.shot("09-committee-expiry-banner")
    kim.context.close()
    ben = Person(browser, base, "ben")  # and a member on their applications page
    ben.goto("applications")
    expect(ben.page.get_by_role("region", name="Warning")).to_contain_text(
        f"project {EXPIRING} expires in 20 days"
    )
    ben.shot("09b-member-expiry-banner")
    ben.context.close()
